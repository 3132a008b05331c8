/* The proxy's login state machine (proxy/session.h), fed what a client and a server could
 * send: the input's first byte picks the client's login (trust or SCRAM) and where it is cut,
 * the rest, split at the first "\n--\n", is the client's bytes and then the server's (after
 * its connect and TLS). Checked: every call returns a known action; once closed it stays
 * closed; the token never reaches the client; a relayed session is counted ok. */
#include <string.h>

#include "base/err.h"
#include "fuzz.h"
#include "pg/scram.h"
#include "proxy/session.h"

#define TOKEN "eyJhbGciOiJSUzI1NiJ9.fuzz-token-body.c2lnbmF0dXJl"

static struct scram_secret secret;

static int token(void *ctx, struct sbuf **out)
{
    (void)ctx;
    *out = sbuf_from(TOKEN, strlen(TOKEN));
    return 0;
}

static void fixed(void *out, size_t n)
{
    memset(out, 7, n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const unsigned char salt[16] = { 1 };
    struct sbuf *pw = sbuf_from("pencil", 6);

    (void)argc, (void)argv;
    fuzz_quiet();
    FUZZ_CHECK(scram_secret_make(&secret, pw, 16, salt, sizeof(salt)) == 0);
    sbuf_free(pw);
    return 0;
}

static bool known(enum session_do d)
{
    return d >= SES_READ && d <= SES_CLOSE;
}

static void no_token(const struct session *s)
{
    FUZZ_CHECK(!memmem(s->client_out.ptr ? s->client_out.ptr : "", s->client_out.len, TOKEN,
                       strlen(TOKEN)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct session_cfg cfg = { .role = "app", .database = "appdb", .upstream = "db:5432",
                               .token = token, .random = fixed };
    const uint8_t *sep;
    size_t client_len, cut;
    struct session s;
    enum session_do d = SES_READ;

    if (size < 1)
        return 0;
    cfg.password = data[0] & 1 ? &secret : NULL;
    cfg.client_tls = data[0] & 2;
    cut = (size_t)(data[0] >> 2) + 1;
    data++, size--;
    sep = memmem(data, size, "\n--\n", 4);
    client_len = sep ? (size_t)(sep - data) : size;
    session_init(&s, &cfg, 42);
    for (size_t off = 0; off < client_len && d != SES_CLOSE && d != SES_CANCEL; off += cut) {
        size_t n = client_len - off < cut ? client_len - off : cut;
        d = session_client_in(&s, data + off, n);
        FUZZ_CHECK(known(d));
        no_token(&s);
        if (d == SES_CLIENT_TLS)
            d = session_client_tls(&s);
    }
    if (d == SES_CONNECT && sep) {
        const uint8_t *up = sep + 4;
        size_t up_len = size - client_len - 4;

        FUZZ_CHECK(session_upstream_connected(&s) == SES_READ);
        d = session_upstream_in(&s, "S", 1);
        FUZZ_CHECK(d == SES_UPSTREAM_TLS);
        FUZZ_CHECK(session_upstream_tls(&s) == SES_READ);
        for (size_t off = 0; off < up_len && d != SES_CLOSE && d != SES_RELAY; off += cut) {
            size_t n = up_len - off < cut ? up_len - off : cut;
            d = session_upstream_in(&s, up + off, n);
            FUZZ_CHECK(known(d));
            no_token(&s);
        }
        if (d == SES_RELAY)
            FUZZ_CHECK(s.result == SES_R_OK);
    }
    if (d == SES_CLOSE)
        FUZZ_CHECK(session_client_in(&s, "x", 1) == SES_CLOSE);
    session_release(&s);
    return 0;
}
