#include "t.h"

#include <stdio.h>
#include <string.h>

#include "base/sha256.h"

/* FIPS 180-2's examples, and the fingerprint is their first 8 bytes in hex. */
static void test_known_answers(void)
{
    static const unsigned char abc[SHA256_LEN] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22,
        0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00,
        0x15, 0xad,
    };
    unsigned char md[SHA256_LEN];
    char fp[17];

    sha256(md, "abc", 3);
    T_CHECK(memcmp(md, abc, sizeof(md)) == 0);
    sha256_fp(fp, "abc", 3);
    T_EQ_STR(fp, "ba7816bf8f01cfea");
    sha256_fp(fp, "", 0);
    T_EQ_STR(fp, "e3b0c44298fc1c14");
    sha256_fp(fp, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56);
    T_EQ_STR(fp, "248d6a61d20638b8");
}

static void hex(char out[2 * SHA256_LEN + 1], const unsigned char md[SHA256_LEN])
{
    for (int i = 0; i < SHA256_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* RFC 4231's test case 2, and a key longer than the block (hashed first): case 6. */
static void test_hmac(void)
{
    unsigned char md[SHA256_LEN], key[131];
    char h[2 * SHA256_LEN + 1];

    hmac_sha256(md, "Jefe", 4, "what do ya want for nothing?", 28);
    hex(h, md);
    T_EQ_STR(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(key, 0xaa, sizeof(key));
    hmac_sha256(md, key, sizeof(key), "Test Using Larger Than Block-Size Key - Hash Key First", 54);
    hex(h, md);
    T_EQ_STR(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* PBKDF2-HMAC-SHA-256 of "password" and "salt" (the RFC 6070 inputs, with SHA-256's
 * results as RFC 7914 and every implementation give them). */
static void test_pbkdf2(void)
{
    unsigned char md[SHA256_LEN];
    char h[2 * SHA256_LEN + 1];

    pbkdf2_sha256(md, "password", 8, "salt", 4, 1);
    hex(h, md);
    T_EQ_STR(h, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
    pbkdf2_sha256(md, "password", 8, "salt", 4, 4096);
    hex(h, md);
    T_EQ_STR(h, "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
}

int main(void)
{
    T_RUN(test_known_answers);
    T_RUN(test_hmac);
    T_RUN(test_pbkdf2);
    return t_done();
}
