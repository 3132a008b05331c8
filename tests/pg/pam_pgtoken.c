/*
 * pam_pgtoken: a PAM module that makes a local PostgreSQL check logins the way Azure Database for
 * PostgreSQL checks Microsoft Entra ID logins: the password is an RS256 access token, and the role
 * being logged in to must be mapped to the token's `oid` (object id) claim.
 *
 * Test-world only. PostgreSQL (pg_hba method `pam`) hands us the password through the PAM
 * conversation. We ask the conversation ourselves instead of using pam_get_authtok or pam_exec,
 * which cut the password to PAM_MAX_RESP_SIZE - 1 (511 bytes) while tokens are 1-8 KB.
 *
 * Module arguments (in the /etc/pam.d service file):
 *   pubkey=PATH    PEM file with one or more "PUBLIC KEY" blocks (RSA, >= 2048 bits); repeatable
 *   audience=STR   required `aud` (string, or one element of an array);
 *                  default https://ossrdbms-aad.database.windows.net
 *   roles=PATH     mapping file, one "OID ROLE" a line (ROLE is the rest of the line after the first
 *                  space); '#' lines and blank lines are skipped; re-read on every login. A role may
 *                  appear on several lines: any of its object ids is accepted.
 *   issuer=STR     optional: `iss` must equal STR
 *
 * A token is accepted when it has three base64url parts, header alg RS256, a signature that
 * verifies with one of the keys, `exp` present and now < exp, now >= nbf (when present), the
 * audience (and issuer) above, and an `oid` mapped to PAM_USER. On refusal one line naming the
 * reason goes to stderr (the PostgreSQL log); the token itself is never written anywhere.
 */
#define _POSIX_C_SOURCE 200809L
/*
 * The RSA-specific API (d2i_RSA_PUBKEY, RSA_verify) is deprecated in OpenSSL 3 but still part of
 * it, and here it is 15-30 times faster than the EVP_PKEY path. Every PostgreSQL backend starts
 * cold, and with PEM_read_bio_PUBKEY + EVP_DigestVerify (provider decoders, key export) a whole
 * token check took 0.9-1.7 ms; with this path it takes 60 us (Debian 12, OpenSSL 3.0). The
 * benchmark logs in thousands of times, so the speed matters more than the deprecation.
 */
#define OPENSSL_API_COMPAT 0x10101000L

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAM_SM_AUTH
#include <security/pam_appl.h>
#include <security/pam_modules.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#define EXPORT __attribute__((visibility("default")))

#define DEFAULT_AUDIENCE "https://ossrdbms-aad.database.windows.net"

/* Caps on everything a client or a file can make us hold. */
#define TOKEN_MAX (64 * 1024)       /* whole password, bytes */
#define HEADER_B64_MAX 4096         /* encoded JOSE header */
#define PUBKEY_FILES_MAX 8
#define PUBKEYS_MAX 32              /* keys across all pubkey= files */
#define PUBKEY_BITS_MIN 2048
#define ROLES_LINE_MAX 4096         /* longer lines are ignored */
#define ROLES_FILE_MAX (16L * 1024 * 1024)
#define LOG_ROLE_MAX 128            /* bytes of the role name quoted in a log line */
#define WHY_MAX 512

struct config {
    const char *pubkey_paths[PUBKEY_FILES_MAX];
    int pubkey_paths_len;
    const char *audience;
    const char *roles_path;
    const char *issuer;                 /* NULL: iss is not checked */
};

struct keyring {
    RSA *keys[PUBKEYS_MAX];
    int keys_len;
};

/* The outcome of one login: a PAM code and, on refusal, why (no token bytes in it). */
struct verdict {
    int pam_rc;
    char why[WHY_MAX];
};

/* A decoded base64url segment; its bytes came from the token, so it is wiped when freed. */
struct segment {
    unsigned char *data;                /* NUL-terminated for the JSON parser */
    size_t len;
};

