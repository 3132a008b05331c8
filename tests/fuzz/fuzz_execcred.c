/* An exec plugin's stdout (kube_exec_credential_parse, kube/execcred.h): the ExecCredential
 * kube_config_cred reads from plugins such as kubelogin. The first byte's low bit picks the
 * configured apiVersion (v1 or v1beta1); the rest is the output. Invariants: 0 or ERR_PARSE;
 * a credential is a token, or a PEM certificate with its key, or both; an expiry written in UTC
 * is what clock_parse_rfc3339 reads; no message holds the token (checked for tokens with a
 * non-ASCII byte, which no message text can hold by chance). */
#include <cJSON.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/json.h"
#include "base/sbuf.h"
#include "kube/execcred.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static bool non_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kube_cred c = KUBE_CRED_INIT;
    const char *ver, *text = (const char *)data + 1;
    int64_t expires_at = -1;
    cJSON *j = NULL;
    int rc;

    if (size == 0)
        return 0;
    ver = data[0] & 1 ? "client.authentication.k8s.io/v1"
                      : "client.authentication.k8s.io/v1beta1";
    rc = kube_exec_credential_parse(&c, &expires_at, text, size - 1, ver);
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    if (json_parse(&j, text, size - 1, 1u << 20) == 0) {
        const cJSON *st = json_obj(j, "status");
        const char *tok = json_str(st, "token"), *ts = json_str(st, "expirationTimestamp");
        if (rc == 0) {
            FUZZ_CHECK(c.bearer || (c.cert_pem && c.key_pem));
            FUZZ_CHECK(!c.cert_pem == !c.key_pem);
            if (c.bearer)
                FUZZ_CHECK(tok && strcmp(sbuf_expose(c.bearer), tok) == 0);
            if (c.cert_pem)
                FUZZ_CHECK(strstr(c.cert_pem, "-----BEGIN ") &&
                           strstr(sbuf_expose(c.key_pem), "-----BEGIN "));
            if (ts && *ts && ts[strlen(ts) - 1] == 'Z') {
                int64_t t;
                FUZZ_CHECK(clock_parse_rfc3339(&t, ts) == 0 && t == expires_at);
            }
            if (!ts || !*ts)
                FUZZ_CHECK(expires_at == 0);
        } else if (tok && strlen(tok) >= 2 && non_ascii(tok)) {
            FUZZ_CHECK(!strstr(err_msg(), tok));
        }
    }
    FUZZ_CHECK(rc == 0 || (!c.bearer && !c.cert_pem && !c.key_pem));
    json_wipe_delete(j);
    kube_cred_release(&c);
    return 0;
}
