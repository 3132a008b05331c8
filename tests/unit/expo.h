/* A strict parser of the Prometheus text exposition format 0.0.4, written for
 * the tests independently of the renderer (lib/base/prom), so that what the
 * renderer writes is checked against the format and not against itself.
 * Used by tests/unit/base/test_prom.c and tests/unit/app/test_metrics.c.
 *
 * Header only (the functions are static inline), as a unit test is built from
 * one .c file and the harness.
 *
 *      struct expo x;
 *      if (expo_parse(&x, text) < 0)      x.why says what is wrong, and where
 *          ...;
 *      expo_get(&x, "name", "k=v,k2=v2")  the value of one sample, -12345 when absent
 *      expo_free(&x);
 *
 * expo_parse_scraped does the same for the text of a scrape, and fails the
 * current test when the scrape or the parse does. */
#ifndef PGTR_TEST_EXPO_H
#define PGTR_TEST_EXPO_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"

#define X_MAX_SAMPLES 4096
#define X_MAX_FAMILIES 256
#define X_MAX_LABELS 8

struct x_label {
    char name[64];
    char value[256]; /* unescaped */
};

struct x_sample {
    char name[128];
    struct x_label labels[X_MAX_LABELS];
    int nlabels;
    double value;
    int family;
    char key[1024]; /* name + labels sorted by name, unescaped, for duplicates and look-ups */
};

struct x_family {
    char name[128];
    char type[16];
    char help[512];
    bool has_help, has_type;
};

struct expo {
    struct x_sample *s;
    int n;
    struct x_family f[X_MAX_FAMILIES];
    int nf;
    char why[512];
};

static inline int x_fail(struct expo *x, int line, const char *msg, const char *text)
{
    snprintf(x->why, sizeof(x->why), "line %d: %s: %.80s", line, msg, text);
    return -1;
}

