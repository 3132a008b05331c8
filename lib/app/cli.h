/* One-off commands that use the controller's identity and checks:
 *
 *   pgtoken-rotator token [flags]   mint a token (or render a value such as
 *                                   DATABASE_URL) and print it on stdout
 *   pgtoken-rotator check [flags]   mint a token and try a login; print the
 *                                   classified result (never the token)
 *
 * Both return the process exit status (see cli_usage). */
#ifndef PGTR_CLI_H
#define PGTR_CLI_H

enum cli_exit {
    CLI_OK = 0,
    CLI_FAILED = 1,       /* anything not listed below */
    CLI_USAGE = 2,        /* bad flags or values */
    CLI_REJECTED = 3,     /* the server refused the token */
    CLI_UNREACHABLE = 4,  /* the server could not be reached */
    CLI_TLS = 5,          /* TLS or certificate verification failed */
    CLI_LOGIN_ERROR = 6,  /* another login failure */
    CLI_TOKEN_FAILED = 7, /* no token: the identity provider refused or failed */
};

int cli_token(int argc, char **argv);
int cli_check(int argc, char **argv);

#endif
