/*
 * pglogin: the floor for login checks. Reads "USER TOKEN" lines on stdin and makes one libpq
 * login for each (PQconnectdbParams, the token as the password keyword, TLS verified), as the
 * controller's login check does, then disconnects; answers "ok" or "fail" on stdout for each
 * line, so one process can serve many logins. Never prints a token.
 *
 *   pglogin HOST PORT DBNAME CAFILE < 'USER TOKEN' lines
 *
 * Exit status: 0 all logged in, 1 some did not (counts on stderr), 2 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

int main(int argc, char **argv)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int ok = 0, bad = 0;

    if (argc != 5) {
        fprintf(stderr, "usage: pglogin HOST PORT DBNAME CAFILE < 'USER TOKEN' lines\n");
        return 2;
    }
    while ((n = getline(&line, &cap, stdin)) > 0) {
        char *sp;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || !(sp = strchr(line, ' ')))
            continue;
        *sp = '\0';
        const char *keys[] = { "host", "port", "dbname", "user", "password", "sslmode",
                               "sslrootcert", "connect_timeout", NULL };
        const char *vals[] = { argv[1], argv[2], argv[3], line, sp + 1, "verify-full", argv[4],
                               "10", NULL };
        PGconn *c = PQconnectdbParams(keys, vals, 0);
        if (PQstatus(c) == CONNECTION_OK) {
            ok++;
            fputs("ok\n", stdout);
        } else {
            bad++;
            fputs("fail\n", stdout);
            fprintf(stderr, "pglogin: login as %s failed\n", line);
        }
        fflush(stdout);
        PQfinish(c);
        memset(line, 0, (size_t)n);
    }
    free(line);
    fprintf(stderr, "pglogin: %d ok, %d failed\n", ok, bad);
    return bad ? 1 : 0;
}