/* Records why the login is refused; returns -1 so callers can `return refuse(...)`. */
__attribute__((format(printf, 3, 4)))
static int refuse(struct verdict *v, int pam_rc, const char *fmt, ...)
{
    va_list ap;

    v->pam_rc = pam_rc;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof(v->why), fmt, ap);
    va_end(ap);
    return -1;
}

static void segment_release(struct segment *s)
{
    if (s->data) {
        OPENSSL_cleanse(s->data, s->len);
        free(s->data);
    }
    s->data = NULL;
    s->len = 0;
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * Decodes unpadded base64url (RFC 7515 section 2). Strict: no padding, no whitespace, unused
 * trailing bits must be zero. 0: *out holds the bytes (release with segment_release); -1: malformed.
 */
static int b64url_decode(struct segment *out, const char *in, size_t in_len)
{
    struct segment s = { NULL, 0 };
    uint32_t acc = 0;
    int bits = 0;

    if (in_len % 4 == 1)
        return -1;
    s.data = malloc(in_len / 4 * 3 + 3);
    if (!s.data)
        return -1;
    for (size_t i = 0; i < in_len; i++) {
        int v = b64url_value((unsigned char)in[i]);

        if (v < 0)
            goto bad;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            s.data[s.len++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        goto bad;
    s.data[s.len] = '\0';
    *out = s;
    return 0;
bad:
    segment_release(&s);
    return -1;
}

/* 0: cfg filled from the module arguments; -1: v says which argument is wrong. */
static int config_parse(struct config *cfg, struct verdict *v, int argc, const char **argv)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->audience = DEFAULT_AUDIENCE;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];

        if (strncmp(a, "pubkey=", 7) == 0) {
            if (cfg->pubkey_paths_len == PUBKEY_FILES_MAX)
                return refuse(v, PAM_SERVICE_ERR, "more than %d pubkey= arguments",
                              PUBKEY_FILES_MAX);
            cfg->pubkey_paths[cfg->pubkey_paths_len++] = a + 7;
        } else if (strncmp(a, "audience=", 9) == 0) {
            cfg->audience = a + 9;
        } else if (strncmp(a, "roles=", 6) == 0) {
            cfg->roles_path = a + 6;
        } else if (strncmp(a, "issuer=", 7) == 0) {
            cfg->issuer = a + 7;
        } else {
            return refuse(v, PAM_SERVICE_ERR, "unknown module argument '%.64s'", a);
        }
    }
    if (cfg->pubkey_paths_len == 0)
        return refuse(v, PAM_SERVICE_ERR, "no pubkey= argument");
    if (!cfg->roles_path)
        return refuse(v, PAM_SERVICE_ERR, "no roles= argument");
    if (cfg->audience[0] == '\0')
        return refuse(v, PAM_SERVICE_ERR, "empty audience= argument");
    return 0;
}

static void keyring_release(struct keyring *kr)
{
    for (int i = 0; i < kr->keys_len; i++)
        RSA_free(kr->keys[i]);
    kr->keys_len = 0;
}

/*
 * Reads every PUBLIC KEY block of path into kr; other PEM blocks are skipped.
 * 0, or -1 with v set (a configuration error: no such file, no key, a key not RSA >= 2048 bits).
 */
