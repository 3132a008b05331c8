/* Proxies from the environment, read as curl and Go read them: a proxy
 * variable holds "http://host[:port]" or "host[:port]" (port 1080 when none
 * is given); NO_PROXY lists the hosts that go direct. */
#ifndef PGTR_PROXY_H
#define PGTR_PROXY_H

#include <stdbool.h>

#include "net/url.h"

struct proxy {
    bool set;
    char host[URL_HOST_MAX];
    unsigned port;
};

/* *px from the first of names (NULL-terminated) set and not empty in the
 * environment; px->set false when none is. 0, or ERR_INVALID for a value that
 * is not an http:// proxy without credentials (the message names the
 * variable). */
int proxy_from_env(struct proxy *px, const char *const *names);

/* Whether the NO_PROXY list no_proxy (comma-separated: "*", host names that
 * match themselves and their subdomains, with or without a leading dot, IP
 * addresses, CIDR blocks, each maybe with a ":port", which is ignored) says
 * host goes direct. Names compare without case. */
bool proxy_bypass(const char *no_proxy, const char *host);

#endif
