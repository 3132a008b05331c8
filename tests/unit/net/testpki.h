/* tests/unit/net/testpki.h: certificates made in the test (no files in the tree, nothing that
 * expires in it): make_cert signs a CA or a leaf, pem writes one as PEM text and a file.
 * Header-only (the unit-test rule links one test file with the harness). */
#ifndef PGTR_TEST_TESTPKI_H
#define PGTR_TEST_TESTPKI_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* A certificate for key named cn, signed by issuer_key for issuer; with no
 * issuer a self-signed CA. san: the subjectAltName, or NULL. NULL when it
 * could not be signed. (The setters fail only without memory, and a
 * certificate short of a part fails the TLS tests: it cannot pass them.) */
static inline X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer,
                       EVP_PKEY *issuer_key)
{
    const struct {
        int nid;
        const char *value;
    } ext[] = { { NID_basic_constraints, issuer ? NULL : "critical,CA:TRUE" },
                { NID_key_usage, issuer ? NULL : "critical,keyCertSign,cRLSign" },
                { NID_subject_alt_name, san } };
    static long serial;
    X509 *x = X509_new();
    X509_NAME *name;
    X509V3_CTX v;

    if (!x)
        return NULL;
    name = X509_get_subject_name(x);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(x, key);
    X509V3_set_ctx_nodb(&v);
    X509V3_set_ctx(&v, issuer ? issuer : x, x, NULL, NULL, 0);
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        X509_EXTENSION *e =
            ext[i].value ? X509V3_EXT_conf_nid(NULL, &v, ext[i].nid, ext[i].value) : NULL;
        if (e)
            X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    if (X509_sign(x, issuer ? issuer_key : key, EVP_sha256()) > 0)
        return x;
    X509_free(x);
    return NULL;
}

/* PEM text of x, or of k when x is NULL (free()), also written to path;
 * NULL on failure. */
static inline char *pem(X509 *x, EVP_PKEY *k, const char *path)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out = NULL;
    FILE *f = NULL;
    long n;

    if (b && (x ? PEM_write_bio_X509(b, x) : PEM_write_bio_PrivateKey(b, k, 0, 0, 0, 0, 0)) &&
        (n = BIO_get_mem_data(b, &data)) > 0 && (f = fopen(path, "w")) &&
        fwrite(data, 1, (size_t)n, f) == (size_t)n && (out = malloc((size_t)n + 1))) {
        /* not strndup: the bytes are not NUL-terminated, and ASan's strndup
         * reads one past n when no NUL comes before it */
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
    }
    if (f && fclose(f) != 0) {
        free(out);
        out = NULL;
    }
    BIO_free(b);
    return out;
}

#endif
