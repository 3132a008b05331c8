// Package ytree reads YAML as plain trees (maps, lists, strings): what the tests that check
// rendered charts and manifests walk.
package ytree

import (
	"bytes"
	"errors"
	"io"

	"gopkg.in/yaml.v3"
)

// Decode returns the documents of a YAML stream, empty ones dropped.
func Decode(b []byte) ([]map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(d) > 0 {
			docs = append(docs, d)
		}
	}
}

// At walks maps by key; nil when a step is missing or not a map.
func At(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// Str is the string at path, "" when there is none.
func Str(v any, path ...string) string {
	s, _ := At(v, path...).(string)
	return s
}

// List is the list at path, nil when there is none.
func List(v any, path ...string) []any {
	l, _ := At(v, path...).([]any)
	return l
}
