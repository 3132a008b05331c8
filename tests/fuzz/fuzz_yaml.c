/* yaml_parse (base/yaml.h): any bytes in; on success a tree that cJSON can print and read
 * back (aliases refused, nesting capped), and an object for an empty document. */
#include <cJSON.h>

#include "base/err.h"
#include "base/json.h"
#include "base/yaml.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

static int depth(const cJSON *j)
{
    int d = 0;
    const cJSON *c;

    cJSON_ArrayForEach(c, j)
    {
        int cd = depth(c);
        d = cd > d ? cd : d;
    }
    return (cJSON_IsArray(j) || cJSON_IsObject(j)) ? d + 1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *j = NULL, *again;
    char *text;
    int rc = yaml_parse(&j, (const char *)data, size);

    FUZZ_CHECK(rc == 0 || rc == ERR_PARSE);
    if (rc < 0) {
        FUZZ_CHECK(j == NULL);
        return 0;
    }
    FUZZ_CHECK(j != NULL && !cJSON_IsNull(j));
    /* Containers nest at most JSON_MAX_DEPTH + 1 deep (depths 0..JSON_MAX_DEPTH). */
    FUZZ_CHECK(depth(j) <= JSON_MAX_DEPTH + 1);
    text = cJSON_PrintUnformatted(j);
    FUZZ_CHECK(text != NULL);
    again = cJSON_Parse(text);
    FUZZ_CHECK(again != NULL);
    cJSON_Delete(again);
    cJSON_free(text);
    cJSON_Delete(j);
    return 0;
}
