#include "base/sha256.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/banned.h"

static EVP_MD *sha256_md;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}

static void unavailable(void)
{
    fputs("pgtoken-rotator: SHA-256 is not available\n", stderr);
    abort();
}

static const EVP_MD *md(void)
{
    (void)pthread_once(&md_once, fetch);
    if (!sha256_md)
        unavailable();
    return sha256_md;
}

void sha256(unsigned char out[SHA256_LEN], const void *data, size_t len)
{
    unsigned int n = 0;

    if (!EVP_Digest(data, len, out, &n, md(), NULL) || n != SHA256_LEN)
        unavailable();
}

void hmac_sha256(unsigned char out[SHA256_LEN], const void *key, size_t key_len, const void *data,
                 size_t len)
{
    unsigned int n = 0;

    if (key_len > INT_MAX || !HMAC(md(), key, (int)key_len, data, len, out, &n) ||
        n != SHA256_LEN)
        unavailable();
}

void pbkdf2_sha256(unsigned char out[SHA256_LEN], const void *password, size_t password_len,
                   const void *salt, size_t salt_len, int iterations)
{
    if (password_len > INT_MAX || salt_len > INT_MAX ||
        !PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len, iterations, md(),
                           SHA256_LEN, out))
        unavailable();
}

void sha256_fp(char out[17], const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_LEN];

    sha256(md, data, len);
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[16] = '\0';
}