static int keyring_load_file(struct keyring *kr, struct verdict *v, const char *path)
{
    BIO *bio = BIO_new_file(path, "r");
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long der_len;
    int found = 0, rc = 0;

    if (!bio)
        return refuse(v, PAM_SERVICE_ERR, "cannot open pubkey file %s", path);
    while (PEM_read_bio(bio, &name, &header, &der, &der_len) == 1) {
        const unsigned char *p = der;
        RSA *key = NULL;

        if (strcmp(name, "PUBLIC KEY") == 0) {
            key = d2i_RSA_PUBKEY(NULL, &p, der_len);
            if (!key || RSA_bits(key) < PUBKEY_BITS_MIN) {
                RSA_free(key);
                rc = refuse(v, PAM_SERVICE_ERR, "%s: a key is not RSA of at least %d bits", path,
                            PUBKEY_BITS_MIN);
            } else if (kr->keys_len == PUBKEYS_MAX) {
                RSA_free(key);
                rc = refuse(v, PAM_SERVICE_ERR, "more than %d public keys", PUBKEYS_MAX);
            } else {
                kr->keys[kr->keys_len++] = key;
                found++;
            }
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
        name = header = NULL;
        der = NULL;
        if (rc < 0)
            goto out;
    }
    if (found == 0)
        rc = refuse(v, PAM_SERVICE_ERR, "no PUBLIC KEY block in %s", path);
out:
    BIO_free(bio);
    return rc;
}

/* 1: sig is a valid RSASSA-PKCS1-v1_5 SHA-256 signature of msg by one of the keys; else 0. */
static int keyring_verify_rs256(const struct keyring *kr, const char *msg, size_t msg_len,
                                const struct segment *sig)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];

    if (sig->len > UINT_MAX)
        return 0;
    SHA256((const unsigned char *)msg, msg_len, digest);
    /* RSA_verify requires sig_len == the modulus size and compares the whole re-encoded block. */
    for (int i = 0; i < kr->keys_len; i++)
        if (RSA_verify(NID_sha256, digest, sizeof(digest), sig->data, (unsigned int)sig->len,
                       kr->keys[i]) == 1)
            return 1;
    return 0;
}

/* 1: aud (a string or an array of strings) names audience; else 0. */
static int audience_matches(const cJSON *aud, const char *audience)
{
    const cJSON *el;

    if (cJSON_IsString(aud))
        return strcmp(aud->valuestring, audience) == 0;
    if (!cJSON_IsArray(aud))
        return 0;
    cJSON_ArrayForEach(el, aud) {
        if (cJSON_IsString(el) && strcmp(el->valuestring, audience) == 0)
            return 1;
    }
    return 0;
}

/*
 * Looks role up in the mapping file. 0: oid is mapped to role; -1: v says why not (role absent,
 * oid not the role's, or the file unreadable).
 */
static int roles_check(struct verdict *v, const char *path, const char *role, const char *oid)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t n;
    long total = 0;
    int role_seen = 0, rc = -1;

    if (!f)
        return refuse(v, PAM_SERVICE_ERR, "cannot read roles file %s: %s", path, strerror(errno));
    while ((n = getline(&line, &line_cap, f)) > 0) {
        char *sp;

        total += n;
        if (total > ROLES_FILE_MAX) {
            refuse(v, PAM_SERVICE_ERR, "roles file %s is larger than %ld bytes", path,
                   ROLES_FILE_MAX);
            goto out;
        }
        if (n > ROLES_LINE_MAX)
            continue;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#' || (sp = strchr(line, ' ')) == NULL)
            continue;
        *sp = '\0';
        if (strcmp(sp + 1, role) != 0)
            continue;
        role_seen = 1;
        if (strcmp(line, oid) == 0) {
            rc = 0;
            goto out;
        }
    }
    if (ferror(f))
        refuse(v, PAM_SERVICE_ERR, "error reading roles file %s", path);
    else if (!role_seen)
        refuse(v, PAM_AUTH_ERR, "role is not mapped to any principal in %s", path);
    else
        refuse(v, PAM_AUTH_ERR, "token oid is not the principal mapped to the role");
out:
    free(line);
    fclose(f);
    return rc;
}

/* Parses a decoded segment as a JSON object. 0: *out owns it (cJSON_Delete); -1: not an object. */
static int json_object_parse(cJSON **out, const struct segment *s)
{
    cJSON *j = cJSON_ParseWithLength((const char *)s->data, s->len);

    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return -1;
    }
    *out = j;
    return 0;
}

