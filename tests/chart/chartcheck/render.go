package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"pgtoken-rotator/tests/ytree"
)

// obj is one Kubernetes object as decoded YAML.
type obj = map[string]any

// render runs `helm template` and returns its objects (empty documents
// dropped) and the raw text.
func (c *checker) render(release, ns string, args ...string) ([]obj, string, error) {
	cmdArgs := append([]string{"template", release, c.chart, "--namespace", ns}, args...)
	cmd := exec.Command(c.helm, cmdArgs...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, "", fmt.Errorf("helm %s: %v: %s", strings.Join(cmdArgs, " "), err,
			firstLine(errb.String()))
	}
	objs, err := decodeAll(out.Bytes())
	return objs, out.String(), err
}

// decodeAll decodes a multi-document YAML stream.
func decodeAll(b []byte) ([]obj, error) { return ytree.Decode(b) }

func decodeFile(path string) ([]obj, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeAll(b)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// get walks maps by key (nil when a step is missing); str and list read what it finds.
var (
	get  = ytree.At
	str  = ytree.Str
	list = ytree.List
)

func kind(o obj) string { return str(o, "kind") }
func name(o obj) string { return str(o, "metadata", "name") }
func namespace(o obj) string {
	return str(o, "metadata", "namespace")
}

// ident is "Kind namespace/name" (or "Kind name" when cluster-scoped).
func ident(o obj) string {
	if ns := namespace(o); ns != "" {
		return kind(o) + " " + ns + "/" + name(o)
	}
	return kind(o) + " " + name(o)
}

func ofKind(objs []obj, k string) []obj {
	var r []obj
	for _, o := range objs {
		if kind(o) == k {
			r = append(r, o)
		}
	}
	return r
}

// one returns the only object of kind k, or an error naming how many there are.
func one(objs []obj, k string) (obj, error) {
	r := ofKind(objs, k)
	if len(r) != 1 {
		return nil, fmt.Errorf("want one %s, have %d", k, len(r))
	}
	return r[0], nil
}

func idents(objs []obj) []string {
	var r []string
	for _, o := range objs {
		r = append(r, ident(o))
	}
	sort.Strings(r)
	return r
}

// controller returns the Deployment's pod spec and its one container.
func controller(objs []obj) (pod map[string]any, ctr map[string]any, err error) {
	d, err := one(objs, "Deployment")
	if err != nil {
		return nil, nil, err
	}
	pod, _ = get(d, "spec", "template", "spec").(map[string]any)
	cs := list(pod, "containers")
	if len(cs) != 1 {
		return nil, nil, fmt.Errorf("want one container, have %d", len(cs))
	}
	ctr, _ = cs[0].(map[string]any)
	return pod, ctr, nil
}

func strList(v any) []string {
	var r []string
	for _, x := range asList(v) {
		r = append(r, fmt.Sprint(x))
	}
	return r
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// rule is one RBAC rule in a comparable form.
type rule struct{ groups, resources, verbs string }

func (r rule) String() string {
	return fmt.Sprintf("{%s %s %s}", r.groups, r.resources, r.verbs)
}

func rules(o obj) []rule {
	var r []rule
	for _, x := range list(o, "rules") {
		r = append(r, rule{
			groups:    strings.Join(strList(get(x, "apiGroups")), ","),
			resources: strings.Join(strList(get(x, "resources")), ","),
			verbs:     strings.Join(strList(get(x, "verbs")), ","),
		})
	}
	return r
}

func rulesString(rs []rule) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}

// envVar finds a container's environment variable by name.
func envVar(ctr map[string]any, n string) map[string]any {
	for _, e := range list(ctr, "env") {
		if str(e, "name") == n {
			m, _ := e.(map[string]any)
			return m
		}
	}
	return nil
}

// fromYAML decodes a literal for comparisons (it panics on a bad literal).
func fromYAML(s string) any {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

func yamlString(v any) string {
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

// flatKeys lists the leaf paths of a mapping ("loginCheck.mode").
func flatKeys(prefix string, v any, out map[string]bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		if prefix != "" {
			out[prefix] = true
		}
		return
	}
	for k, x := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		flatKeys(p, x, out)
	}
}

func sortedKeys(m map[string]bool) []string {
	var r []string
	for k := range m {
		r = append(r, k)
	}
	sort.Strings(r)
	return r
}
