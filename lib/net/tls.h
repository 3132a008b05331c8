/* TLS contexts and peer checks over OpenSSL, for every TLS this program
 * speaks: the HTTP client (net/http.h), and the auth proxy's two sides (its
 * upstream PostgreSQL, and clients that ask it for TLS). TLS 1.2 or later.
 * Clients verify the peer against the given CA (PEM text or a file) or the
 * system's bundle, by its name or IP address, unless the loudly named
 * insecure flag is set. The system's bundle is
 * /etc/ssl/certs/ca-certificates.crt unless SSL_CERT_FILE or SSL_CERT_DIR
 * say otherwise. */
#ifndef PGTR_TLS_H
#define PGTR_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "base/sbuf.h"

struct tls_opts {
    const char *ca_file;         /* PEM bundle to trust; NULL: system bundle */
    const char *ca_pem;          /* PEM text to trust instead of ca_file */
    const char *cert_file;       /* our certificate (PEM) */
    const char *cert_pem;
    const char *key_file;        /* our key (PEM) */
    const struct sbuf *key_pem;
    bool insecure_skip_tls_verify; /* never by default; named so it is seen */
};

/* A client context for o; alpn, when not NULL, is the protocol list in
 * OpenSSL's wire form ("\x08http/1.1"). 0, or ERR_TLS when a CA, certificate
 * or key is not accepted (OpenSSL's reason in the message). */
int tls_client_ctx(SSL_CTX **out, const struct tls_opts *o, const char *alpn, size_t alpn_len);

/* A server context with o's certificate (chain) and key, which must match.
 * 0, or ERR_TLS as tls_client_ctx. */
int tls_server_ctx(SSL_CTX **out, const struct tls_opts *o);

/* Before a client handshake: the name (or IP address) ssl must prove, and
 * SNI for a name. verify false (the insecure flag) sets only SNI. 0 or
 * ERR_TLS. */
int tls_set_peer(SSL *ssl, const char *host, bool verify);

/* After a failed handshake with host:port: ERR_TLS with why, the
 * certificate's verification error when there is one ("the certificate is
 * not trusted: ..."), else OpenSSL's queued error. */
int tls_handshake_failed(SSL *ssl, const char *host, unsigned port);

/* OpenSSL's queued errors as one line in out (the queue emptied); "connection
 * closed" when there were none. Returns out. */
const char *tls_errors(char *out, size_t n);

#endif
