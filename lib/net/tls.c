/* TLS contexts and peer checks (net/tls.h). */
#include "net/tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "base/err.h"
#include "base/banned.h"

/* The system's bundle when no CA is named (Debian's ca-certificates, also in the
 * image); SSL_CERT_FILE or SSL_CERT_DIR in the environment choose another. */
#define TLS_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

const char *tls_errors(char *out, size_t n)
{
    unsigned long e, last = 0;

    while ((e = ERR_get_error()))
        last = e;
    if (!last)
        return snprintf(out, n, "connection closed"), out;
    ERR_error_string_n(last, out, n);
    return out;
}

static int pem_to_store(X509_STORE *st, const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x;
    int n = 0;

    while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
        if (X509_STORE_add_cert(st, x))
            n++;
        X509_free(x);
    }
    ERR_clear_error(); /* the end of the PEM text */
    BIO_free(b);
    return n;
}

static bool load_ca(SSL_CTX *ctx, const struct tls_opts *o)
{
    if (o->ca_pem)
        return pem_to_store(SSL_CTX_get_cert_store(ctx), o->ca_pem) > 0;
    if (o->ca_file)
        return SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL);
    if (!getenv("SSL_CERT_FILE") && !getenv("SSL_CERT_DIR") && access(TLS_CA_BUNDLE, R_OK) == 0)
        return SSL_CTX_load_verify_locations(ctx, TLS_CA_BUNDLE, NULL);
    return SSL_CTX_set_default_verify_paths(ctx);
}

/* Our certificate and key, when o names them. */
static bool load_own(SSL_CTX *ctx, const struct tls_opts *o)
{
    bool ok = true;

    if (o->cert_pem) {
        BIO *b = BIO_new_mem_buf(o->cert_pem, -1);
        X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        ok = x && SSL_CTX_use_certificate(ctx, x);
        X509_free(x);
        BIO_free(b);
    } else if (o->cert_file) {
        ok = SSL_CTX_use_certificate_chain_file(ctx, o->cert_file);
    }
    if (ok && o->key_pem) {
        BIO *b = BIO_new_mem_buf(sbuf_expose(o->key_pem), (int)sbuf_len(o->key_pem));
        EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        ok = k && SSL_CTX_use_PrivateKey(ctx, k);
        EVP_PKEY_free(k);
        BIO_free(b);
    } else if (ok && o->key_file) {
        ok = SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM);
    }
    return ok;
}

static int refused(SSL_CTX *ctx, const char *what)
{
    char why[256];

    SSL_CTX_free(ctx);
    return err_set(ERR_TLS, "TLS options not accepted (%s): %s", what,
                   tls_errors(why, sizeof(why)));
}

int tls_client_ctx(SSL_CTX **out, const struct tls_opts *o, const char *alpn, size_t alpn_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) || !load_ca(ctx, o) ||
        !load_own(ctx, o))
        return refused(ctx, "CA, client certificate or key");
    SSL_CTX_set_verify(ctx, o->insecure_skip_tls_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (alpn && SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)alpn, (unsigned)alpn_len))
        return refused(ctx, "ALPN");
    *out = ctx;
    return 0;
}

int tls_server_ctx(SSL_CTX **out, const struct tls_opts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!o->cert_file && !o->cert_pem)
        return refused(ctx, "a server needs a certificate and key");
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) || !load_own(ctx, o) ||
        !SSL_CTX_check_private_key(ctx))
        return refused(ctx, "server certificate or key");
    *out = ctx;
    return 0;
}

int tls_set_peer(SSL *ssl, const char *host, bool verify)
{
    unsigned char ip[16];
    bool literal = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;

    if (verify) {
        int ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                         : SSL_set1_host(ssl, host);
        if (!ok)
            return err_set(ERR_TLS, "cannot verify the name %s", host);
    }
    if (!literal && !SSL_set_tlsext_host_name(ssl, host))
        return err_set(ERR_TLS, "cannot send the name %s (SNI)", host);
    return 0;
}

int tls_handshake_failed(SSL *ssl, const char *host, unsigned port)
{
    long v = SSL_get_verify_result(ssl);
    char why[256];

    if (v != X509_V_OK)
        return err_set(ERR_TLS, "TLS with %s:%u failed: the certificate is not trusted: %s", host,
                       port, X509_verify_cert_error_string(v));
    return err_set(ERR_TLS, "TLS with %s:%u failed: %s", host, port, tls_errors(why, sizeof(why)));
}
