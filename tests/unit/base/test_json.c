#include "t.h"

#include <stdlib.h>

#include "base/err.h"
#include "base/json.h"

static void test_parse_caps(void)
{
    cJSON *j = NULL;
    char deep[300];

    T_RC(json_parse(&j, "{\"a\":1}", 7, 6), ERR_TOOBIG);
    T_RC(json_parse(&j, "{\"a\":", 5, 100), ERR_PARSE);
    memset(deep, '[', sizeof(deep));
    T_RC(json_parse(&j, deep, sizeof(deep), 1000), ERR_PARSE);
    T_CHECK(strstr(err_msg(), "deeper") != NULL);
    /* brackets inside strings do not count as depth */
    memset(deep, '[', sizeof(deep));
    deep[0] = '"';
    deep[298] = '"';
    T_RC(json_parse(&j, deep, 299, 1000), 0);
    cJSON_Delete(j);
}

/* Many tiny values: refused before a tree many times the input's size is built. */
static void test_value_cap(void)
{
    size_t n = (size_t)JSON_MAX_VALUES / 2, len = 2 + 3 * n;
    char *doc = malloc(len);
    cJSON *j = NULL;

    T_CHECK(doc != NULL);
    doc[0] = '[';
    for (size_t i = 0; i < n; i++)
        memcpy(doc + 1 + 3 * i, "[],", 3);
    doc[len - 2] = ']'; /* over the last comma */
    doc[len - 1] = ' ';
    T_RC(json_parse(&j, doc, len, len), ERR_TOOBIG);
    T_CHECK(strstr(err_msg(), "values") != NULL);
    /* A tenth of that parses. */
    n /= 10;
    len = 2 + 3 * n;
    doc[len - 2] = ']';
    doc[len - 1] = ' ';
    T_RC(json_parse(&j, doc, len, len), 0);
    T_EQ_INT(cJSON_GetArraySize(j), (long long)n);
    cJSON_Delete(j);
    free(doc);
}

/* \u0000 would end a C string early ("admin\u0000x" read as "admin"): it comes out as
 * U+0001, so the value stays whole and a control-character check sees it. An escaped
 * backslash followed by "u0000" is plain text and stays so. */
static void test_nul_escape(void)
{
    const char *doc = "{\"a\":\"ad\\u0000min\",\"b\":\"\\\\u0000\",\"c\":\"\\u0000\"}";
    cJSON *j = NULL;

    T_RC(json_parse(&j, doc, strlen(doc), 1000), 0);
    T_EQ_STR(json_str(j, "a"), "ad\001min");
    T_EQ_STR(json_str(j, "b"), "\\u0000");
    T_EQ_STR(json_str(j, "c"), "\001");
    cJSON_Delete(j);
}

static void test_lookups(void)
{
    const char *doc = "{\"s\":\"x\",\"n\":42,\"f\":1.5,\"ns\":\"1700000000\",\"bad\":\"12a\","
                      "\"o\":{},\"a\":[]}";
    cJSON *j = NULL;
    int64_t v;

    T_RC(json_parse(&j, doc, strlen(doc), 1000), 0);
    T_EQ_STR(json_str(j, "s"), "x");
    T_CHECK(json_str(j, "n") == NULL);
    T_CHECK(json_obj(j, "o") != NULL);
    T_CHECK(json_obj(j, "a") == NULL);
    T_CHECK(json_arr(j, "a") != NULL);
    T_RC(json_i64(&v, j, "n"), 0);
    T_EQ_INT(v, 42);
    T_RC(json_i64(&v, j, "ns"), 0);
    T_EQ_INT(v, 1700000000);
    T_RC(json_i64(&v, j, "f"), ERR_PARSE);
    T_RC(json_i64(&v, j, "bad"), ERR_PARSE);
    T_RC(json_i64(&v, j, "missing"), ERR_NOTFOUND);
    T_RC(json_i64(&v, j, "o"), ERR_PARSE);
    cJSON_Delete(j);
}

