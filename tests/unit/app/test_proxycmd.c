/* lib/app/proxycmd: the proxy's flags: defaults, what is required, and the checks made
 * together (a password beyond loopback, the TLS pair, ranges). */
#include "t.h"

#include <string.h>

#include "app/proxycmd.h"
#include "base/err.h"
#include "base/flag.h"

#define ARGS(...) ((char *[]){ "proxy", __VA_ARGS__, NULL })

static void test_defaults(void)
{
    char **a = ARGS("--host", "db.example", "--user", "app", "--database", "appdb");
    struct proxycmd_opts o;

    T_RC(proxycmd_parse(&o, 7, a), 0);
    T_EQ_STR(o.listen, "127.0.0.1:5432");
    T_EQ_INT(o.port, 5432);
    T_EQ_INT(o.login_timeout_s, 30);
    T_EQ_INT(o.drain_timeout_s, 30);
    T_EQ_INT(o.max_connections, 1000);
    T_EQ_STR(o.metrics_addr, "127.0.0.1:9188");
    T_CHECK(o.refresh_ratio == 0.5);
    T_CHECK(!o.insecure_db && !o.client_password_file);
}

struct bad {
    char *args[12];
    const char *msg;
};

static void test_refused(void)
{
    static const struct bad cases[] = {
        { { "proxy", "--user", "app", "--database", "d" }, "--host is required" },
        { { "proxy", "--host", "h", "--database", "d" }, "--user is required" },
        { { "proxy", "--host", "h", "--user", "u" }, "--database is required" },
        { { "proxy", "--host", "h", "--user", "u", "--database", "d", "--listen", "0.0.0.0:5432" },
          "not a loopback address: set --client-password-file" },
        { { "proxy", "--host", "h", "--user", "u", "--database", "d", "--listen", "5432" },
          "--listen wants ADDRESS:PORT" },
        { { "proxy", "--host", "h", "--user", "u", "--database", "d", "--client-tls-cert", "c" },
          "go together" },
        { { "proxy", "--host", "h", "--user", "u", "--database", "d", "--port", "70000" },
          "--port wants a whole number from 1 to 65535" },
        { { "proxy", "--host", "h", "--user", "u", "--database", "d", "--token-refresh-ratio", "1" },
          "from 0.1 to 0.9" },
        { { "proxy", "--host", "h", "--user", "u", "--database", "d", "--identity-source", "x" },
          "workload-identity or imds" },
        { { "proxy", "--host", "h", "--user", "u", "--database", "d", "--bogus" },
          "unknown flag --bogus" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct proxycmd_opts o;
        int n = 0;

        while (cases[i].args[n])
            n++;
        if (proxycmd_parse(&o, n, (char **)cases[i].args) != ERR_INVALID ||
            !strstr(err_msg(), cases[i].msg))
            t_fail(__FILE__, __LINE__, "case %zu: \"%s\", want \"%s\"", i, err_msg(), cases[i].msg);
    }
}

static void test_beyond_loopback_with_password(void)
{
    char **a = ARGS("--host", "h", "--user", "u", "--database", "d", "--listen", "[::]:6432",
                    "--client-password-file", "/run/pw", "--listen=10.0.0.5:5432");
    struct proxycmd_opts o;

    T_RC(proxycmd_parse(&o, 12, a), 0);
    T_EQ_STR(o.listen, "10.0.0.5:5432"); /* the last one wins */
    T_RC(proxycmd_parse(&o, 2, ARGS("--help")), FLAG_HELP);
}

int main(void)
{
    T_RUN(test_defaults);
    T_RUN(test_refused);
    T_RUN(test_beyond_loopback_with_password);
    return t_done();
}
