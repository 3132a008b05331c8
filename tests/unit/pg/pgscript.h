/* tests/unit/pg/pgscript.h: a scripted PostgreSQL server on loopback for one libpq connection,
 * so that what lib/pg writes and reads of the protocol is held against libpq 15, the real
 * client. A test gives the function that plays the server's side on the accepted socket
 * (with pgs_read and pgs_write); the thread then reads until libpq closes. Header-only (the
 * unit-test rule links one test file with the harness). */
#ifndef PGTR_TEST_PGSCRIPT_H
#define PGTR_TEST_PGSCRIPT_H

#include "t.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "pg/wire.h"

struct pgscript {
    void (*serve)(struct pgscript *s, int fd); /* the server's side of the login */
    void *ctx;                                 /* the test's */
    int lfd;                                   /* the listener (serve may accept more) */
    unsigned short port;
    pthread_t th;
    bool served; /* the connection came and serve returned */
};

/* Reads one whole packet (typed or a first one) into out; its size, or 0 on EOF or error. */
static size_t pgs_read(int fd, unsigned char *out, size_t cap, bool typed)
{
    size_t have = 0, total = 0;

    for (;;) {
        int rc = pgw_frame(&total, out, have, typed, cap);
        ssize_t n;

        if (rc == 1)
            return total;
        if (rc < 0)
            return 0;
        n = read(fd, out + have, (total ? total : (typed ? 5 : 4)) - have);
        if (n <= 0)
            return 0;
        have += (size_t)n;
    }
}

static bool pgs_write(int fd, const void *data, size_t len)
{
    const char *p = data;

    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, p + off, len - off);
        if (n <= 0)
            return false;
        off += (size_t)n;
    }
    return true;
}

static void *pgs_run(void *arg)
{
    struct pgscript *s = arg;
    unsigned char drain[256];
    int fd = accept(s->lfd, NULL, NULL);

    if (fd < 0)
        return NULL;
    s->serve(s, fd);
    s->served = true;
    while (read(fd, drain, sizeof(drain)) > 0) /* until libpq's Terminate and close */
        ;
    close(fd);
    return NULL;
}

static bool pgs_start(struct pgscript *s)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);

    if ((s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s->lfd, 4) < 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al) < 0 ||
        pthread_create(&s->th, NULL, pgs_run, s) != 0) {
        t_fail(__FILE__, __LINE__, "could not start the scripted server");
        return false;
    }
    s->port = ntohs(a.sin_port);
    return true;
}

/* After libpq has closed its connection. */
static void pgs_stop(struct pgscript *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
}

/* libpq's connection to the script as user "app" to database "appdb", no TLS, with password
 * when not NULL. */
static PGconn *pgs_connect(const struct pgscript *s, const char *password)
{
    char port[8];
    const char *k[] = { "host", "port", "user", "dbname", "application_name", "sslmode",
                        "gssencmode", "connect_timeout", "password", NULL };
    const char *v[] = { "127.0.0.1", port, "app", "appdb", "wire-test", "disable", "disable",
                        "5", password, NULL };

    snprintf(port, sizeof(port), "%u", s->port);
    return PQconnectdbParams(k, v, 0);
}

/* What a server sends once a login has succeeded: what libpq needs to be ready. */
static void pgs_welcome(struct buf *b)
{
    T_RC(pgw_put_auth(b, PGW_AUTH_OK, NULL, 0), 0);
    T_RC(pgw_put_param_status(b, "server_version", "15.8"), 0);
    T_RC(pgw_put_param_status(b, "client_encoding", "UTF8"), 0);
    T_RC(pgw_put_param_status(b, "integer_datetimes", "on"), 0);
    T_RC(pgw_put_backend_key(b, 4242, 0x5eed1234u), 0);
    T_RC(pgw_put_ready(b, 'I'), 0);
}

#endif
