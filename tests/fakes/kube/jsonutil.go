package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Obj is a JSON object as decoded with UseNumber.
type Obj = map[string]any

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("invalid character after top-level value")
	}
	return v, nil
}

func decodeObj(b []byte) (Obj, error) {
	v, err := decodeJSON(b)
	if err != nil {
		return nil, err
	}
	o, ok := v.(Obj)
	if !ok {
		return nil, fmt.Errorf("json: cannot unmarshal %s into Go value of type struct", jsonKind(v))
	}
	return o, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return "object"
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case Obj:
		o := make(Obj, len(t))
		for k, x := range t {
			o[k] = deepCopy(x)
		}
		return o
	case []any:
		l := make([]any, len(t))
		for i, x := range t {
			l[i] = deepCopy(x)
		}
		return l
	}
	return v
}

func copyObj(o Obj) Obj {
	if o == nil {
		return nil
	}
	return deepCopy(o).(Obj)
}

// normalize turns ints and floats into json.Number so that objects built in Go
// compare equal to decoded ones.
func normalize(v any) any {
	switch t := v.(type) {
	case Obj:
		for k, x := range t {
			t[k] = normalize(x)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = normalize(x)
		}
		return t
	case []string:
		l := make([]any, len(t))
		for i, s := range t {
			l[i] = s
		}
		return l
	case int:
		return json.Number(strconv.Itoa(t))
	case int64:
		return json.Number(strconv.FormatInt(t, 10))
	case uint64:
		return json.Number(strconv.FormatUint(t, 10))
	case float64:
		return json.Number(strconv.FormatFloat(t, 'g', -1, 64))
	}
	return v
}

func jsonEqual(a, b any) bool {
	return reflect.DeepEqual(normalize(deepCopy(a)), normalize(deepCopy(b)))
}

// getPath walks maps: getPath(o, "metadata", "name").
func getPath(o Obj, keys ...string) any {
	var cur any = o
	for _, k := range keys {
		m, ok := cur.(Obj)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func getStr(o Obj, keys ...string) string {
	s, _ := getPath(o, keys...).(string)
	return s
}

func getMap(o Obj, keys ...string) Obj {
	m, _ := getPath(o, keys...).(Obj)
	return m
}

// ensureMap returns o[k] as a map, creating it when missing.
func ensureMap(o Obj, k string) Obj {
	if m, ok := o[k].(Obj); ok {
		return m
	}
	m := Obj{}
	o[k] = m
	return m
}

func meta(o Obj) Obj { return ensureMap(o, "metadata") }

func getInt(o Obj, keys ...string) (int64, bool) {
	switch t := getPath(o, keys...).(type) {
	case json.Number:
		n, err := t.Int64()
		return n, err == nil
	case int:
		return int64(t), true
	case int64:
		return t, true
	case float64:
		return int64(t), true
	}
	return 0, false
}

// ---- ordered encoding: kind, apiVersion, metadata first, like the real
// server's struct order; metadata fields in ObjectMeta order.

var topOrder = map[string]int{"kind": 0, "apiVersion": 1, "metadata": 2}
var statusOrder = map[string]int{"kind": 0, "apiVersion": 1, "metadata": 2, "status": 3, "message": 4, "reason": 5, "details": 6, "code": 7}
var eventOrder = map[string]int{"type": 0, "object": 1}
var metaOrder = map[string]int{"name": 0, "generateName": 1, "namespace": 2, "selfLink": 3, "uid": 4,
	"resourceVersion": 5, "generation": 6, "creationTimestamp": 7, "deletionTimestamp": 8,
	"deletionGracePeriodSeconds": 9, "labels": 10, "annotations": 11, "ownerReferences": 12,
	"finalizers": 13, "managedFields": 14, "continue": 15, "remainingItemCount": 16}
var tailOrder = map[string]int{"spec": 1000, "status": 1001}

func encodeJSON(v any) []byte {
	var b bytes.Buffer
	enc(&b, v, true)
	b.WriteByte('\n')
	return b.Bytes()
}

func enc(b *bytes.Buffer, v any, top bool) {
	switch t := v.(type) {
	case Obj:
		var order map[string]int
		useTail := false
		if top {
			switch {
			case t["kind"] == "Status":
				order = statusOrder
			case t["type"] != nil && t["object"] != nil && len(t) == 2:
				order = eventOrder
			default:
				order = topOrder
				useTail = true
			}
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		rank := func(k string) int {
			if order != nil {
				if r, ok := order[k]; ok {
					return r
				}
				if useTail {
					if r, ok := tailOrder[k]; ok {
						return r
					}
				}
			}
			return 500
		}
		sort.Slice(keys, func(i, j int) bool {
			ri, rj := rank(keys[i]), rank(keys[j])
			if ri != rj {
				return ri < rj
			}
			return keys[i] < keys[j]
		})
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			switch {
			case order != nil && k == "metadata":
				encMeta(b, t[k])
			case order != nil && (k == "object" || k == "items"):
				if l, ok := t[k].([]any); ok {
					b.WriteByte('[')
					for i, x := range l {
						if i > 0 {
							b.WriteByte(',')
						}
						enc(b, x, true)
					}
					b.WriteByte(']')
				} else {
					enc(b, t[k], true)
				}
			default:
				enc(b, t[k], false)
			}
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, x := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			enc(b, x, false)
		}
		b.WriteByte(']')
	default:
		jb, err := json.Marshal(t)
		if err != nil {
			jb = []byte("null")
		}
		b.Write(jb)
	}
}

func encMeta(b *bytes.Buffer, v any) {
	m, ok := v.(Obj)
	if !ok {
		enc(b, v, false)
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, ok := metaOrder[keys[i]]
		if !ok {
			ri = 100
		}
		rj, ok := metaOrder[keys[j]]
		if !ok {
			rj = 100
		}
		if ri != rj {
			return ri < rj
		}
		return keys[i] < keys[j]
	})
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		enc(b, m[k], false)
	}
	b.WriteByte('}')
}

func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	writeJSONType(w, r, code, v, "application/json")
}

func writeJSONType(w http.ResponseWriter, r *http.Request, code int, v any, ctype string) {
	body := encodeJSON(v)
	if r != nil && (r.URL.Query().Get("pretty") == "true" || r.URL.Query().Get("pretty") == "1") {
		var out bytes.Buffer
		if json.Indent(&out, body, "", "  ") == nil {
			body = out.Bytes()
		}
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(code)
	w.Write(body)
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func strList(v any) []string {
	l, _ := v.([]any)
	out := []string{}
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func hasPrefixAny(s string, ps ...string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
