/* YAML documents (the config file, kubeconfig) read into a cJSON tree, so one
 * set of typed look-ups (base/json.h) serves JSON and YAML alike.
 * Plain scalars that look like integers, true/false or null become those JSON
 * types; everything quoted or otherwise is a string. Aliases are refused (no
 * billion-laughs expansion); nesting is capped at JSON_MAX_DEPTH. */
#ifndef PGTR_YAML_H
#define PGTR_YAML_H

#include <stddef.h>

#include <cJSON.h>

/* Parses the first document of data[0..len). 0: *out is the tree (an empty
 * object for an empty document). ERR_PARSE with line and column on error. */
int yaml_parse(cJSON **out, const char *data, size_t len);

/* Reads and parses a file of at most max bytes. ERR_IO when unreadable. */
int yaml_parse_file(cJSON **out, const char *path, size_t max);

#endif
