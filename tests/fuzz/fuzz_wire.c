/* The protocol's framing and readers (pg/wire.h), fed what a client or a server could send:
 * the input is a first packet followed by typed messages, as on a connection. Checked:
 *   - framing never claims more bytes than given, and a whole packet's size is what its
 *     length says;
 *   - a StartupMessage that parses is built again by pgw_put_startup to the same bytes
 *     (version 3.0 only), a CancelRequest by pgw_put_cancel;
 *   - every reader returns 0 or ERR_PARSE, and what it points to lies inside the message. */
#include "base/buf.h"
#include "base/err.h"
#include "fuzz.h"
#include "pg/wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static bool inside(const void *p, const struct pgw_msg *m)
{
    const unsigned char *q = p;

    return q >= m->body && q < m->body + m->len;
}

static void first_checks(const uint8_t *data, size_t n)
{
    struct pgw_first f;
    struct buf b = BUF_INIT(2 * PGW_FIRST_MAX);
    int rc = pgw_first_parse(&f, data, n);

    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    if (rc)
        return;
    if (f.kind == PGW_STARTUP && f.version == PGW_PROTO_3_0) {
        FUZZ_CHECK(pgw_put_startup(&b, f.params, f.nparams) == 0);
        FUZZ_CHECK(b.len == n && memcmp(b.ptr, data, n) == 0);
    } else if (f.kind == PGW_CANCEL) {
        FUZZ_CHECK(pgw_put_cancel(&b, f.pid, f.key) == 0);
        FUZZ_CHECK(b.len == n && memcmp(b.ptr, data, n) == 0);
    } else if (f.kind == PGW_SSL) {
        FUZZ_CHECK(pgw_put_ssl_request(&b) == 0);
        FUZZ_CHECK(b.len == n && memcmp(b.ptr, data, n) == 0);
    }
    buf_release(&b);
}

static void msg_checks(const struct pgw_msg *m)
{
    const unsigned char *data;
    const char *a, *b;
    uint32_t u, v;
    size_t n;
    char c;
    int rc;

    if ((rc = pgw_read_auth(&u, &data, &n, m)) == 0)
        FUZZ_CHECK(data + n == m->body + m->len);
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    rc = pgw_read_backend_key(&u, &v, m);
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    rc = pgw_read_ready(&c, m);
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    if ((rc = pgw_read_param_status(&a, &b, m)) == 0)
        FUZZ_CHECK(inside(a, m) && inside(b, m) && (const unsigned char *)b > (const unsigned char *)a);
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    if ((rc = pgw_read_fields(m)) == 0) {
        for (const char *k = "SVCMDHP"; *k; k++) {
            const char *f = pgw_field(m, *k);
            FUZZ_CHECK(!f || (inside(f, m) && memchr(f, '\0', m->len - (size_t)((const unsigned char *)f - m->body))));
        }
    }
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    if ((rc = pgw_read_sasl_initial(&a, &data, &n, m)) == 0)
        FUZZ_CHECK(inside(a, m) && (!data || data + n == m->body + m->len));
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0, off;
    int rc = pgw_frame(&n, data, size, false, PGW_FIRST_MAX);

    FUZZ_CHECK(rc == 0 || rc == 1 || rc == ERR_PARSE || rc == ERR_TOOBIG);
    if (rc != 1)
        return 0;
    FUZZ_CHECK(n >= 8 && n <= size && n <= PGW_FIRST_MAX);
    first_checks(data, n);
    for (off = n; off < size; off += n) {
        struct pgw_msg m;

        rc = pgw_frame(&n, data + off, size - off, true, 1u << 16);
        FUZZ_CHECK(rc == 0 || rc == 1 || rc == ERR_PARSE || rc == ERR_TOOBIG);
        if (rc != 1)
            break;
        FUZZ_CHECK(n >= 5 && n <= size - off);
        pgw_msg_split(&m, data + off, n);
        FUZZ_CHECK(m.len == n - 5);
        msg_checks(&m);
    }
    return 0;
}
