/* JSON helpers over cJSON: capped parsing, typed look-ups that name the bad
 * field, and string quoting for writers. Linking this module makes cJSON
 * allocate with xmalloc (set before main): a cJSON call never fails for want
 * of memory, the process aborts as on any other allocation. */
#ifndef PGTR_JSON_H
#define PGTR_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "base/buf.h"

#define JSON_MAX_DEPTH 64
/* Values in one document (about 80 bytes of tree each): a list page of 100 Secrets
 * with a thousand keys each stays far below; 16 MiB of "[]," does not. */
#define JSON_MAX_VALUES (1 << 19)

/* Parses data[0..len). 0: *out is the tree (cJSON_Delete it).
 * ERR_TOOBIG when len > max_len or the document holds over JSON_MAX_VALUES
 * values; ERR_PARSE when malformed or nested deeper than JSON_MAX_DEPTH (both
 * checked by one linear scan before parsing, so hostile input can neither
 * recurse deeply nor build a tree many times its own size). */
int json_parse(cJSON **out, const char *data, size_t len, size_t max_len);

/* Member key of obj when it is a string, else NULL. */
const char *json_str(const cJSON *obj, const char *key);
/* Member key of obj when it is an object, else NULL. */
cJSON *json_obj(const cJSON *obj, const char *key);
/* Member key of obj when it is an array, else NULL. */
cJSON *json_arr(const cJSON *obj, const char *key);
/* Member key as an integer: a JSON number with no fraction, or a string of
 * digits (Kubernetes and IMDS send both). 0, ERR_NOTFOUND, or ERR_PARSE. */
int json_i64(int64_t *out, const cJSON *obj, const char *key);

/* Finds the string at members path (NULL-terminated keys: "metadata",
 * "resourceVersion") in the JSON text data[0..len) without building a tree,
 * and copies it into out (n bytes, NUL included; only strings with no escapes,
 * as resource versions and names are). 0, ERR_NOTFOUND when a member is
 * absent or not of the kind the path needs, ERR_PARSE when the text is
 * malformed on the way, ERR_TOOBIG when the string does not fit. Values it
 * steps over are skipped by their brackets and quotes, not read. */
int json_scan_string(char *out, size_t n, const char *data, size_t len, const char *const *path);

/* Wipes every string in the tree (OPENSSL_cleanse) then frees it: for trees
 * parsed from bodies that held secrets (Secret data, token responses). */
void json_wipe_delete(cJSON *j);

/* Appends s as a quoted JSON string. Returns 0 or ERR_TOOBIG. */
int json_quote(struct buf *b, const char *s);
/* Same for s[0..len), which may hold NULs. */
int json_quote_n(struct buf *b, const char *s, size_t len);

#endif
