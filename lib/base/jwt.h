/* Reading a JWT's claims without verifying it. The controller never trusts a
 * token's claims for access decisions; it reads them only to learn when a token
 * it was just given expires (and for which principal), which the issuer and
 * the database verify for real. */
#ifndef PGTR_JWT_H
#define PGTR_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#define JWT_MAX_LEN (64 * 1024)

struct jwt_times {
    int64_t exp; /* seconds since the epoch; 0 when absent */
    int64_t nbf;
    int64_t iat;
};

/* Decodes the payload of token[0..len). 0: *out is the claims object
 * (cJSON_Delete). ERR_PARSE when it is not three base64url parts with a JSON
 * object in the middle; ERR_TOOBIG over JWT_MAX_LEN. */
int jwt_claims(cJSON **out, const char *token, size_t len);

/* The time claims of token. ERR_PARSE also when exp is missing or not a
 * number: a token without an expiry cannot be scheduled. */
int jwt_read_times(struct jwt_times *out, const char *token, size_t len);

#endif
