#include "base/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/banned.h"

/* cJSON allocates through the project's policy (out of memory aborts, lib/base/mem.h)
 * from before main: every cJSON_Create and cJSON_Add call then either succeeds or
 * ends the process, as every other allocation does, and none returns NULL for want
 * of memory. A constructor, so that no program linking this library (the
 * controller, the unit tests, the fuzzers) can forget it. */
__attribute__((constructor)) static void json_hooks(void)
{
    cJSON_Hooks h = { .malloc_fn = xmalloc, .free_fn = free };

    cJSON_InitHooks(&h);
}

/* One linear scan, no recursion: brackets outside strings nested deeper than
 * JSON_MAX_DEPTH (1), more than JSON_MAX_VALUES values (2: counted from above as
 * two per bracket plus one per comma), else 0 with the number of strings holding
 * the escape \u0000. */
static int scan(const char *s, size_t len, size_t *nul_escapes)
{
    int depth = 0;
    size_t values = 1;
    bool in_str = false;

    *nul_escapes = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') {
                if (len - i > 5 && !memcmp(s + i + 1, "u0000", 5))
                    (*nul_escapes)++;
                i++;
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > JSON_MAX_DEPTH)
                return 1;
            values += 2;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',') {
            values++;
        }
        if (values > JSON_MAX_VALUES)
            return 2;
    }
    return 0;
}

/* A copy of data with every \u0000 escape in a string turned into \u0001. cJSON would
 * decode U+0000 into a C string's end, silently cutting the value ("admin\u0000x" read as
 * "admin"); U+0001 keeps the value whole, and every check that refuses control characters
 * then sees one. The copy may hold secrets: the caller cleanses it. */
static char *without_nul_escapes(const char *data, size_t len)
{
    char *c = xmalloc(len + 1);
    bool in_str = false;

    memcpy(c, data, len);
    c[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (in_str) {
            if (c[i] == '\\') {
                if (len - i > 5 && !memcmp(c + i + 1, "u0000", 5))
                    c[i + 5] = '1';
                i++;
            } else if (c[i] == '"') {
                in_str = false;
            }
        } else if (c[i] == '"') {
            in_str = true;
        }
    }
    return c;
}

int json_parse(cJSON **out, const char *data, size_t len, size_t max_len)
{
    const char *end = NULL, *text = data;
    char *copy = NULL;
    size_t nuls;
    cJSON *j;

    if (len > max_len)
        return err_set(ERR_TOOBIG, "JSON document of %zu bytes is over the %zu-byte limit", len,
                       max_len);
    switch (scan(data, len, &nuls)) {
    case 1: return err_set(ERR_PARSE, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
    case 2: return err_set(ERR_TOOBIG, "JSON document with over %d values", JSON_MAX_VALUES);
    default: break;
    }
    if (nuls)
        text = copy = without_nul_escapes(data, len);
    j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (copy) {
        OPENSSL_cleanse(copy, len);
        free(copy);
    }
    if (!j) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        return err_set(ERR_PARSE, "malformed JSON near byte %zu of %zu", at, len);
    }
    *out = j;
    return 0;
}

const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

    /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): cJSON_IsString(NULL) is false */
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

cJSON *json_obj(const cJSON *obj, const char *key)
{
    cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

    return cJSON_IsObject(v) ? v : NULL;
}

cJSON *json_arr(const cJSON *obj, const char *key)
{
    cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

    return cJSON_IsArray(v) ? v : NULL;
}

int json_i64(int64_t *out, const cJSON *obj, const char *key)
{
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

    if (!v || cJSON_IsNull(v))
        return err_set(ERR_NOTFOUND, "field %s is missing", key);
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d != floor(d) || d > 9.0e18 || d < -9.0e18)
            return err_set(ERR_PARSE, "field %s is not an integer", key);
        *out = (int64_t)d;
        return 0;
    }
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring, *digits = s + (*s == '-');
        char *endp;
        long long n;
        /* At least one digit ("-" is not 0), and in range (strtoll would saturate). */
        if (!*digits || strspn(digits, "0123456789") != strlen(digits) || strlen(s) > 19)
            return err_set(ERR_PARSE, "field %s is not an integer", key);
        errno = 0;
        n = strtoll(s, &endp, 10);
        if (errno == ERANGE)
            return err_set(ERR_PARSE, "field %s is out of range", key);
        *out = n;
        return 0;
    }
    return err_set(ERR_PARSE, "field %s is not an integer", key);
}

