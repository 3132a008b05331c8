/* SHA-256, one call: the fingerprints of values (base/sbuf.h), the spec hash and the
 * login-check cache's keys; and what SCRAM builds on it, HMAC and PBKDF2. OpenSSL's implementation, fetched once: EVP_sha256() in a
 * call fetches the algorithm again each time, which costs more than hashing a token. */
#ifndef PGTR_SHA256_H
#define PGTR_SHA256_H

#include <stddef.h>

#define SHA256_LEN 32

/* out = SHA-256(data[0..len)). Never fails (aborts if the algorithm is missing, as an
 * allocation failure does: there is nothing to do without it). */
void sha256(unsigned char out[SHA256_LEN], const void *data, size_t len);

/* The first 8 bytes of SHA-256(data[0..len)) as 16 lower-case hex digits and a NUL: a
 * short fingerprint. */
void sha256_fp(char out[17], const void *data, size_t len);

/* out = HMAC-SHA-256(key, data). Never fails (aborts as sha256 does, and on a key over INT_MAX). */
void hmac_sha256(unsigned char out[SHA256_LEN], const void *key, size_t key_len, const void *data,
                 size_t len);

/* out = PBKDF2-HMAC-SHA-256(password, salt, iterations), one block of 32 bytes
 * (iterations >= 1). Never fails (aborts as sha256 does, and on sizes over INT_MAX). */
void pbkdf2_sha256(unsigned char out[SHA256_LEN], const void *password, size_t password_len,
                   const void *salt, size_t salt_len, int iterations);

#endif