/* Checks the time, audience, issuer and oid claims. 0: acceptable for role; -1: v says why. */
static int claims_check(struct verdict *v, const struct config *cfg, const cJSON *claims,
                        const char *role)
{
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(claims, "exp");
    const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(claims, "nbf");
    const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud");
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");
    const cJSON *oid = cJSON_GetObjectItemCaseSensitive(claims, "oid");
    double now = (double)time(NULL);

    if (!exp)
        return refuse(v, PAM_AUTH_ERR, "token has no exp claim");
    if (!cJSON_IsNumber(exp))
        return refuse(v, PAM_AUTH_ERR, "token exp claim is not a number");
    if (!(now < exp->valuedouble))
        return refuse(v, PAM_AUTH_ERR, "token expired");
    if (nbf && !cJSON_IsNumber(nbf))
        return refuse(v, PAM_AUTH_ERR, "token nbf claim is not a number");
    if (nbf && !(now >= nbf->valuedouble))
        return refuse(v, PAM_AUTH_ERR, "token not yet valid (nbf is in the future)");
    if (!audience_matches(aud, cfg->audience))
        return refuse(v, PAM_AUTH_ERR, "token audience is not %s", cfg->audience);
    if (cfg->issuer && !(cJSON_IsString(iss) && strcmp(iss->valuestring, cfg->issuer) == 0))
        return refuse(v, PAM_AUTH_ERR, "token issuer is not %s", cfg->issuer);
    if (!cJSON_IsString(oid) || oid->valuestring[0] == '\0')
        return refuse(v, PAM_AUTH_ERR, "token has no oid claim");
    return roles_check(v, cfg->roles_path, role, oid->valuestring);
}

/* Validates token (tok_len bytes) for role. 0: accepted; -1: v says why not. */
static int token_check(struct verdict *v, const struct config *cfg, const char *tok,
                       size_t tok_len, const char *role)
{
    struct keyring kr = { .keys_len = 0 };
    struct segment hdr_raw = { NULL, 0 }, claims_raw = { NULL, 0 }, sig = { NULL, 0 };
    cJSON *hdr = NULL, *claims = NULL;
    const cJSON *alg;
    const char *dot1, *dot2;
    int rc = -1;

    if (tok_len > TOKEN_MAX)
        return refuse(v, PAM_AUTH_ERR, "token longer than %d bytes", TOKEN_MAX);
    dot1 = memchr(tok, '.', tok_len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', tok_len - (size_t)(dot1 + 1 - tok)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', tok_len - (size_t)(dot2 + 1 - tok)))
        return refuse(v, PAM_AUTH_ERR, "password is not a JWT (want three dot-separated parts)");
    if ((size_t)(dot1 - tok) > HEADER_B64_MAX ||
        b64url_decode(&hdr_raw, tok, (size_t)(dot1 - tok)) < 0 ||
        json_object_parse(&hdr, &hdr_raw) < 0) {
        refuse(v, PAM_AUTH_ERR, "token header is not base64url JSON");
        goto out;
    }
    alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "RS256") != 0) {
        refuse(v, PAM_AUTH_ERR, "token alg is not RS256");
        goto out;
    }
    if (cJSON_GetObjectItemCaseSensitive(hdr, "crit")) {
        refuse(v, PAM_AUTH_ERR, "token header has crit extensions, none are supported");
        goto out;
    }
    if (b64url_decode(&sig, dot2 + 1, tok_len - (size_t)(dot2 + 1 - tok)) < 0 || sig.len == 0) {
        refuse(v, PAM_AUTH_ERR, "token signature is not base64url");
        goto out;
    }
    for (int i = 0; i < cfg->pubkey_paths_len; i++)
        if (keyring_load_file(&kr, v, cfg->pubkey_paths[i]) < 0)
            goto out;
    if (!keyring_verify_rs256(&kr, tok, (size_t)(dot2 - tok), &sig)) {
        refuse(v, PAM_AUTH_ERR, "token signature does not verify with any configured key");
        goto out;
    }
    if (b64url_decode(&claims_raw, dot1 + 1, (size_t)(dot2 - dot1 - 1)) < 0 ||
        json_object_parse(&claims, &claims_raw) < 0) {
        refuse(v, PAM_AUTH_ERR, "token claims are not base64url JSON");
        goto out;
    }
    rc = claims_check(v, cfg, claims, role);
