#include "base/yaml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/banned.h"

static cJSON *scalar(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;

    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
            return cJSON_CreateTrue();
        if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
            return cJSON_CreateFalse();
        if (!strcmp(v, "null") || !strcmp(v, "~") || !strcmp(v, "Null") || len == 0)
            return cJSON_CreateNull();
        if (len < 16 && strspn(v + (*v == '-'), "0123456789") == len - (*v == '-') &&
            len > (size_t)(*v == '-'))
            return cJSON_CreateNumber((double)strtoll(v, NULL, 10));
    }
    return cJSON_CreateString(v);
}

/* Builds the node that starts with ev (already taken from the parser). */
static int node(cJSON **out, yaml_parser_t *p, yaml_event_t *ev, int depth)
{
    cJSON *n = NULL;
    int rc = 0;

    if (depth > JSON_MAX_DEPTH)
        return err_set(ERR_PARSE, "YAML nested deeper than %d levels", JSON_MAX_DEPTH);
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        *out = scalar(ev);
        return 0;
    case YAML_ALIAS_EVENT:
        return err_set(ERR_PARSE, "YAML aliases are not supported (line %zu)",
                       ev->start_mark.line + 1);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        n = is_map ? cJSON_CreateObject() : cJSON_CreateArray();
        for (;;) {
            yaml_event_t k, v;
            cJSON *child = NULL;
            if (!yaml_parser_parse(p, &k)) {
                rc = err_set(ERR_PARSE, "YAML: %s at line %zu column %zu",
                             p->problem ? p->problem : "syntax error", p->problem_mark.line + 1,
                             p->problem_mark.column + 1);
                goto fail;
            }
            if (k.type == YAML_SEQUENCE_END_EVENT || k.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&k);
                break;
            }
            if (!is_map) {
                rc = node(&child, p, &k, depth + 1);
                yaml_event_delete(&k);
                if (rc < 0)
                    goto fail;
                cJSON_AddItemToArray(n, child);
                continue;
            }
            if (k.type != YAML_SCALAR_EVENT) {
                rc = err_set(ERR_PARSE, "YAML: mapping key at line %zu is not a plain value",
                             k.start_mark.line + 1);
                yaml_event_delete(&k);
                goto fail;
            }
            if (!yaml_parser_parse(p, &v)) {
                rc = err_set(ERR_PARSE, "YAML: %s at line %zu column %zu",
                             p->problem ? p->problem : "syntax error", p->problem_mark.line + 1,
                             p->problem_mark.column + 1);
                yaml_event_delete(&k);
                goto fail;
            }
            rc = node(&child, p, &v, depth + 1);
            yaml_event_delete(&v);
            if (rc < 0) {
                yaml_event_delete(&k);
                goto fail;
            }
            /* A repeated key: the last one wins, as in most YAML readers. */
            cJSON_DeleteItemFromObjectCaseSensitive(n, (const char *)k.data.scalar.value);
            cJSON_AddItemToObject(n, (const char *)k.data.scalar.value, child);
            yaml_event_delete(&k);
        }
        *out = n;
        return 0;
    }
    default:
        return err_set(ERR_PARSE, "YAML: unexpected event at line %zu", ev->start_mark.line + 1);
    }
fail:
    cJSON_Delete(n);
    return rc;
}

int yaml_parse(cJSON **out, const char *data, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    cJSON *root = NULL;
    int rc = 0;

    if (!yaml_parser_initialize(&p))
        return err_set(ERR_PARSE, "YAML parser could not start");
    yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            rc = err_set(ERR_PARSE, "YAML: %s at line %zu column %zu",
                         p.problem ? p.problem : "syntax error", p.problem_mark.line + 1,
                         p.problem_mark.column + 1);
            break;
        }
        if (ev.type == YAML_STREAM_END_EVENT || ev.type == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        rc = node(&root, &p, &ev, 0);
        yaml_event_delete(&ev);
        break;
    }
    yaml_parser_delete(&p);
    if (rc < 0) {
        cJSON_Delete(root);
        return rc;
    }
    if (!root || cJSON_IsNull(root)) {
        cJSON_Delete(root);
        root = cJSON_CreateObject();
    }
    *out = root;
    return 0;
}

int yaml_parse_file(cJSON **out, const char *path, size_t max)
{
    struct buf b = BUF_INIT(max);
    char chunk[4096];
    size_t n;
    FILE *f = fopen(path, "rbe");
    int rc = 0;

    if (!f)
        return err_set(ERR_IO, "cannot open %s: %s", path, strerror(errno));
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if ((rc = buf_add(&b, chunk, n)) < 0) {
            rc = err_set(ERR_TOOBIG, "%s is larger than %zu bytes", path, max);
            break;
        }
    if (rc == 0 && ferror(f))
        rc = err_set(ERR_IO, "cannot read %s", path);
    fclose(f);
    if (rc == 0 && (rc = yaml_parse(out, buf_str(&b), b.len)) < 0)
        rc = err_wrap(rc, "%s", path);
    buf_release(&b);
    return rc;
}
