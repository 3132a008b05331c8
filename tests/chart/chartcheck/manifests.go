package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// rbacKinds come from manifests/rbac.yaml, written by hand: only their rules,
// roleRef and subjects must match the chart (labels may differ).
var rbacKinds = map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true}

// manifestObjects reads every resource the kustomization lists.
func (c *checker) manifestObjects() ([]obj, error) {
	dir := filepath.Join(c.root, "manifests")
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("kustomization.yaml: %v", err)
	}
	var objs []obj
	for _, r := range k.Resources {
		o, err := decodeFile(filepath.Join(dir, r))
		if err != nil {
			return nil, fmt.Errorf("manifests/%s: %v", r, err)
		}
		objs = append(objs, o...)
	}
	return objs, nil
}

func (c *checker) manifestChecks() {
	c.run("manifests: the kustomization lists namespace, RBAC and the generated objects", func() error {
		objs, err := c.manifestObjects()
		if err != nil {
			return err
		}
		ns, err := one(objs, "Namespace")
		if err != nil {
			return err
		}
		if name(ns) != relNS || get(ns, "metadata", "labels", "pod-security.kubernetes.io/enforce") != "restricted" {
			return fmt.Errorf("Namespace %s labels %v", name(ns), get(ns, "metadata", "labels"))
		}
		return nil
	})
	c.run("manifests: same objects as the chart with default values (helm template -n "+relNS+")", func() error {
		mobjs, err := c.manifestObjects()
		if err != nil {
			return err
		}
		cobjs, _, err := c.render(rel, relNS)
		if err != nil {
			return err
		}
		byID := map[string]obj{}
		var mids []string
		for _, o := range mobjs {
			if kind(o) == "Namespace" {
				continue
			}
			if byID[ident(o)] != nil {
				return fmt.Errorf("%s twice in manifests/", ident(o))
			}
			byID[ident(o)] = o
			mids = append(mids, ident(o))
		}
		var cids []string
		for _, o := range cobjs {
			cids = append(cids, ident(o))
		}
		if a, b := strings.Join(sortStrings(mids), ", "), strings.Join(sortStrings(cids), ", "); a != b {
			return fmt.Errorf("manifests/ has [%s], the chart [%s]", a, b)
		}
		for _, co := range cobjs {
			mo := byID[ident(co)]
			if rbacKinds[kind(co)] {
				for _, k := range []string{"rules", "roleRef", "subjects"} {
					if !reflect.DeepEqual(get(co, k), get(mo, k)) {
						return fmt.Errorf("%s %s: manifests/rbac.yaml %s, chart %s (rbac.yaml is the source "+
							"of truth: update templates/_helpers.tpl)", ident(co), k, yamlString(get(mo, k)),
							yamlString(get(co, k)))
					}
				}
				continue
			}
			if !reflect.DeepEqual(co, mo) {
				return fmt.Errorf("%s differs from the chart's: run `make manifests`", ident(co))
			}
		}
		return nil
	})
}

func sortStrings(s []string) []string {
	r := append([]string{}, s...)
	for i := range r {
		for j := i + 1; j < len(r); j++ {
			if r[j] < r[i] {
				r[i], r[j] = r[j], r[i]
			}
		}
	}
	return r
}

// renderNotes renders templates/NOTES.txt with `helm template` (which skips
// NOTES): a copy of the chart gets a template that runs NOTES.txt through tpl.
func (c *checker) renderNotes(args ...string) (string, error) {
	tmp, err := os.MkdirTemp("", "chartnotes-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	dst := filepath.Join(tmp, "pgtoken-rotator")
	err = filepath.WalkDir(c.chart, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(c.chart, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		return "", err
	}
	notes, err := os.ReadFile(filepath.Join(c.chart, "templates/NOTES.txt"))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dst, "notes-under-test.txt"), notes, 0o644); err != nil {
		return "", err
	}
	tpl := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\ndata:\n" +
		"  notes: {{ tpl (.Files.Get \"notes-under-test.txt\") . | toJson }}\n"
	if err := os.WriteFile(filepath.Join(dst, "templates/notes-under-test.yaml"), []byte(tpl), 0o644); err != nil {
		return "", err
	}
	saved := c.chart
	c.chart = dst
	defer func() { c.chart = saved }()
	objs, _, err := c.render(rel, relNS, append(args, "--show-only", "templates/notes-under-test.yaml")...)
	if err != nil {
		return "", err
	}
	o, err := one(objs, "ConfigMap")
	if err != nil {
		return "", err
	}
	return str(o, "data", "notes"), nil
}
