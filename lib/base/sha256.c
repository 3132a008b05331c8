#include "base/sha256.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "base/banned.h"

static EVP_MD *sha256_md;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}

void sha256(unsigned char out[SHA256_LEN], const void *data, size_t len)
{
    unsigned int n = 0;

    (void)pthread_once(&md_once, fetch);
    if (!sha256_md || !EVP_Digest(data, len, out, &n, sha256_md, NULL) || n != SHA256_LEN) {
        fputs("pgtoken-rotator: SHA-256 is not available\n", stderr);
        abort();
    }
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
