/* config_load_file (app/config.h): the input is the YAML settings file (--config), read
 * through a file as the controller reads it, over the defaults, then validated.
 * Invariants: 0, ERR_PARSE (not YAML) or ERR_INVALID (naming the setting); the settings
 * stay usable (non-NULL strings, a NULL-terminated namespace list) whatever happened. */
#include "app/config.h"
#include "base/err.h"
#include "fuzz.h"

static const char *path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    path = fuzz_tmpfile("config.yaml");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config c;
    int rc;

    fuzz_write(path, data, size);
    config_init(&c);
    rc = config_load_file(&c, path);
    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE || rc == ERR_INVALID);
    FUZZ_CHECK(c.label_selector && c.identity_source && c.scope && c.db_ca_file &&
               c.db_sslmode && c.log_level && c.instance);
    FUZZ_CHECK(c.namespaces && c.namespaces[c.nnamespaces] == NULL);
    for (size_t i = 0; i < c.nnamespaces; i++)
        FUZZ_CHECK(c.namespaces[i] != NULL);
    if (rc == 0) {
        rc = config_validate(&c);
        FUZZ_CHECK(rc == 0 || rc == ERR_INVALID);
        if (rc == 0) {
            FUZZ_CHECK(c.workers >= 1 && c.workers <= 256);
            FUZZ_CHECK(c.refresh_ratio > 0 && c.refresh_ratio < 1);
            FUZZ_CHECK(c.jitter > 0 && c.jitter < 1);
        }
    }
    config_release(&c);
    return 0;
}
