/* An http:// or https:// URL split into what a request needs (net/http) and
 * what a proxy setting names (net/proxy). */
#ifndef PGTR_URL_H
#define PGTR_URL_H

#include <stdbool.h>

#define URL_HOST_MAX 256

struct url {
    bool tls;                 /* https:// */
    char host[URL_HOST_MAX];  /* without brackets for an IPv6 literal */
    unsigned port;            /* the scheme's default when the URL has none */
    const char *path;         /* into the URL: "/..." or "?..." with the query; "" for none */
};

/* Splits "http[s]://host[:port][/path][?query]" (host may be "[v6]"). 0: *u is
 * set; ERR_INVALID for another scheme, user information, no host, a bad port. */
int url_parse(struct url *u, const char *s);

#endif
