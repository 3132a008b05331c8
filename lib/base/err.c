#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/banned.h"

#define ERR_MSG_MAX 512

static _Thread_local char msg[ERR_MSG_MAX];
static _Thread_local int64_t retry_after_s;

int err_set(int code, const char *fmt, ...)
{
    char tmp[ERR_MSG_MAX];
    va_list ap;

    /* Format into a copy: an argument may be err_msg() itself. */
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    memcpy(msg, tmp, sizeof(msg));
    /* A Retry-After belongs to the one error it came with: whoever has one sets it
     * after this call. Kept across errors, a 429's wait would stretch a later,
     * unrelated failure's retry on the same thread. */
    retry_after_s = 0;
    return code;
}

int err_wrap(int code, const char *fmt, ...)
{
    char prefix[ERR_MSG_MAX], old[ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, msg, sizeof(old));
    /* Truncation is acceptable: the message is for people. */
    if (snprintf(msg, sizeof(msg), "%s: %s", prefix, old) < 0)
        msg[0] = '\0';
    return code;
}

const char *err_msg(void)
{
    return msg;
}

const char *err_name(int code)
{
    switch (code) {
    case 0: return "ok";
    case ERR_INVALID: return "invalid";
    case ERR_NOTFOUND: return "not_found";
    case ERR_CONFLICT: return "conflict";
    case ERR_GONE: return "gone";
    case ERR_DENIED: return "denied";
    case ERR_UNAVAILABLE: return "unavailable";
    case ERR_TLS: return "tls";
    case ERR_PARSE: return "parse";
    case ERR_TOOBIG: return "too_big";
    case ERR_REJECTED: return "rejected";
    case ERR_IO: return "io";
    default: return "unknown";
    }
}

int64_t err_retry_after_s(void)
{
    return retry_after_s;
}

void err_set_retry_after_s(int64_t s)
{
    retry_after_s = s;
}
