/* lib/app/cli: the flags of `token` and `check` through the shared parser (base/flag.h):
 * every flag reaches its field, in each form, and the errors. The commands themselves mint
 * and log in: tests/e2e/cli_test.go runs them. */
#include "t.h"

#include "base/json.h"

#include "app/cli.h"
#include "base/err.h"
#include "base/flag.h"
#include "idp/idp.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static const char *ann(const struct cli_opts *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o->ann, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_defaults(void)
{
    char *argv[] = { "token", NULL };
    struct cli_opts o;

    T_RC(cli_parse(&o, ARGC(argv), argv), 0);
    T_EQ_STR(o.scope, IDP_DEFAULT_SCOPE);
    T_CHECK(!o.key && !o.identity_source && !o.db_sslmode && !o.env && !o.json);
    T_EQ_INT(o.timeout_s, 0);
    T_EQ_INT(cJSON_GetArraySize(o.ann), 0);
    cli_opts_release(&o);
}

/* Every flag, half in the "=" form. */
static void test_every_flag(void)
{
    char *argv[] = { "check", "--host", "db.example", "--port=6432", "--user", "app",
                     "--database=appdb", "--sslmode", "verify-ca", "--format=jdbc",
                     "--template", "URL=postgres://{host}", "--scope=s/.default",
                     "--authority-host", "https://login.example", "--identity-ca-file=/ca1",
                     "--db-ca-file", "/ca2", "--db-sslmode=verify-ca", "--identity-source",
                     "imds", "--client-id=cid", "--key", "URL", "--timeout=30", "--env",
                     "--json", "--insecure-skip-db-tls-verify",
                     "--insecure-allow-http-authority=true", NULL };
    struct cli_opts o;

    T_RC(cli_parse(&o, ARGC(argv), argv), 0);
    T_EQ_STR(ann(&o, "pgtoken.io/host"), "db.example");
    T_EQ_STR(ann(&o, "pgtoken.io/port"), "6432");
    T_EQ_STR(ann(&o, "pgtoken.io/user"), "app");
    T_EQ_STR(ann(&o, "pgtoken.io/database"), "appdb");
    T_EQ_STR(ann(&o, "pgtoken.io/sslmode"), "verify-ca");
    T_EQ_STR(ann(&o, "pgtoken.io/format"), "jdbc");
    T_EQ_STR(ann(&o, "pgtoken.io/template.URL"), "postgres://{host}");
    T_EQ_INT(cJSON_GetArraySize(o.ann), 7);
    T_EQ_STR(o.scope, "s/.default");
    T_EQ_STR(o.authority_host, "https://login.example");
    T_EQ_STR(o.identity_ca_file, "/ca1");
    T_EQ_STR(o.db_ca_file, "/ca2");
    T_EQ_STR(o.db_sslmode, "verify-ca");
    T_EQ_STR(o.identity_source, "imds");
    T_EQ_STR(o.client_id, "cid");
    T_EQ_STR(o.key, "URL");
    T_EQ_INT(o.timeout_s, 30);
    T_CHECK(o.env && o.json && o.insecure_db && o.insecure_http_authority);
    cli_opts_release(&o);
}

/* A repeated flag: the last one wins; --template per KEY; booleans can be turned off. */
static void test_repeated_and_bools(void)
{
    char *argv[] = { "token", "--host", "a", "--host=b", "--template", "K=1", "--template=K=2",
                     "--template", "L=3", "--json", "--json=false", "--env=true", NULL };
    struct cli_opts o;

    T_RC(cli_parse(&o, ARGC(argv), argv), 0);
    T_EQ_STR(ann(&o, "pgtoken.io/host"), "b");
    T_EQ_STR(ann(&o, "pgtoken.io/template.K"), "2");
    T_EQ_STR(ann(&o, "pgtoken.io/template.L"), "3");
    T_EQ_INT(cJSON_GetArraySize(o.ann), 3);
    T_CHECK(!o.json && o.env);
    cli_opts_release(&o);
}

/* Each bad command line, and what it says; *out is left zeroed. */
static const struct {
    char *argv[4];
    const char *msg;
} BAD[] = {
    { { "token", "--no-such-flag", "x" }, "unknown flag --no-such-flag (see --help)" },
    { { "token", "--no-such-flag=x" }, "unknown flag --no-such-flag (see --help)" },
    { { "token", "--no-such-flag" }, "unknown flag --no-such-flag (see --help)" },
    { { "token", "extra" }, "unexpected argument extra (see --help)" },
    { { "check", "--host" }, "flag --host needs a value" },
    { { "check", "--user", "u", "--timeout" }, "flag --timeout needs a value" },
    { { "check", "--json=yes" }, "flag --json: must be true or false" },
    { { "check", "--json", "false" }, "unexpected argument false (see --help)" },
    { { "check", "--timeout", "0" }, "--timeout wants seconds from 1 to 3600" },
    { { "check", "--timeout=3601" }, "--timeout wants seconds from 1 to 3600" },
    { { "check", "--timeout", "5s" }, "--timeout wants seconds from 1 to 3600" },
    { { "token", "--identity-source=msi" }, "--identity-source wants workload-identity or imds" },
    { { "token", "--template", "no-key" }, "--template wants KEY=TEMPLATE" },
    { { "token", "--template==x" }, "--template wants KEY=TEMPLATE" },
};

static void test_errors(void)
{
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        char **argv = (char **)BAD[i].argv;
        int argc = 0;
        struct cli_opts o;

        while (argc < 4 && argv[argc])
            argc++;
        if (cli_parse(&o, argc, argv) != ERR_INVALID || strcmp(err_msg(), BAD[i].msg) != 0 ||
            o.ann != NULL) {
            t_fail(__FILE__, __LINE__, "case %zu: \"%s\", want \"%s\"", i, err_msg(), BAD[i].msg);
            cli_opts_release(&o);
            return;
        }
    }
}

static void test_help(void)
{
    char *help[] = { "check", "--host", "h", "--help", "--no-such-flag", NULL };
    char *h[] = { "token", "-h", NULL };
    struct cli_opts o;

    T_RC(cli_parse(&o, ARGC(help), help), FLAG_HELP);
    T_CHECK(o.ann == NULL);
    T_RC(cli_parse(&o, ARGC(h), h), FLAG_HELP);
    cli_opts_release(&o); /* harmless on a zeroed one */
}

int main(void)
{
    T_RUN(test_defaults);
    T_RUN(test_every_flag);
    T_RUN(test_repeated_and_bools);
    T_RUN(test_errors);
    T_RUN(test_help);
    return t_done();
}
