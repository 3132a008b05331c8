/* lib/base/flag: every form and every error of the one flag parser, on a table of its own. */
#include "t.h"

#include <stdio.h>

#include "base/err.h"
#include "base/flag.h"

enum { ID_HOST, ID_NAME, ID_JSON, ID_FILE };

static const struct flag FLAGS[] = {
    { "--host", FLAG_VALUE, ID_HOST, false },
    { "--name", FLAG_VALUE, ID_NAME, false },
    { "--json", FLAG_BOOL, ID_JSON, false },
    { "--file", FLAG_VALUE, ID_FILE, true },
};
#define NFLAGS (sizeof(FLAGS) / sizeof(FLAGS[0]))

/* What the callback saw, as "id=value" words in order; set fails on the value "bad". */
static char seen[512];

static int record(void *ctx, const struct flag *f, const char *value)
{
    size_t n = strlen(seen);

    T_CHECK(ctx == seen);
    snprintf(seen + n, sizeof(seen) - n, "%s%d=%s", n ? " " : "", f->id, value);
    if (strcmp(value, "bad") == 0)
        return err_set(ERR_PARSE, "the callback's own error");
    return 0;
}

/* Parses args (split on spaces, after an argv[0]); returns flag_parse's answer. */
static int parse(const char *args)
{
    char buf[256], *argv[32], *save = NULL;
    int argc = 0;

    seen[0] = '\0';
    snprintf(buf, sizeof(buf), "cmd %s", args);
    for (char *w = strtok_r(buf, " ", &save); w && argc < 31; w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    argv[argc] = NULL;
    return flag_parse(FLAGS, NFLAGS, argc, argv, record, seen);
}

#define T_PARSE(args, want_rc, want_seen)                                                   \
    do {                                                                                    \
        T_RC(parse(args), (want_rc));                                                       \
        T_EQ_STR(seen, (want_seen));                                                        \
    } while (0)

#define T_PARSE_ERR(args, want_msg)                                                         \
    do {                                                                                    \
        T_RC(parse(args), ERR_INVALID);                                                     \
        T_EQ_STR(err_msg(), (want_msg));                                                    \
    } while (0)

static void test_value_forms(void)
{
    T_PARSE("", 0, "");
    T_PARSE("--host db.example", 0, "0=db.example");
    T_PARSE("--host=db.example", 0, "0=db.example");
    T_PARSE("--host=a=b", 0, "0=a=b");      /* the first '=' ends the name */
    T_PARSE("--host=", 0, "0=");             /* an empty value, on purpose */
    T_PARSE("--host --json", 0, "0=--json"); /* a separate value is taken as is */
    T_PARSE("--host h --name n", 0, "0=h 1=n");
}

static void test_bool_forms(void)
{
    T_PARSE("--json", 0, "2=true");
    T_PARSE("--json=true", 0, "2=true");
    T_PARSE("--json=false", 0, "2=false");
    T_PARSE("--json --host h", 0, "2=true 0=h"); /* takes no separate value */
    T_PARSE_ERR("--json=yes", "flag --json: must be true or false");
    T_PARSE_ERR("--json=", "flag --json: must be true or false");
    T_PARSE_ERR("--json false", "unexpected argument false (see --help)");
}

/* Each occurrence reaches the callback, in order: the caller decides what repeating means. */
static void test_repeated(void)
{
    T_PARSE("--host a --host=b --json --json=false", 0, "0=a 0=b 2=true 2=false");
}

static void test_errors(void)
{
    T_PARSE_ERR("--nope", "unknown flag --nope (see --help)");
    T_PARSE_ERR("--nope=1", "unknown flag --nope (see --help)");
    T_PARSE_ERR("--hos h", "unknown flag --hos (see --help)"); /* no prefixes */
    T_PARSE_ERR("--hostname h", "unknown flag --hostname (see --help)");
    T_PARSE_ERR("-x", "unknown flag -x (see --help)");
    T_PARSE_ERR("word", "unexpected argument word (see --help)");
    T_PARSE_ERR("-", "unexpected argument - (see --help)");
    T_PARSE_ERR("--host", "flag --host needs a value");
    T_PARSE_ERR("--name n --host", "flag --host needs a value");
    /* The first problem in order stops the parse; what came before it was taken. */
    T_PARSE("--host h --nope --name", ERR_INVALID, "0=h");
    T_EQ_STR(err_msg(), "unknown flag --nope (see --help)");
    /* The callback's error comes back as it is. */
    T_PARSE("--host bad --name n", ERR_PARSE, "0=bad");
    T_EQ_STR(err_msg(), "the callback's own error");
}

static void test_help(void)
{
    T_PARSE("-h", FLAG_HELP, "");
    T_PARSE("--host h --help --nope", FLAG_HELP, "0=h"); /* help stops the parse */
    T_PARSE_ERR("--nope --help", "unknown flag --nope (see --help)");
    T_PARSE_ERR("--help=1", "unknown flag --help (see --help)");
}

/* Early flags are taken before all others wherever they stand; the early pass skips what
 * it does not understand and the second pass reports it. */
static void test_early(void)
{
    T_PARSE("--host h --file f", 0, "3=f 0=h");
    T_PARSE("--file=f --host h --file g", 0, "3=f 3=g 0=h");
    T_PARSE("--nope --file f", ERR_INVALID, "3=f");
    T_EQ_STR(err_msg(), "unknown flag --nope (see --help)");
    T_PARSE("--help --file f", FLAG_HELP, "3=f");
    T_PARSE("--host --file f", ERR_INVALID, "0=--file"); /* --file is --host's value */
    T_PARSE("--host h --file bad", ERR_PARSE, "3=bad");   /* an early error comes first */
    T_PARSE_ERR("--file", "flag --file needs a value");
}

/* A command with no flags (version): only --help. */
static void test_no_flags(void)
{
    char *none[] = { "version", NULL }, *help[] = { "version", "--help", NULL };
    char *extra[] = { "version", "x", NULL };

    T_RC(flag_parse(NULL, 0, 1, none, NULL, NULL), 0);
    T_RC(flag_parse(NULL, 0, 2, help, NULL, NULL), FLAG_HELP);
    T_RC(flag_parse(NULL, 0, 2, extra, NULL, NULL), ERR_INVALID);
    T_EQ_STR(err_msg(), "unexpected argument x (see --help)");
}

int main(void)
{
    T_RUN(test_value_forms);
    T_RUN(test_bool_forms);
    T_RUN(test_repeated);
    T_RUN(test_errors);
    T_RUN(test_help);
    T_RUN(test_early);
    T_RUN(test_no_flags);
    return t_done();
}
