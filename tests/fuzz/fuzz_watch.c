/* The watch stream (kube/watch.h): the input is a stream body, framed as http_stream frames
 * it (lines end at '\n', empty lines are skipped, an unterminated last line is dropped) and
 * fed line by line to watch_parse_event, the code watch_run runs for each line, against one
 * store. Invariants: each line gives 0, ERR_GONE, ERR_UNAVAILABLE, ERR_PARSE or ERR_TOOBIG;
 * the resourceVersion stays a NUL-terminated string under WATCH_RV_MAX; a Secret the handler
 * hears was upserted is in the store and one it hears was deleted is not. */
#include "base/err.h"
#include "kube/store.h"
#include "kube/watch.h"
#include "fuzz.h"

struct seen {
    struct store *st;
    size_t upserts, deletes;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static void on_upsert(void *ctx, const char *key, bool changed)
{
    struct seen *s = ctx;
    struct kube_secret *got = NULL;

    (void)changed;
    FUZZ_CHECK(store_get(&got, s->st, key) == 0);
    kube_secret_free(got);
    s->upserts++;
}

static void on_delete(void *ctx, const char *key)
{
    struct seen *s = ctx;
    struct kube_secret *got = NULL;

    FUZZ_CHECK(store_get(&got, s->st, key) == ERR_NOTFOUND);
    s->deletes++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seen seen = { store_new(), 0, 0 };
    const struct watch_handler h = { .on_upsert = on_upsert, .on_delete = on_delete, .ctx = &seen };
    struct watch_stats stats = { 0 };
    char rv[WATCH_RV_MAX] = "";
    const char *p = (const char *)data, *end = p + size;

    /* Bytes after the last newline are never delivered: the stream ended mid-line. */
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        if (eol > p) {
            int rc = watch_parse_event(seen.st, &h, &stats, rv, p, (size_t)(eol - p));
            FUZZ_CHECK(rc == 0 || rc == ERR_GONE || rc == ERR_UNAVAILABLE || rc == ERR_PARSE ||
                       rc == ERR_TOOBIG);
            FUZZ_CHECK(memchr(rv, 0, sizeof(rv)) != NULL);
        }
        p = eol + 1;
    }
    FUZZ_CHECK(store_len(seen.st) <= seen.upserts);
    store_free(seen.st);
    return 0;
}