static inline bool x_name(const char *s, size_t n, bool colon)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool a = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (colon && c == ':');
        if (!a && !(i && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static inline bool x_float(double *out, const char *s)
{
    char *end;

    if (!strcmp(s, "NaN")) {
        *out = NAN;
        return true;
    }
    if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf")) {
        *out = s[0] == '+' ? INFINITY : -INFINITY;
        return true;
    }
    if (!*s || strspn(s, "0123456789+-.eE") != strlen(s))
        return false; /* no "inf", "nan", hex, spaces */
    *out = strtod(s, &end);
    return *end == '\0';
}

/* Unescapes a HELP text (\\ and \n only) or a label value (also \"). */
static inline bool x_unescape(char *out, size_t max, const char **p, bool quoted)
{
    size_t n = 0;

    while (**p && (!quoted || **p != '"')) {
        char c = *(*p)++;
        if (c == '\n')
            return false;
        if (c == '\\') {
            char e = *(*p)++;
            if (e == '\\')
                c = '\\';
            else if (e == 'n')
                c = '\n';
            else if (e == '"' && quoted)
                c = '"';
            else
                return false;
        }
        if (n + 1 >= max)
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return !quoted || **p == '"';
}

static inline int x_cmp_label(const void *a, const void *b)
{
    return strcmp(((const struct x_label *)a)->name, ((const struct x_label *)b)->name);
}

static inline void x_key(char *out, size_t max, const char *name, const struct x_label *ls,
                         int n, const char *skip)
{
    struct x_label sorted[X_MAX_LABELS];
    size_t len;

    memcpy(sorted, ls, (size_t)n * sizeof(*ls));
    qsort(sorted, (size_t)n, sizeof(*sorted), x_cmp_label);
    len = (size_t)snprintf(out, max, "%s{", name);
    for (int i = 0; i < n && len < max; i++) {
        if (skip && !strcmp(sorted[i].name, skip))
            continue;
        len += (size_t)snprintf(out + len, max - len, "%s=%s\x1f", sorted[i].name, sorted[i].value);
    }
    if (len < max)
        snprintf(out + len, max - len, "}");
}

static inline int x_find_family(const struct expo *x, const char *name)
{
    for (int i = 0; i < x->nf; i++)
        if (!strcmp(x->f[i].name, name))
            return i;
    return -1;
}

static inline bool has_suffix(const char *s, const char *base, const char *suffix)
{
    size_t bl = strlen(base);
    return !strncmp(s, base, bl) && !strcmp(s + bl, suffix);
}

/* The family a sample name belongs to, given the current family. */
static inline bool x_belongs(const struct x_family *f, const char *name)
{
    if (!strcmp(f->type, "histogram"))
        return has_suffix(name, f->name, "_bucket") || has_suffix(name, f->name, "_sum") ||
               has_suffix(name, f->name, "_count");
    if (!strcmp(f->type, "summary"))
        return !strcmp(name, f->name) || has_suffix(name, f->name, "_sum") ||
               has_suffix(name, f->name, "_count");
    return !strcmp(name, f->name);
}

static inline const char *x_label_value(const struct x_sample *s, const char *name)
{
    for (int i = 0; i < s->nlabels; i++)
        if (!strcmp(s->labels[i].name, name))
            return s->labels[i].value;
    return NULL;
}

/* Histograms and summaries: per series (labels without le/quantile), buckets
 * increasing in le and in count, ending with +Inf == _count, and a _sum. */
static inline int x_check_family(struct expo *x, int fi)
{
    const struct x_family *f = &x->f[fi];
    bool hist = !strcmp(f->type, "histogram"), summ = !strcmp(f->type, "summary");
    char base[1024], other[1024], name[160];

    if (!hist && !summ)
        return 0;
    for (int i = 0; i < x->n; i++) {
        const struct x_sample *s = &x->s[i];
        double last_le = -INFINITY, last_count = 0;
        bool seen_inf = false, has_sum = false, has_count = false, first_of_group = true;
        double count = -1;

        if (s->family != fi)
            continue;
        x_key(base, sizeof(base), "", s->labels, s->nlabels, hist ? "le" : "quantile");
        /* handle each group once: at its first sample */
        for (int j = 0; j < i; j++) {
            if (x->s[j].family != fi)
                continue;
            x_key(other, sizeof(other), "", x->s[j].labels, x->s[j].nlabels,
                  hist ? "le" : "quantile");
            if (!strcmp(base, other))
                first_of_group = false;
        }
        if (!first_of_group)
            continue;
        for (int j = i; j < x->n; j++) {
            const struct x_sample *t = &x->s[j];
            if (t->family != fi)
                continue;
            x_key(other, sizeof(other), "", t->labels, t->nlabels, hist ? "le" : "quantile");
            if (strcmp(base, other))
                continue;
            snprintf(name, sizeof(name), "%s_bucket", f->name);
            if (hist && !strcmp(t->name, name)) {
                const char *le = x_label_value(t, "le");
                double lev;
                if (!le || !x_float(&lev, le) || isnan(lev))
                    return x_fail(x, 0, "bucket without a valid le", t->key);
                if (seen_inf || lev <= last_le)
                    return x_fail(x, 0, "bucket bounds not increasing", t->key);
                if (t->value < last_count || isnan(t->value))
                    return x_fail(x, 0, "bucket counts not cumulative", t->key);
                last_le = lev;
                last_count = t->value;
                seen_inf = isinf(lev) && lev > 0;
                continue;
            }
            if (x_label_value(t, hist ? "le" : "quantile"))
                return x_fail(x, 0, "le/quantile on a _sum or _count", t->key);
            snprintf(name, sizeof(name), "%s_sum", f->name);
            if (!strcmp(t->name, name)) {
                has_sum = true;
                continue;
            }
            snprintf(name, sizeof(name), "%s_count", f->name);
            if (!strcmp(t->name, name)) {
                has_count = true;
                count = t->value;
            }
        }
        if (!has_sum || !has_count)
            return x_fail(x, 0, "series without _sum or _count", s->key);
        if (hist && !seen_inf)
            return x_fail(x, 0, "histogram without a +Inf bucket", s->key);
        if (hist && count != last_count)
            return x_fail(x, 0, "_count differs from the +Inf bucket", s->key);
    }
    return 0;
}

static inline void expo_free(struct expo *x)
{
    free(x->s);
    x->s = NULL;
}

static inline int expo_parse(struct expo *x, const char *text)
{
    const char *p = text;
    int line = 0, cur = -1;

    memset(x, 0, sizeof(*x));
    x->s = calloc(X_MAX_SAMPLES, sizeof(*x->s));
    if (*text && text[strlen(text) - 1] != '\n')
        return x_fail(x, 0, "the text does not end with a newline", "");
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = (size_t)(nl - p);
        char ln[4096];

        line++;
        if (len >= sizeof(ln))
            return x_fail(x, line, "line too long", p);
        memcpy(ln, p, len);
        ln[len] = '\0';
        p = nl + 1;
        if (!len)
            return x_fail(x, line, "empty line", "");
        if (ln[0] == '#') {
            char kind[8] = "", name[160] = "";
            const char *q = ln + 2, *rest;
            size_t kl, nl2;
            int fi;
            if (ln[1] != ' ')
                return x_fail(x, line, "comment not in '# KIND name ...' form", ln);
            kl = strcspn(q, " ");
            if (kl >= sizeof(kind) || q[kl] != ' ')
                return x_fail(x, line, "comment not in '# KIND name ...' form", ln);
            memcpy(kind, q, kl);
            q += kl + 1;
            nl2 = strcspn(q, " ");
            if (nl2 >= sizeof(name) || !x_name(q, nl2, true))
                return x_fail(x, line, "bad metric name in comment", ln);
            memcpy(name, q, nl2);
            q += nl2;
            if (*q == ' ')
                q++;
            else if (*q)
                return x_fail(x, line, "malformed comment", ln);
            rest = q;
            if ((fi = x_find_family(x, name)) < 0) {
                if (x->nf == X_MAX_FAMILIES)
                    return x_fail(x, line, "too many families", ln);
                fi = x->nf++;
                snprintf(x->f[fi].name, sizeof(x->f[fi].name), "%s", name);
            } else if (fi != cur) {
                return x_fail(x, line, "family described twice (not contiguous)", ln);
            }
            for (int i = 0; i < x->n; i++)
                if (x->s[i].family == fi)
                    return x_fail(x, line, "HELP/TYPE after the family's samples", ln);
            cur = fi;
            if (!strcmp(kind, "HELP")) {
                q = rest;
                if (x->f[fi].has_help)
                    return x_fail(x, line, "second HELP", ln);
                if (!x_unescape(x->f[fi].help, sizeof(x->f[fi].help), &q, false))
                    return x_fail(x, line, "bad escape in HELP", ln);
                x->f[fi].has_help = true;
            } else if (!strcmp(kind, "TYPE")) {
                if (x->f[fi].has_type)
                    return x_fail(x, line, "second TYPE", ln);
                if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
                    strcmp(rest, "summary") && strcmp(rest, "untyped"))
                    return x_fail(x, line, "unknown TYPE", ln);
                snprintf(x->f[fi].type, sizeof(x->f[fi].type), "%s", rest);
                x->f[fi].has_type = true;
            } else {
                return x_fail(x, line, "comment other than HELP/TYPE", ln);
            }
            continue;
        }
        /* a sample: name{l="v",...} value */
        if (x->n == X_MAX_SAMPLES)
            return x_fail(x, line, "too many samples", ln);
        struct x_sample *s = &x->s[x->n];
        const char *q = ln;
        size_t nl_len = strcspn(q, "{ ");
        if (!x_name(q, nl_len, true) || nl_len >= sizeof(s->name))
            return x_fail(x, line, "bad metric name", ln);
        memcpy(s->name, q, nl_len);
        q += nl_len;
        if (*q == '{') {
            q++;
            while (*q != '}') {
                struct x_label *l = &s->labels[s->nlabels];
                size_t ll = strcspn(q, "=");
                if (s->nlabels == X_MAX_LABELS || !x_name(q, ll, false) || ll >= sizeof(l->name))
                    return x_fail(x, line, "bad label name", ln);
                memcpy(l->name, q, ll);
                l->name[ll] = '\0';
                q += ll;
                if (q[0] != '=' || q[1] != '"')
                    return x_fail(x, line, "label without =\"", ln);
                q += 2;
                if (!x_unescape(l->value, sizeof(l->value), &q, true))
                    return x_fail(x, line, "bad label value escape", ln);
                q++; /* closing quote */
                for (int i = 0; i < s->nlabels; i++)
                    if (!strcmp(s->labels[i].name, l->name))
                        return x_fail(x, line, "label repeated", ln);
                s->nlabels++;
                if (*q == ',' && q[1] != '}')
                    q++;
                else if (*q != '}')
                    return x_fail(x, line, "labels not separated by ','", ln);
            }
            q++;
        }
        if (*q != ' ' || strchr(q + 1, ' '))
            return x_fail(x, line, "want exactly one space then the value (no timestamp)", ln);
        if (!x_float(&s->value, q + 1))
            return x_fail(x, line, "bad value", ln);
        if (cur < 0 || !x->f[cur].has_type || !x_belongs(&x->f[cur], s->name))
            return x_fail(x, line, "sample outside its family's TYPE block", ln);
        s->family = cur;
        if (!strcmp(x->f[cur].type, "counter") && (isnan(s->value) || s->value < 0))
            return x_fail(x, line, "counter value negative or NaN", ln);
        x_key(s->key, sizeof(s->key), s->name, s->labels, s->nlabels, NULL);
        for (int i = 0; i < x->n; i++)
            if (!strcmp(x->s[i].key, s->key))
                return x_fail(x, line, "duplicate series", ln);
        x->n++;
    }
    for (int i = 0; i < x->nf; i++) {
        if (!x->f[i].has_help || !x->f[i].has_type)
            return x_fail(x, 0, "family without HELP and TYPE", x->f[i].name);
        if (x_check_family(x, i) < 0)
            return -1;
    }
    return 0;
}

