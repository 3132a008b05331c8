#include "base/flag.h"

#include <string.h>

#include "base/err.h"
#include "base/banned.h"

static const struct flag *find(const struct flag *flags, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
            return &flags[i];
    return NULL;
}

/* Reads the flag at argv[*i] and its value (advancing *i past a separate one). Returns the
 * flag, with *value set; or NULL with *rc FLAG_HELP or ERR_INVALID. */
static const struct flag *read_flag(const char **value, int *rc, const struct flag *flags,
                                    size_t n, int argc, char **argv, int *i)
{
    const char *arg = argv[*i], *eq, *v;
    const struct flag *f;
    size_t len;

    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        *rc = FLAG_HELP;
        return NULL;
    }
    if (arg[0] != '-' || arg[1] == '\0') {
        *rc = err_set(ERR_INVALID, "unexpected argument %s (see --help)", arg);
        return NULL;
    }
    eq = strchr(arg, '=');
    len = eq ? (size_t)(eq - arg) : strlen(arg);
    if (!(f = find(flags, n, arg, len))) {
        *rc = err_set(ERR_INVALID, "unknown flag %.*s (see --help)", (int)len, arg);
        return NULL;
    }
    if (eq) {
        v = eq + 1;
    } else if (f->kind == FLAG_BOOL) {
        v = "true";
    } else if (*i + 1 < argc) {
        v = argv[++*i];
    } else {
        *rc = err_set(ERR_INVALID, "flag %s needs a value", f->name);
        return NULL;
    }
    if (f->kind == FLAG_BOOL && strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
        *rc = err_set(ERR_INVALID, "flag %s: must be true or false", f->name);
        return NULL;
    }
    *value = v;
    return f;
}

int flag_parse(const struct flag *flags, size_t n, int argc, char **argv, flag_set_fn *set,
               void *ctx)
{
    const struct flag *f;
    const char *v = NULL;
    bool any_early = false;
    int rc = 0;

    for (size_t i = 0; i < n; i++)
        any_early |= flags[i].early;
    /* The early flags first, wherever they stand; anything else, right or wrong, is left to
     * the second pass, which reports the first problem in order. */
    for (int i = 1; any_early && i < argc; i++)
        if ((f = read_flag(&v, &rc, flags, n, argc, argv, &i)) && f->early &&
            (rc = set(ctx, f, v)) < 0)
            return rc;
    for (int i = 1; i < argc; i++) {
        if (!(f = read_flag(&v, &rc, flags, n, argc, argv, &i)))
            return rc;
        if (!f->early && (rc = set(ctx, f, v)) < 0)
            return rc;
    }
    return 0;
}
