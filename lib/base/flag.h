/* Command-line flags: the one parser every subcommand uses (run, token, check, version).
 * A command declares its flags in a table and takes each value through a callback:
 *
 *   static const struct flag FLAGS[] = { { "--host", FLAG_VALUE, OPT_HOST, false },
 *                                        { "--json", FLAG_BOOL, OPT_JSON, false } };
 *   rc = flag_parse(FLAGS, 2, argc, argv, set_opt, &opts);
 *
 * The forms, the same for every command:
 *   --name VALUE, --name=VALUE   a FLAG_VALUE flag; VALUE is taken as is, even when it starts
 *                                with "-" or is empty ("--name=")
 *   --name                       a FLAG_BOOL flag: true
 *   --name=true, --name=false    a FLAG_BOOL flag set either way (never "--name false")
 *   -h, --help                   FLAG_HELP: the caller prints its usage
 * A flag given again is passed to the callback again, in order: the callback decides whether
 * the last one wins or the values add up. Flags marked early (a config file that the other
 * flags override) are passed first, wherever they stand.
 *
 * The errors (ERR_INVALID; the message is for people and stops at the first problem):
 *   "unknown flag --name (see --help)"            a name not in the table (any "=..." cut)
 *   "unexpected argument WORD (see --help)"       an argument that is not a flag
 *   "flag --name needs a value"                   a FLAG_VALUE flag last with no "="
 *   "flag --name: must be true or false"          a FLAG_BOOL flag with another "=" value
 * and whatever the callback returns, unchanged (it names the flag if it wants it named).
 *
 * No allocation, no global state: thread-safe. Values point into argv. */
#ifndef PGTR_FLAG_H
#define PGTR_FLAG_H

#include <stdbool.h>
#include <stddef.h>

enum flag_kind {
    FLAG_VALUE, /* takes a value: --name VALUE or --name=VALUE */
    FLAG_BOOL,  /* --name, --name=true, --name=false */
};

struct flag {
    const char *name;    /* with its dashes: "--host" */
    enum flag_kind kind;
    int id;              /* the caller's: which setting, passed back with the flag */
    bool early;          /* passed to the callback before every other flag */
};

/* Takes one flag's value: FLAG_VALUE the text given, FLAG_BOOL "true" or "false".
 * 0, or a negative ERR_* that flag_parse returns as it is. */
typedef int flag_set_fn(void *ctx, const struct flag *f, const char *value);

/* flag_parse's answer when -h or --help came before any error. */
#define FLAG_HELP 1

/* Parses argv[1..argc) (argv[0] is the command's name) against flags[0..n) (n may be 0, and
 * set then NULL: a command with no flags of its own), calling set for each flag given: the early ones first (a pass that skips whatever it does not understand,
 * which the second pass then reports), then the others in order.
 * Returns 0; FLAG_HELP when -h or --help came first (set has been called for what came
 * before it); ERR_INVALID as listed above; or set's error. */
int flag_parse(const struct flag *flags, size_t n, int argc, char **argv, flag_set_fn *set,
               void *ctx);

#endif
