/* lib/net/tls: contexts from files and PEM text, refused options, and real handshakes between
 * a tls_server_ctx and a tls_client_ctx over a socket pair: a trusted leaf by name and by IP,
 * the wrong name or IP, an untrusted CA, and the insecure flag. */
#include "t.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "base/err.h"
#include "net/tls.h"
#include "testpki.h"

static struct {
    char dir[32], ca_file[64], leaf_file[64], key_file[64], other_key_file[64], rogue_file[64];
    char *ca_pem;
} pki;

static bool pki_make(void)
{
    EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
    EVP_PKEY *other = EVP_EC_gen("P-256"), *rogue_key = EVP_EC_gen("P-256");
    X509 *ca = NULL, *leaf = NULL, *rogue = NULL;
    char *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    bool ok = false;

    snprintf(pki.dir, sizeof(pki.dir), "/tmp/test_tls.XXXXXX");
    if (!ca_key || !key || !other || !rogue_key || !mkdtemp(pki.dir))
        goto out;
    snprintf(pki.ca_file, sizeof(pki.ca_file), "%s/ca.pem", pki.dir);
    snprintf(pki.leaf_file, sizeof(pki.leaf_file), "%s/leaf.pem", pki.dir);
    snprintf(pki.key_file, sizeof(pki.key_file), "%s/leaf.key", pki.dir);
    snprintf(pki.other_key_file, sizeof(pki.other_key_file), "%s/other.key", pki.dir);
    snprintf(pki.rogue_file, sizeof(pki.rogue_file), "%s/rogue.pem", pki.dir);
    ca = make_cert(ca_key, "tls test CA", NULL, NULL, NULL);
    leaf = make_cert(key, "db", "DNS:db.example.test,IP:127.0.0.1", ca, ca_key);
    rogue = make_cert(key, "db", "DNS:db.example.test,IP:127.0.0.1", NULL, NULL); /* self-signed */
    ok = ca && leaf && rogue && (pki.ca_pem = pem(ca, NULL, pki.ca_file)) &&
         (a = pem(leaf, NULL, pki.leaf_file)) && (b = pem(NULL, key, pki.key_file)) &&
         (c = pem(NULL, other, pki.other_key_file)) && (d = pem(rogue, NULL, pki.rogue_file));
out:
    free(a), free(b), free(c), free(d);
    X509_free(ca), X509_free(leaf), X509_free(rogue);
    EVP_PKEY_free(ca_key), EVP_PKEY_free(key), EVP_PKEY_free(other), EVP_PKEY_free(rogue_key);
    return ok;
}

static void pki_free(void)
{
    unlink(pki.ca_file), unlink(pki.leaf_file), unlink(pki.key_file);
    unlink(pki.other_key_file), unlink(pki.rogue_file);
    rmdir(pki.dir);
    free(pki.ca_pem);
}

static void test_server_ctx(void)
{
    struct tls_opts good = { .cert_file = pki.leaf_file, .key_file = pki.key_file };
    struct tls_opts mismatch = { .cert_file = pki.leaf_file, .key_file = pki.other_key_file };
    struct tls_opts none = { 0 };
    struct tls_opts missing = { .cert_file = "/nonexistent/leaf.pem", .key_file = pki.key_file };
    SSL_CTX *ctx = NULL;

    T_RC(tls_server_ctx(&ctx, &good), 0);
    T_CHECK(ctx != NULL);
    SSL_CTX_free(ctx);
    T_RC(tls_server_ctx(&ctx, &mismatch), ERR_TLS);
    T_CHECK(strstr(err_msg(), "server certificate or key"));
    T_RC(tls_server_ctx(&ctx, &none), ERR_TLS);
    T_CHECK(strstr(err_msg(), "needs a certificate and key"));
    T_RC(tls_server_ctx(&ctx, &missing), ERR_TLS);
}

