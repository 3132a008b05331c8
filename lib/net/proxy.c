#include "net/proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "base/banned.h"

int proxy_from_env(struct proxy *px, const char *const *names)
{
    const char *v = NULL, *name = NULL, *auth, *colon;
    struct url u;
    char tmp[URL_HOST_MAX + 32];
    size_t alen;
    int rc;

    memset(px, 0, sizeof(*px));
    for (; *names && !(v && *v); names++)
        v = getenv(name = *names);
    if (!v || !*v)
        return 0;
    if (strstr(v, "://") && strncmp(v, "http://", 7))
        return err_set(ERR_INVALID, "%s: only http:// proxies are supported", name);
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s%s", strstr(v, "://") ? "" : "http://", v) >=
        sizeof(tmp))
        return err_set(ERR_INVALID, "%s is too long", name);
    if ((rc = url_parse(&u, tmp)) < 0) /* its message would quote the value */
        return err_set(rc, "%s is not a usable proxy (http://host[:port], no credentials)",
                       name);
    auth = tmp + 7;
    alen = strcspn(auth, "/?#");
    colon = memrchr(auth, ':', alen);
    px->set = true;
    snprintf(px->host, sizeof(px->host), "%s", u.host);
    /* curl's default proxy port when the value names none */
    px->port = colon && !memchr(colon, ']', alen - (size_t)(colon - auth)) ? u.port : 1080;
    return 0;
}

bool proxy_bypass(const char *list, const char *host)
{
    unsigned char addr[16], net[16];
    int fam = inet_pton(AF_INET, host, addr) == 1 ? AF_INET
            : inet_pton(AF_INET6, host, addr) == 1 ? AF_INET6 : 0;
    size_t hl = strlen(host);

    for (const char *p = list; p && *p;) {
        char e[URL_HOST_MAX];
        size_t n = strcspn(p, ",");
        const char *s = p, *slash;

        p += n + (p[n] == ',');
        while (n && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (!n || n >= sizeof(e))
            continue;
        memcpy(e, s, n);
        e[n] = '\0';
        if (!strcmp(e, "*"))
            return true;
        if ((slash = strchr(e, '/')) && fam) { /* CIDR */
            int efam = fam, max = fam == AF_INET ? 32 : 128;
            char *bend;
            long bits = strtol(slash + 1, &bend, 10);
            e[slash - e] = 0;
            if (inet_pton(efam, e, net) != 1 || *bend || bend == slash + 1 || bits < 0 || bits > max)
                continue;
            bool in = !memcmp(addr, net, (size_t)bits / 8);
            if (in && bits % 8) {
                unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));
                in = (addr[bits / 8] & mask) == (net[bits / 8] & mask);
            }
            if (in)
                return true;
            continue;
        }
        if (e[0] == '[') { /* [v6] or [v6]:port */
            char *close = strchr(e, ']');
            if (close)
                *close = '\0';
            memmove(e, e + 1, strlen(e));
        } else if (strchr(e, ':') == strrchr(e, ':') && strchr(e, ':')) {
            *strchr(e, ':') = '\0'; /* host:port */
        }
        const char *d = e[0] == '.' ? e + 1 : e;
        size_t dl = strlen(d);
        if (!strcasecmp(host, d) ||
            (dl < hl && host[hl - dl - 1] == '.' && !strcasecmp(host + hl - dl, d)))
            return true;
    }
    return false;
}