out:
    cJSON_Delete(claims);
    cJSON_Delete(hdr);
    segment_release(&sig);
    segment_release(&claims_raw);
    segment_release(&hdr_raw);
    keyring_release(&kr);
    return rc;
}

/*
 * Asks the application for the password with one PAM_PROMPT_ECHO_OFF message.
 * PAM_SUCCESS: *out is a malloc'd NUL-terminated copy (caller wipes and frees); else a PAM code.
 */
static int password_ask(char **out, pam_handle_t *pamh)
{
    const void *item = NULL;
    const struct pam_conv *conv;
    struct pam_message msg = { .msg_style = PAM_PROMPT_ECHO_OFF, .msg = "Access token: " };
    const struct pam_message *msgs[1] = { &msg };
    struct pam_response *resp = NULL;
    int rc;

    if (pam_get_item(pamh, PAM_CONV, &item) != PAM_SUCCESS || !item)
        return PAM_CONV_ERR;
    conv = item;
    if (!conv->conv)
        return PAM_CONV_ERR;
    rc = conv->conv(1, msgs, &resp, conv->appdata_ptr);
    if (rc == PAM_SUCCESS && (!resp || !resp[0].resp))
        rc = PAM_CONV_ERR;
    if (rc == PAM_SUCCESS) {
        *out = resp[0].resp;
        resp[0].resp = NULL;
    } else if (resp && resp[0].resp) {
        OPENSSL_cleanse(resp[0].resp, strlen(resp[0].resp));
        free(resp[0].resp);
    }
    free(resp);
    return rc;
}

/* Copies a client-chosen role name for a log line: bounded, control bytes replaced by '?'. */
static void role_for_log(char *out, size_t out_size, const char *role)
{
    size_t i;

    for (i = 0; role[i] && i + 1 < out_size; i++) {
        unsigned char c = (unsigned char)role[i];

        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[i] = '\0';
}

EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    struct verdict v = { .pam_rc = PAM_AUTH_ERR, .why = "" };
    struct config cfg;
    const char *role = NULL;
    char *pw = NULL;
    char role_log[LOG_ROLE_MAX + 1];
    int rc;

    (void)flags;
    if (pam_get_user(pamh, &role, NULL) != PAM_SUCCESS || !role || !role[0]) {
        fprintf(stderr, "pam_pgtoken: refused: no user name\n");
        return PAM_USER_UNKNOWN;
    }
    role_for_log(role_log, sizeof(role_log), role);
    if (config_parse(&cfg, &v, argc, argv) < 0) {
        fprintf(stderr, "pam_pgtoken: refused role %s: configuration error: %s\n", role_log, v.why);
        return v.pam_rc;
    }
    rc = password_ask(&pw, pamh);
    if (rc != PAM_SUCCESS) {
        /* PostgreSQL answers PAM_CONV_ERR when the client sent no password; it logs that itself. */
        return rc;
    }
    rc = token_check(&v, &cfg, pw, strlen(pw), role) < 0 ? v.pam_rc : PAM_SUCCESS;
    OPENSSL_cleanse(pw, strlen(pw));
    free(pw);
    /* We share libcrypto with PostgreSQL's TLS code: leave it no stale errors to misreport. */
    ERR_clear_error();
    if (rc != PAM_SUCCESS)
        fprintf(stderr, "pam_pgtoken: refused role %s: %s\n", role_log, v.why);
    return rc;
}

EXPORT int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)pamh;
    (void)flags;
    (void)argc;
    (void)argv;
    return PAM_SUCCESS;
}
