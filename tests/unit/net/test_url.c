/* lib/net/url: the URLs the HTTP client and the proxy settings are split into. */
#include "t.h"

#include "base/err.h"
#include "net/url.h"

static void test_split(void)
{
    struct url u;

    T_RC(url_parse(&u, "https://api.example.com/api/v1/secrets?watch=1"), 0);
    T_CHECK(u.tls);
    T_EQ_STR(u.host, "api.example.com");
    T_EQ_INT(u.port, 443);
    T_EQ_STR(u.path, "/api/v1/secrets?watch=1");

    T_RC(url_parse(&u, "http://127.0.0.1:8080"), 0);
    T_CHECK(!u.tls);
    T_EQ_STR(u.host, "127.0.0.1");
    T_EQ_INT(u.port, 8080);
    T_EQ_STR(u.path, "");

    T_RC(url_parse(&u, "https://[fd00::1]:6443/healthz"), 0);
    T_EQ_STR(u.host, "fd00::1");
    T_EQ_INT(u.port, 6443);
    T_EQ_STR(u.path, "/healthz");

    T_RC(url_parse(&u, "http://[::1]"), 0);
    T_EQ_STR(u.host, "::1");
    T_EQ_INT(u.port, 80);

    T_RC(url_parse(&u, "https://login.example?x=1"), 0);
    T_EQ_STR(u.host, "login.example");
    T_EQ_STR(u.path, "?x=1");
}

static void test_refused(void)
{
    struct url u;
    const char *bad[] = {
        "ftp://h/", "h:80/", "https://", "https:///x", "https://u:p@h/", "https://u@h/",
        "https://h:0/", "https://h:65536/", "https://h:x/", "https://h:80x/", "https://[::1/",
        "https://h x/", NULL,
    };

    for (const char **b = bad; *b; b++) {
        int rc = url_parse(&u, *b);
        if (rc != ERR_INVALID)
            t_fail(__FILE__, __LINE__, "url_parse(\"%s\") == %d, want ERR_INVALID", *b, rc);
    }
}

int main(void)
{
    T_RUN(test_split);
    T_RUN(test_refused);
    return t_done();
}
