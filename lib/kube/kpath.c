#include "kube/kpath.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/urlenc.h"
#include "base/banned.h"

/* Appends '/' and s[0..len) encoded. */
static int add_segment(struct buf *b, const char *s, size_t len)
{
    int rc;

    if ((rc = buf_addch(b, '/')) < 0)
        return rc;
    return url_encode(b, s, len);
}

/* Every '/'-separated segment of gv, each encoded. */
static int add_gv(struct buf *b, const char *gv)
{
    int rc = 0;

    for (const char *p = gv; rc == 0;) {
        size_t n = strcspn(p, "/");
        if (!n)
            return err_set(ERR_INVALID, "API path: empty segment in the group-version");
        rc = add_segment(b, p, n);
        if (!p[n])
            break;
        p += n + 1;
    }
    return rc;
}

/* b back to its first len bytes after a failed append. */
static int undo(struct buf *b, size_t len, int rc)
{
    b->len = len;
    if (b->ptr)
        b->ptr[len] = '\0';
    return rc;
}

int kpath_add(struct buf *b, const char *gv, const char *ns, const char *resource,
              const char *name, const char *sub)
{
    size_t start = b->len;
    int rc;

    if (!gv || !*gv || !resource || !*resource)
        return err_set(ERR_INVALID, "API path: no %s", !gv || !*gv ? "group-version" : "resource");
    if ((ns && !*ns) || (name && !*name) || (sub && !*sub))
        return err_set(ERR_INVALID, "API path: empty %s",
                       ns && !*ns ? "namespace" : name && !*name ? "name" : "subresource");
    if (sub && !name)
        return err_set(ERR_INVALID, "API path: subresource %s without a name", sub);
    rc = add_gv(b, gv);
    if (rc == 0 && ns && (rc = add_segment(b, "namespaces", 10)) == 0)
        rc = add_segment(b, ns, strlen(ns));
    if (rc == 0)
        rc = add_segment(b, resource, strlen(resource));
    if (rc == 0 && name)
        rc = add_segment(b, name, strlen(name));
    if (rc == 0 && sub)
        rc = add_segment(b, sub, strlen(sub));
    return rc < 0 ? undo(b, start, rc) : 0;
}

int kpath_add_query(struct buf *b, const char *name, const char *value)
{
    size_t start = b->len;
    int rc;

    if (!*name)
        return err_set(ERR_INVALID, "API path: empty query parameter name");
    if ((rc = buf_addch(b, b->len && memchr(b->ptr, '?', b->len) ? '&' : '?')) < 0 ||
        (rc = url_encode(b, name, strlen(name))) < 0 || (rc = buf_addch(b, '=')) < 0 ||
        (rc = url_encode(b, value, strlen(value))) < 0)
        return undo(b, start, rc);
    return 0;
}

int kpath_add_query_i64(struct buf *b, const char *name, int64_t value)
{
    char v[24];

    snprintf(v, sizeof(v), "%" PRId64, value);
    return kpath_add_query(b, name, v);
}

/* The checks every key part passes: not empty, at most max bytes, no '/'. */
static int check_part(const char *what, const char *s, size_t len, size_t max)
{
    if (!len)
        return err_set(ERR_INVALID, "key: empty %s", what);
    if (len > max)
        return err_set(ERR_INVALID, "key: %s over %zu bytes", what, max);
    if (memchr(s, '/', len))
        return err_set(ERR_INVALID, "key: %s holds a '/'", what);
    return 0;
}

/* Both parts checked; lengths from strnlen, so a long input is not read to its end. */
static int check(const char *ns, size_t *ns_len, const char *name, size_t *name_len)
{
    int rc;

    *ns_len = strnlen(ns, KPATH_NS_MAX + 1);
    *name_len = strnlen(name, KPATH_NAME_MAX + 1);
    if ((rc = check_part("namespace", ns, *ns_len, KPATH_NS_MAX)) < 0 ||
        (rc = check_part("name", name, *name_len, KPATH_NAME_MAX)) < 0)
        return rc;
    return 0;
}

int kpath_key_join(char out[KPATH_KEY_SIZE], const char *ns, const char *name)
{
    size_t ns_len, name_len;
    int rc;

    out[0] = '\0';
    if ((rc = check(ns, &ns_len, name, &name_len)) < 0)
        return rc;
    memcpy(out, ns, ns_len);
    out[ns_len] = '/';
    memcpy(out + ns_len + 1, name, name_len + 1);
    return 0;
}

/* Copies the checked parts ns[0..ns_len) and name (NUL-terminated) into *out. */
static void fill(struct kpath_key *out, const char *ns, size_t ns_len, const char *name,
                 size_t name_len)
{
    memcpy(out->ns, ns, ns_len);
    out->ns[ns_len] = '\0';
    memcpy(out->name, name, name_len + 1);
}

int kpath_key_set(struct kpath_key *out, const char *ns, const char *name)
{
    size_t ns_len, name_len;
    int rc;

    if ((rc = check(ns, &ns_len, name, &name_len)) < 0)
        return rc;
    fill(out, ns, ns_len, name, name_len);
    return 0;
}

int kpath_key_split(struct kpath_key *out, const char *key)
{
    const char *slash = strchr(key, '/');
    size_t ns_len, name_len;
    int rc;

    if (!slash)
        return err_set(ERR_INVALID, "key: no '/' between namespace and name");
    ns_len = (size_t)(slash - key);
    name_len = strnlen(slash + 1, KPATH_NAME_MAX + 1);
    if ((rc = check_part("namespace", key, ns_len, KPATH_NS_MAX)) < 0 ||
        (rc = check_part("name", slash + 1, name_len, KPATH_NAME_MAX)) < 0)
        return rc;
    fill(out, key, ns_len, slash + 1, name_len);
    return 0;
}