int json_quote_n(struct buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    int rc = buf_addch(b, '"');

    for (size_t i = 0; rc == 0 && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': rc = buf_add(b, "\\\"", 2); break;
        case '\\': rc = buf_add(b, "\\\\", 2); break;
        case '\n': rc = buf_add(b, "\\n", 2); break;
        case '\r': rc = buf_add(b, "\\r", 2); break;
        case '\t': rc = buf_add(b, "\\t", 2); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
                rc = buf_add(b, esc, sizeof(esc));
            } else {
                rc = buf_addch(b, (char)c);
            }
        }
    }
    return rc ? rc : buf_addch(b, '"');
}

int json_quote(struct buf *b, const char *s)
{
    return json_quote_n(b, s, strlen(s));
}

static void wipe(cJSON *j)
{
    for (; j; j = j->next) {
        if (j->valuestring)
            OPENSSL_cleanse(j->valuestring, strlen(j->valuestring));
        if (j->child)
            wipe(j->child); /* depth is bounded by JSON_MAX_DEPTH at parse */
    }
}

void json_wipe_delete(cJSON *j)
{
    if (!j)
        return;
    if (j->valuestring)
        OPENSSL_cleanse(j->valuestring, strlen(j->valuestring));
    wipe(j->child);
    cJSON_Delete(j);
}

/* ---- json_scan_string: a walk over the text, no tree ---- */

struct scan {
    const char *p, *end;
};

static void scan_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* Steps over a string (s->p at its opening quote); *raw: it has no escape. */
static int scan_skip_string(struct scan *s, const char **start, size_t *slen, bool *raw)
{
    const char *b = ++s->p;

    *raw = true;
    for (; s->p < s->end; s->p++) {
        if (*s->p == '\\') {
            *raw = false;
            s->p++;
        } else if (*s->p == '"') {
            *start = b;
            *slen = (size_t)(s->p - b);
            s->p++;
            return 0;
        }
    }
    return ERR_PARSE;
}

/* Steps over any value: strings by their quotes, objects and arrays by their
 * brackets (strings inside them included), scalars up to the next , } or ]. */
static int scan_skip_value(struct scan *s)
{
    const char *str;
    size_t slen;
    bool raw;
    int depth = 0;

    scan_ws(s);
    if (s->p >= s->end)
        return ERR_PARSE;
    if (*s->p == '"')
        return scan_skip_string(s, &str, &slen, &raw);
    if (*s->p != '{' && *s->p != '[') {
        while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']')
            s->p++;
        return 0;
    }
    while (s->p < s->end) {
        char c = *s->p;
        if (c == '"') {
            if (scan_skip_string(s, &str, &slen, &raw) < 0)
                return ERR_PARSE;
            continue;
        }
        if (c == '{' || c == '[') {
            if (++depth > JSON_MAX_DEPTH)
                return ERR_PARSE;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            s->p++;
            return 0;
        }
        s->p++;
    }
    return ERR_PARSE;
}

int json_scan_string(char *out, size_t n, const char *data, size_t len, const char *const *path)
{
    struct scan s = { data, data + len };

    for (; *path; path++) {
        bool found = false;
        scan_ws(&s);
        if (s.p >= s.end || *s.p != '{')
            return s.p >= s.end ? ERR_PARSE : ERR_NOTFOUND;
        s.p++;
        while (!found) {
            const char *key;
            size_t klen;
            bool raw;
            scan_ws(&s);
            if (s.p < s.end && *s.p == '}')
                return ERR_NOTFOUND;
            if (s.p >= s.end || *s.p != '"' || scan_skip_string(&s, &key, &klen, &raw) < 0)
                return ERR_PARSE;
            scan_ws(&s);
            if (s.p >= s.end || *s.p++ != ':')
                return ERR_PARSE;
            if (raw && klen == strlen(*path) && !memcmp(key, *path, klen)) {
                found = true;
                break;
            }
            if (scan_skip_value(&s) < 0)
                return ERR_PARSE;
            scan_ws(&s);
            if (s.p < s.end && *s.p == ',')
                s.p++;
            else if (s.p < s.end && *s.p == '}')
                return ERR_NOTFOUND;
            else
                return ERR_PARSE;
        }
    }
    scan_ws(&s);
    {
        const char *str;
        size_t slen;
        bool raw;
        if (s.p >= s.end || *s.p != '"')
            return s.p >= s.end ? ERR_PARSE : ERR_NOTFOUND;
        if (scan_skip_string(&s, &str, &slen, &raw) < 0)
            return ERR_PARSE;
        if (!raw)
            return ERR_NOTFOUND;
        if (slen + 1 > n)
            return ERR_TOOBIG;
        memcpy(out, str, slen);
        out[slen] = '\0';
    }
    return 0;
}