static void test_client_ctx(void)
{
    struct tls_opts file = { .ca_file = pki.ca_file }, text = { .ca_pem = pki.ca_pem };
    struct tls_opts no_file = { .ca_file = "/nonexistent/ca.pem" };
    struct tls_opts junk = { .ca_pem = "-----BEGIN CERTIFICATE-----\nnot base64\n" };
    SSL_CTX *ctx = NULL;

    T_RC(tls_client_ctx(&ctx, &file, NULL, 0), 0);
    SSL_CTX_free(ctx);
    T_RC(tls_client_ctx(&ctx, &text, "\x08http/1.1", 9), 0);
    SSL_CTX_free(ctx);
    T_RC(tls_client_ctx(&ctx, &no_file, NULL, 0), ERR_TLS);
    T_CHECK(strstr(err_msg(), "CA, client certificate or key"));
    T_RC(tls_client_ctx(&ctx, &junk, NULL, 0), ERR_TLS);
}

struct side {
    SSL_CTX *ctx;
    int fd;
    int ok;
};

static void *accept_side(void *arg)
{
    struct side *s = arg;
    SSL *ssl = SSL_new(s->ctx);

    if (ssl && SSL_set_fd(ssl, s->fd))
        s->ok = SSL_accept(ssl) == 1;
    SSL_free(ssl);
    close(s->fd);
    ERR_clear_error();
    return NULL;
}

/* A handshake with a server showing cert_file, the client trusting the test CA and proving
 * host (verify false: the insecure flag). 0, or the error tls_handshake_failed set. */
static int handshake(const char *cert_file, const char *host, bool verify)
{
    struct tls_opts so = { .cert_file = cert_file, .key_file = pki.key_file };
    struct tls_opts co = { .ca_pem = pki.ca_pem, .insecure_skip_tls_verify = !verify };
    struct side srv = { 0 };
    SSL_CTX *cctx = NULL;
    SSL *ssl = NULL;
    pthread_t th;
    int fds[2], rc;

    if (tls_server_ctx(&srv.ctx, &so) < 0 || tls_client_ctx(&cctx, &co, NULL, 0) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
        t_fail(__FILE__, __LINE__, "setup: %s", err_msg());
        return -100;
    }
    srv.fd = fds[1];
    if (pthread_create(&th, NULL, accept_side, &srv) != 0) {
        t_fail(__FILE__, __LINE__, "pthread_create failed");
        return -100;
    }
    ssl = SSL_new(cctx);
    SSL_set_fd(ssl, fds[0]);
    if ((rc = tls_set_peer(ssl, host, verify)) == 0 && SSL_connect(ssl) != 1)
        rc = tls_handshake_failed(ssl, host, 5432);
    SSL_free(ssl);
    close(fds[0]);
    pthread_join(th, NULL);
    T_EQ_INT(srv.ok, rc == 0);
    SSL_CTX_free(cctx);
    SSL_CTX_free(srv.ctx);
    return rc;
}

static void test_handshakes(void)
{
    T_RC(handshake(pki.leaf_file, "db.example.test", true), 0);
    T_RC(handshake(pki.leaf_file, "127.0.0.1", true), 0);
    T_RC(handshake(pki.leaf_file, "other.example.test", true), ERR_TLS);
    T_CHECK(strstr(err_msg(), "TLS with other.example.test:5432 failed: the certificate is not "
                              "trusted: hostname mismatch"));
    T_RC(handshake(pki.leaf_file, "127.0.0.2", true), ERR_TLS);
    T_CHECK(strstr(err_msg(), "IP address mismatch"));
    T_RC(handshake(pki.rogue_file, "db.example.test", true), ERR_TLS);
    T_CHECK(strstr(err_msg(), "not trusted: self-signed certificate"));
    /* the insecure flag: anything goes, SNI still sent */
    T_RC(handshake(pki.rogue_file, "other.example.test", false), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* a side that gives up closes while the other writes */
    if (!pki_make()) {
        t_fail(__FILE__, __LINE__, "could not make the test certificates");
        return t_done();
    }
    T_RUN(test_server_ctx);
    T_RUN(test_client_ctx);
    T_RUN(test_handshakes);
    pki_free();
    return t_done();
}
