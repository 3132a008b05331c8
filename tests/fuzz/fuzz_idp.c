/* idp_parse_token_response (idp/idp.h): a token endpoint's status and body. The first byte
 * picks the status (200 most often, then the error statuses Entra ID and IMDS send, then any),
 * the rest is the body; "now" is fixed. Invariants: the result is 0, ERR_REJECTED,
 * ERR_UNAVAILABLE or ERR_PARSE, ERR_UNAVAILABLE exactly for 0, 429 and 5xx errors; a token is
 * the body's access_token, issued at a time, and not expired more than the skew tolerance
 * ago; for a 200 reply, no message holds the access_token. */
#include <cJSON.h>

#include "base/err.h"
#include "base/json.h"
#include "idp/idp.h"
#include "fuzz.h"

#define NOW 1795450451LL /* 2026-11-23T16:14:11Z */

static const long statuses[] = { 200, 200, 200, 200, 400, 401, 403, 404, 429, 500, 502, 503, 0,
                                 302, 199, 600 };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct idp_token tok = { NULL, 0, 0 };
    const char *body;
    size_t len;
    long status;
    cJSON *j = NULL;
    int rc;

    if (size == 0)
        return 0;
    status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    body = (const char *)data + 1;
    len = size - 1;
    rc = idp_parse_token_response(&tok, status, body, len, NOW);
    FUZZ_CHECK(rc == 0 || rc == ERR_REJECTED || rc == ERR_UNAVAILABLE || rc == ERR_PARSE);
    if (status != 200 && rc < 0)
        FUZZ_CHECK((rc == ERR_UNAVAILABLE) == (status == 0 || status == 429 || status >= 500));
    FUZZ_CHECK(rc != 0 || status == 200);
    if (json_parse(&j, body, len, 1u << 20) == 0 && status == 200) {
        const char *at = json_str(j, "access_token");
        if (rc == 0) {
            FUZZ_CHECK(at && sbuf_len(tok.token) == strlen(at) &&
                       memcmp(sbuf_expose(tok.token), at, strlen(at)) == 0);
            FUZZ_CHECK(tok.expires_at > NOW - 300);
            FUZZ_CHECK(tok.issued_at != 0);
        } else if (at && strlen(at) >= 8 && strchr(at, '.')) {
            /* No message for a 200 reply has a '.': a JWT-shaped token cannot match by chance. */
            FUZZ_CHECK(!strstr(err_msg(), at));
        }
    }
    json_wipe_delete(j);
    idp_token_release(&tok);
    return 0;
}
