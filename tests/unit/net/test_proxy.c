/* lib/net/proxy: proxy variables and NO_PROXY, as curl and Go read them. */
#include "t.h"

#include <stdlib.h>

#include "base/err.h"
#include "net/proxy.h"

static const char *const names[] = { "https_proxy", "HTTPS_PROXY", NULL };

static void unset_all(void)
{
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
}

static void test_from_env(void)
{
    struct proxy px;

    unset_all();
    T_RC(proxy_from_env(&px, names), 0);
    T_CHECK(!px.set);

    setenv("HTTPS_PROXY", "http://proxy.corp:3128", 1);
    T_RC(proxy_from_env(&px, names), 0);
    T_CHECK(px.set);
    T_EQ_STR(px.host, "proxy.corp");
    T_EQ_INT(px.port, 3128);

    setenv("https_proxy", "10.0.0.9", 1); /* the first name wins; no port: 1080 */
    T_RC(proxy_from_env(&px, names), 0);
    T_EQ_STR(px.host, "10.0.0.9");
    T_EQ_INT(px.port, 1080);

    setenv("https_proxy", "http://[fd00::9]/", 1);
    T_RC(proxy_from_env(&px, names), 0);
    T_EQ_STR(px.host, "fd00::9");
    T_EQ_INT(px.port, 1080);

    setenv("https_proxy", "[fd00::9]:8080", 1);
    T_RC(proxy_from_env(&px, names), 0);
    T_EQ_INT(px.port, 8080);

    setenv("https_proxy", "", 1); /* empty: the next name */
    T_RC(proxy_from_env(&px, names), 0);
    T_EQ_STR(px.host, "proxy.corp");

    setenv("https_proxy", "https://proxy.corp:443", 1);
    T_RC(proxy_from_env(&px, names), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "https_proxy") != NULL);
    setenv("https_proxy", "socks5://proxy.corp:1080", 1);
    T_RC(proxy_from_env(&px, names), ERR_INVALID);
    setenv("https_proxy", "http://user:secret@proxy.corp:3128", 1);
    T_RC(proxy_from_env(&px, names), ERR_INVALID);
    T_CHECK(strstr(err_msg(), "secret") == NULL);
    unset_all();
}

static void test_bypass(void)
{
    const char *list = " localhost, .svc,cluster.local ,10.0.0.0/16,fd00::/8,192.168.1.7,"
                       "[::1],api.example.com:443,172.16.0.0/12";

    T_CHECK(proxy_bypass(list, "localhost"));
    T_CHECK(proxy_bypass(list, "LOCALHOST"));
    T_CHECK(proxy_bypass(list, "kubernetes.default.svc"));
    T_CHECK(proxy_bypass(list, "svc"));
    T_CHECK(proxy_bypass(list, "a.b.cluster.local"));
    T_CHECK(proxy_bypass(list, "cluster.local"));
    T_CHECK(!proxy_bypass(list, "notcluster.local"));
    T_CHECK(!proxy_bypass(list, "login.microsoftonline.com"));
    T_CHECK(proxy_bypass(list, "10.0.3.4"));
    T_CHECK(!proxy_bypass(list, "10.1.0.1"));
    T_CHECK(proxy_bypass(list, "172.31.255.255"));
    T_CHECK(!proxy_bypass(list, "172.32.0.1"));
    T_CHECK(proxy_bypass(list, "192.168.1.7"));
    T_CHECK(!proxy_bypass(list, "192.168.1.70"));
    T_CHECK(proxy_bypass(list, "fd12:3456::1"));
    T_CHECK(!proxy_bypass(list, "fe80::1"));
    T_CHECK(proxy_bypass(list, "::1"));
    T_CHECK(proxy_bypass(list, "api.example.com"));
    T_CHECK(!proxy_bypass(list, "example.com"));
    T_CHECK(proxy_bypass("*", "anything.example"));
    T_CHECK(!proxy_bypass("", "localhost"));
    T_CHECK(!proxy_bypass(NULL, "localhost"));
    T_CHECK(!proxy_bypass("10.0.0.0/33,10.0.0.0/x", "10.0.0.1")); /* bad blocks match nothing */
}

int main(void)
{
    T_RUN(test_from_env);
    T_RUN(test_bypass);
    return t_done();
}
