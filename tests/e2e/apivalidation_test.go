package e2e

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"pgtoken-rotator/tests/stack"
)

// The API server refuses annotations that are not what Kubernetes allows, and
// the fake refuses them exactly as the real one does. The same requests and the
// same expectations run in both tiers (PGTR_KUBE=real: kube-apiserver v1.37), so
// the fake is held against its real peer: a key that is not a qualified name once
// lower-cased, keys plus values over 256 KiB, and Secret data over 1 MiB are 422
// with the real server's causes (in any order: the real server reports a map's
// keys in map order).
func TestAPIRefusesBadAnnotations(t *testing.T) {
	covers(t, "Kubernetes API", "annotation keys that are not qualified names, annotations over 256 KiB, data over 1 MiB",
		"the same POSTs to the fake and the real kube-apiserver: 422 Invalid with the same causes (field, reason, message); 256 KiB exactly and mixed-case prefixes are accepted")
	w := newWorld(t, stack.Options{})
	w.stopController()
	ns := "annval"
	if err := w.k.EnsureNamespace(ns); err != nil {
		t.Fatal(err)
	}
	const nameMsg = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
	const prefixMsg = "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
	const slashesMsg = "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
	inv := func(k, msg string) string {
		b, _ := json.Marshal(k)
		return "FieldValueInvalid metadata.annotations Invalid value: " + string(b) + ": " + msg
	}
	long := strings.Repeat("p", 254) + "/n"
	cases := []struct {
		name string
		ann  map[string]string
		data map[string]string
		want []string // nil: accepted
	}{
		{"keys", map[string]string{"bad key": "1", "-x": "1", "a/b/c": "1", "/n": "1", "p/": "1",
			"under_score.io/n": "1", strings.Repeat("x", 64): "1", long: "1", "pgtoken.io/ok": "1", "Example.COM/Name": "1"},
			nil, []string{
				inv("bad key", nameMsg), inv("-x", nameMsg), inv("a/b/c", slashesMsg),
				inv("/n", "prefix part must be non-empty"),
				inv("p/", "name part must be non-empty"), inv("p/", nameMsg),
				inv("under_score.io/n", prefixMsg),
				inv(strings.Repeat("x", 64), "name part must be no more than 63 bytes"),
				inv(long, "prefix part must be no more than 253 bytes"),
			}},
		{"size-limit", map[string]string{"ab": strings.Repeat("x", 256<<10-2)}, nil, nil},
		{"size-over", map[string]string{"ab": strings.Repeat("x", 256<<10-1)}, nil,
			[]string{"FieldValueTooLong metadata.annotations Too long: may not be more than 262144 bytes"}},
		{"size-and-key", map[string]string{"ab": strings.Repeat("x", 256<<10-2), "bad key": "1"}, nil,
			[]string{inv("bad key", nameMsg), "FieldValueTooLong metadata.annotations Too long: may not be more than 262144 bytes"}},
		{"data-over", nil, map[string]string{"a": strings.Repeat("eHh4", (1<<20)/3+1)}, // 1 MiB + 2 bytes decoded
			[]string{"FieldValueTooLong data Too long: may not be more than 1048576 bytes"}},
	}
	for _, c := range cases {
		obj := map[string]any{"metadata": map[string]any{"name": c.name, "annotations": c.ann}}
		if c.data != nil {
			obj["data"] = c.data
		}
		st, body, err := w.k.Do("POST", "/api/v1/namespaces/"+ns+"/secrets", "application/json", obj)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.want == nil {
			if st != 201 {
				t.Errorf("%s: want 201 Created, got %d: %.300s", c.name, st, body)
			}
			continue
		}
		var status struct {
			Reason  string `json:"reason"`
			Code    int    `json:"code"`
			Details struct {
				Causes []struct{ Reason, Field, Message string } `json:"causes"`
			} `json:"details"`
		}
		if err := json.Unmarshal(body, &status); err != nil || st != 422 || status.Code != 422 || status.Reason != "Invalid" {
			t.Errorf("%s: want 422 Invalid, got %d %v: %.300s", c.name, st, err, body)
			continue
		}
		var got []string
		for _, cs := range status.Details.Causes {
			got = append(got, cs.Reason+" "+cs.Field+" "+cs.Message)
		}
		sort.Strings(got)
		want := append([]string(nil), c.want...)
		sort.Strings(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: causes differ\n got:\n  %s\nwant:\n  %s", c.name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
}