static void test_quote(void)
{
    struct buf b = BUF_INIT(100);

    T_RC(json_quote(&b, "a\"b\\c\nd\x01\x7f"), 0);
    T_EQ_STR(buf_str(&b), "\"a\\\"b\\\\c\\nd\\u0001\\u007f\"");
    buf_release(&b);
}

/* This test is linked with -Wl,--wrap=xmalloc: every xmalloc of the library
 * comes here first, so the count shows whether cJSON allocates through it. */
void *__real_xmalloc(size_t n);
void *__wrap_xmalloc(size_t n);
static size_t xmalloc_calls;
void *__wrap_xmalloc(size_t n)
{
    xmalloc_calls++;
    return __real_xmalloc(n);
}

/* cJSON allocates with xmalloc (hooks set before main), so that its create and
 * add calls cannot fail for want of memory and leave a key silently out. */
static void test_cjson_uses_xmalloc(void)
{
    size_t before = xmalloc_calls;
    cJSON *o = cJSON_CreateObject();
    char *text;

    T_CHECK(o != NULL);
    T_CHECK(cJSON_AddStringToObject(o, "reason", "Rotated") != NULL);
    text = cJSON_PrintUnformatted(o);
    T_EQ_STR(text, "{\"reason\":\"Rotated\"}");
    /* the object, its member, the member's key and value, the printed text */
    T_CHECK(xmalloc_calls - before >= 4);
    cJSON_free(text);
    cJSON_Delete(o);
}

/* json_scan_string finds metadata.resourceVersion the way a parser would:
 * not the same key elsewhere (in data, in annotations, inside strings), and
 * it says why when it cannot. */
static void test_scan_string(void)
{
    static const char *const rv_path[] = { "metadata", "resourceVersion", NULL };
    const char *doc = "{ \"apiVersion\":\"v1\", \"data\":{\"resourceVersion\":\"eA==\"},"
                      "\"x\":[\"]\",{\"y\":\"}\\\"{\"}, 1.5e3, true, null],"
                      "\"metadata\" : {\"annotations\":{\"resourceVersion\":\"evil\"},"
                      "\"name\":\"n\",\"resourceVersion\" : \"4711\"},\"kind\":\"Secret\"}";
    char out[16];

    T_RC(json_scan_string(out, sizeof(out), doc, strlen(doc), rv_path), 0);
    T_EQ_STR(out, "4711");
    T_RC(json_scan_string(out, 4, doc, strlen(doc), rv_path), ERR_TOOBIG);
#define SCAN(text) json_scan_string(out, sizeof(out), text, strlen(text), rv_path)
    T_RC(SCAN("{\"metadata\":{\"name\":\"n\"}}"), ERR_NOTFOUND);
    T_RC(SCAN("{\"metadata\":{\"resourceVersion\":5}}"), ERR_NOTFOUND);
    T_RC(SCAN("{\"metadata\":{\"resourceVersion\":\"a\\\"b\"}}"), ERR_NOTFOUND);
    T_RC(SCAN("{\"metadata\":[]}"), ERR_NOTFOUND);
    T_RC(SCAN("{}"), ERR_NOTFOUND);
    T_RC(SCAN("[]"), ERR_NOTFOUND);
    T_RC(SCAN(""), ERR_PARSE);
    T_RC(SCAN("{\"metadata\":{\"resourceVersion\":\"12"), ERR_PARSE);
    T_RC(SCAN("{\"a\":{\"b\":\"}"), ERR_PARSE);
    T_RC(SCAN("{\"a\" 1}"), ERR_PARSE);
#undef SCAN
}

int main(void)
{
    T_RUN(test_cjson_uses_xmalloc);
    T_RUN(test_parse_caps);
    T_RUN(test_nul_escape);
    T_RUN(test_value_cap);
    T_RUN(test_lookups);
    T_RUN(test_quote);
    T_RUN(test_scan_string);
    return t_done();
}