/* The value of name{labels} (labels: "k=v,k=v" in any order, "" for none);
 * -12345 when absent. */
static inline double expo_get(const struct expo *x, const char *name, const char *labels)
{
    struct x_label ls[X_MAX_LABELS];
    char copy[512], key[1024], *save = NULL;
    int n = 0;

    snprintf(copy, sizeof(copy), "%s", labels);
    for (char *tok = strtok_r(copy, ",", &save); tok && n < X_MAX_LABELS;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        snprintf(ls[n].name, sizeof(ls[n].name), "%s", tok);
        snprintf(ls[n].value, sizeof(ls[n].value), "%s", eq + 1);
        n++;
    }
    x_key(key, sizeof(key), name, ls, n, NULL);
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->s[i].key, key))
            return x->s[i].value;
    return -12345;
}

static inline int expo_count(const struct expo *x, const char *name)
{
    int c = 0;
    for (int i = 0; i < x->n; i++)
        c += !strcmp(x->s[i].name, name);
    return c;
}

static inline const struct x_family *expo_family(const struct expo *x, const char *name)
{
    int i = x_find_family(x, name);
    return i < 0 ? NULL : &x->f[i];
}

static inline const char *fam_help(const struct expo *x, const char *name)
{
    const struct x_family *f = expo_family(x, name);
    return f ? f->help : "(no family)";
}

static inline const char *fam_type(const struct expo *x, const char *name)
{
    const struct x_family *f = expo_family(x, name);
    return f ? f->type : "(no family)";
}

/* Parses text, what a scrape read with result rc (0, or a negative code), into
 * x, which the caller frees with expo_free whatever this returns. false, and
 * the current test failed with the reason, when rc is negative or the parser
 * rejects the text. */
static inline bool expo_parse_scraped(struct expo *x, int rc, const char *text)
{
    memset(x, 0, sizeof(*x));
    if (rc < 0) {
        t_fail(__FILE__, __LINE__, "the scrape failed: %d", rc);
        return false;
    }
    if (expo_parse(x, text) < 0) {
        t_fail(__FILE__, __LINE__, "exposition rejected: %s\n%s", x->why, text);
        return false;
    }
    return true;
}

#endif
