#include "net/url.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/banned.h"

int url_parse(struct url *u, const char *s)
{
    const char *p, *h, *he;
    bool literal;
    size_t hl;

    if (!strncmp(s, "https://", 8)) {
        u->tls = true;
        p = s + 8;
    } else if (!strncmp(s, "http://", 7)) {
        u->tls = false;
        p = s + 7;
    } else {
        return err_set(ERR_INVALID, "URL %s is not http:// or https://", s);
    }
    u->port = u->tls ? 443 : 80;
    h = p;
    if ((literal = *p == '[')) {
        h = p + 1;
        if (!(he = strchr(h, ']')))
            return err_set(ERR_INVALID, "URL %s has an unclosed [", s);
        p = he + 1;
    } else {
        p = he = h + strcspn(h, ":/?#@");
    }
    if (*p == '@' || memchr(h, '@', (size_t)(he - h)))
        return err_set(ERR_INVALID, "a URL has user information (not supported; not shown)");
    hl = (size_t)(he - h);
    if (hl == 0 || hl >= sizeof(u->host))
        return err_set(ERR_INVALID, "URL %s has no host or one too long", s);
    for (size_t i = 0; i < hl; i++) {
        char ch = h[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
                  (literal && (ch == ':' || ch == '%'));
        if (!ok)
            return err_set(ERR_INVALID, "URL %s has a bad character in its host", s);
    }
    memcpy(u->host, h, hl);
    u->host[hl] = '\0';
    if (*p == ':') {
        char *end;
        unsigned long port = strtoul(p + 1, &end, 10);
        if (end == p + 1 || port == 0 || port > 65535 || (*end && !strchr("/?#", *end)))
            return err_set(ERR_INVALID, "URL %s has a bad port", s);
        u->port = (unsigned)port;
        p = end;
    } else if (*p && !strchr("/?#", *p)) {
        return err_set(ERR_INVALID, "URL %s is malformed after the host", s);
    }
    u->path = *p == '#' ? "" : p;
    return 0;
}
