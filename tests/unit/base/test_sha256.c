#include "t.h"

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

int main(void)
{
    T_RUN(test_known_answers);
    return t_done();
}
