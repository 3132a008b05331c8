#include "t.h"

#include "base/err.h"
#include "base/json.h"
#include "base/yaml.h"

static void test_kubeconfig_shape(void)
{
    const char *doc = "apiVersion: v1\n"
                      "current-context: dev\n"
                      "clusters:\n"
                      "- name: c1\n"
                      "  cluster:\n"
                      "    server: https://127.0.0.1:6443\n"
                      "    insecure-skip-tls-verify: false\n"
                      "users:\n"
                      "- name: u\n"
                      "  user: {token: \"123\"}\n"
                      "port: 5432\n"
                      "quoted: '5432'\n"
                      "nothing: ~\n";
    cJSON *j = NULL, *c, *u;

    T_RC(yaml_parse(&j, doc, strlen(doc)), 0);
    T_EQ_STR(json_str(j, "current-context"), "dev");
    c = cJSON_GetArrayItem(json_arr(j, "clusters"), 0);
    T_EQ_STR(json_str(json_obj(c, "cluster"), "server"), "https://127.0.0.1:6443");
    T_CHECK(cJSON_IsFalse(cJSON_GetObjectItem(json_obj(c, "cluster"), "insecure-skip-tls-verify")));
    u = cJSON_GetArrayItem(json_arr(j, "users"), 0);
    T_EQ_STR(json_str(json_obj(u, "user"), "token"), "123"); /* quoted stays a string */
    T_CHECK(cJSON_IsNumber(cJSON_GetObjectItem(j, "port")));
    T_EQ_STR(json_str(j, "quoted"), "5432");
    T_CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "nothing")));
    cJSON_Delete(j);
}

static void test_errors(void)
{
    cJSON *j = NULL;
    const char *alias = "a: &x [1]\nb: *x\n";
    const char *bad = "a: [1\n";

    T_RC(yaml_parse(&j, alias, strlen(alias)), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "alias") != NULL);
    T_RC(yaml_parse(&j, bad, strlen(bad)), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "line") != NULL);
    T_RC(yaml_parse(&j, "", 0), 0);
    T_CHECK(cJSON_IsObject(j));
    cJSON_Delete(j);
}

static void test_depth(void)
{
    char doc[400];
    cJSON *j = NULL;

    memset(doc, '[', 200);
    memset(doc + 200, ']', 200);
    T_RC(yaml_parse(&j, doc, sizeof(doc)), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "deeper") != NULL);
}

int main(void)
{
    T_RUN(test_kubeconfig_shape);
    T_RUN(test_errors);
    T_RUN(test_depth);
    return t_done();
}
