package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

const (
	rulesFile     = "files/prometheus-rules.yaml"
	dashboardFile = "files/dashboard.json"
	dashboardKey  = "pgtoken-rotator.json"
)

// downJobRe finds the job PgTokenRotatorDown matches in the rules file.
var downJobRe = regexp.MustCompile(`up\{job="([^"]+)"\}`)

// seriesRe splits a promtool input series, name{a="b", ...}, into its labels.
var seriesLabelRe = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"`)

func (c *checker) rulesDoc() (any, error) {
	b, err := os.ReadFile(filepath.Join(c.chart, rulesFile))
	if err != nil {
		return nil, err
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %v", rulesFile, err)
	}
	if len(list(v, "groups")) == 0 {
		return nil, fmt.Errorf("%s has no groups at its top level", rulesFile)
	}
	return v, nil
}

// serviceMonitorJob is the job label Prometheus gives the ServiceMonitor's targets: the
// value of the Service label its spec.jobLabel names, else the Service's name.
func serviceMonitorJob(objs []obj) (string, error) {
	sm, err := one(objs, "ServiceMonitor")
	if err != nil {
		return "", err
	}
	svc, err := one(objs, "Service")
	if err != nil {
		return "", err
	}
	if jl := str(sm, "spec", "jobLabel"); jl != "" {
		if v := str(svc, "metadata", "labels", jl); v != "" {
			return v, nil
		}
	}
	return name(svc), nil
}

func (c *checker) monitoringChecks(all []obj, allErr error) {
	c.run("monitoring: the PrometheusRule's spec is "+rulesFile+" as it is, with metrics.prometheusRule.labels",
		func() error {
			if allErr != nil {
				return allErr
			}
			want, err := c.rulesDoc()
			if err != nil {
				return err
			}
			pr, err := one(all, "PrometheusRule")
			if err != nil {
				return err
			}
			if str(pr, "apiVersion") != "monitoring.coreos.com/v1" {
				return fmt.Errorf("apiVersion %q", str(pr, "apiVersion"))
			}
			if !reflect.DeepEqual(get(pr, "spec"), want) {
				return fmt.Errorf("spec differs from %s", rulesFile)
			}
			if get(pr, "metadata", "labels", "role") != "alert-rules" || namespace(pr) != "pgtr" {
				return fmt.Errorf("labels %v, namespace %q", get(pr, "metadata", "labels"), namespace(pr))
			}
			// {{ $labels.x }} stays literal: the rules are not run through Helm's templates.
			text := yamlString(get(pr, "spec"))
			if !strings.Contains(text, "{{ $labels.namespace }}") {
				return fmt.Errorf("the rendered rules lack {{ $labels.namespace }}")
			}
			return nil
		})
	c.run("monitoring: the dashboard ConfigMap holds "+dashboardFile+" with its label, namespace and annotations",
		func() error {
			if allErr != nil {
				return allErr
			}
			b, err := os.ReadFile(filepath.Join(c.chart, dashboardFile))
			if err != nil {
				return err
			}
			var want any
			if err := json.Unmarshal(b, &want); err != nil {
				return fmt.Errorf("%s: %v", dashboardFile, err)
			}
			check := func(objs []obj, ns, key, value string) error {
				var cm obj
				for _, o := range ofKind(objs, "ConfigMap") {
					if get(o, "data", dashboardKey) != nil {
						cm = o
					}
				}
				if cm == nil {
					return fmt.Errorf("no ConfigMap with data key %s", dashboardKey)
				}
				var got any
				if err := json.Unmarshal([]byte(str(cm, "data", dashboardKey)), &got); err != nil {
					return fmt.Errorf("%s: %s is not JSON: %v", ident(cm), dashboardKey, err)
				}
				if !reflect.DeepEqual(got, want) {
					return fmt.Errorf("%s: %s differs from %s", ident(cm), dashboardKey, dashboardFile)
				}
				if namespace(cm) != ns || get(cm, "metadata", "labels", key) != value {
					return fmt.Errorf("%s: labels %v, want %s=%q in namespace %s", ident(cm),
						get(cm, "metadata", "labels"), key, value, ns)
				}
				return nil
			}
			if err := check(all, "monitoring", "grafana_dashboard_pgtr", "yes"); err != nil {
				return err
			}
			cm := ofKind(all, "ConfigMap")
			for _, o := range cm {
				if get(o, "data", dashboardKey) != nil && get(o, "metadata", "annotations", "grafana_folder") != "Databases" {
					return fmt.Errorf("%s: annotations %v", ident(o), get(o, "metadata", "annotations"))
				}
			}
			// The default label is the one kube-prometheus-stack's Grafana sidecar looks for.
			objs, _, err := c.render(rel, relNS, "--set", "metrics.dashboard.enabled=true")
			if err != nil {
				return err
			}
			return check(objs, relNS, "grafana_dashboard", "1")
		})
	c.run("monitoring: the dashboard has a uid, a datasource variable, namespace variables, and every panel "+
		"queries the datasource variable", func() error {
		b, err := os.ReadFile(filepath.Join(c.chart, dashboardFile))
		if err != nil {
			return err
		}
		var d struct {
			UID        string `json:"uid"`
			Templating struct {
				List []struct {
					Name, Type string
				} `json:"list"`
			} `json:"templating"`
			Panels []struct {
				Title, Type string
				Datasource  struct{ UID string } `json:"datasource"`
				Targets     []struct {
					Expr       string `json:"expr"`
					Datasource struct{ UID string }
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v.Type
		}
		if d.UID == "" || vars["datasource"] != "datasource" || vars["namespace"] != "query" ||
			vars["secret_namespace"] != "query" {
			return fmt.Errorf("uid %q, variables %v", d.UID, vars)
		}
		n := 0
		for _, p := range d.Panels {
			if p.Type == "row" {
				continue
			}
			n++
			if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
				return fmt.Errorf("panel %q: datasource %q, %d queries", p.Title, p.Datasource.UID, len(p.Targets))
			}
			for _, t := range p.Targets {
				if t.Datasource.UID != "${datasource}" || !strings.Contains(t.Expr, "namespace=~\"$") {
					return fmt.Errorf("panel %q: query %q does not use the datasource and a namespace variable",
						p.Title, t.Expr)
				}
			}
		}
		if n < 10 {
			return fmt.Errorf("only %d panels", n)
		}
		return nil
	})
	c.run("monitoring: the ServiceMonitor's job (spec.jobLabel) is the job PgTokenRotatorDown matches, "+
		"whatever the release and name overrides", func() error {
		b, err := os.ReadFile(filepath.Join(c.chart, rulesFile))
		if err != nil {
			return err
		}
		m := downJobRe.FindSubmatch(b)
		if m == nil {
			return fmt.Errorf("%s: no up{job=\"...\"} in PgTokenRotatorDown", rulesFile)
		}
		for _, args := range [][]string{
			{"--set", "metrics.serviceMonitor.enabled=true"},
			{"--set", "metrics.serviceMonitor.enabled=true", "--set", "nameOverride=pgtr", "--set", "fullnameOverride=x"},
			{"-f", c.valuesAll()},
		} {
			objs, _, err := c.render("other-release", "elsewhere", args...)
			if err != nil {
				return err
			}
			job, err := serviceMonitorJob(objs)
			if err != nil {
				return err
			}
			if job != string(m[1]) {
				return fmt.Errorf("%v: the ServiceMonitor's targets get job %q, the rule matches %q", args, job, m[1])
			}
		}
		return nil
	})
	c.run("monitoring: metrics.serviceMonitor.apiVersion azmonitoring.coreos.com/v1 renders Azure Managed "+
		"Prometheus's ServiceMonitor: the same spec plus the label limits", func() error {
		base, _, err := c.render(rel, relNS, "--set", "metrics.serviceMonitor.enabled=true")
		if err != nil {
			return err
		}
		az, _, err := c.render(rel, relNS, "--set", "metrics.serviceMonitor.enabled=true",
			"--set", "metrics.serviceMonitor.apiVersion=azmonitoring.coreos.com/v1")
		if err != nil {
			return err
		}
		b, _ := one(base, "ServiceMonitor")
		a, err := one(az, "ServiceMonitor")
		if err != nil {
			return err
		}
		if str(b, "apiVersion") != "monitoring.coreos.com/v1" || str(a, "apiVersion") != "azmonitoring.coreos.com/v1" {
			return fmt.Errorf("apiVersions %q and %q", str(b, "apiVersion"), str(a, "apiVersion"))
		}
		spec, _ := get(a, "spec").(map[string]any)
		limits := map[string]any{}
		for _, k := range []string{"labelLimit", "labelNameLengthLimit", "labelValueLengthLimit"} {
			limits[k] = spec[k]
			delete(spec, k)
			if get(b, "spec", k) != nil {
				return fmt.Errorf("the prometheus-operator ServiceMonitor has %s", k)
			}
		}
		if want := map[string]any{"labelLimit": 63, "labelNameLengthLimit": 511, "labelValueLengthLimit": 1023}; !reflect.DeepEqual(limits, want) {
			return fmt.Errorf("limits %v, want %v", limits, want)
		}
		if !reflect.DeepEqual(get(b, "spec"), spec) {
			return fmt.Errorf("specs differ beyond the limits: %s | %s", yamlString(get(b, "spec")), yamlString(spec))
		}
		if _, _, err := c.render(rel, relNS, "--set", "metrics.serviceMonitor.apiVersion=monitoring.coreos.com/v2"); err == nil {
			return fmt.Errorf("an unknown apiVersion rendered")
		}
		return nil
	})
	c.run("monitoring: the series of tests/alerts carry the labels the chart's ServiceMonitor targets get "+
		"(job, namespace, service, pod, instance, endpoint, container)", c.alertTestLabels)
}

// alertTestLabels holds the labels of the promtool tests' input series against a render
// of the chart with release pgtoken-rotator in pgtoken-system.
func (c *checker) alertTestLabels() error {
	objs, _, err := c.render(rel, relNS, "--set", "metrics.serviceMonitor.enabled=true")
	if err != nil {
		return err
	}
	job, err := serviceMonitorJob(objs)
	if err != nil {
		return err
	}
	sm, _ := one(objs, "ServiceMonitor")
	svc, _ := one(objs, "Service")
	_, ctr, err := controller(objs)
	if err != nil {
		return err
	}
	if get(list(sm, "spec", "endpoints")[0], "honorLabels") != true {
		return fmt.Errorf("the ServiceMonitor does not honour the per-Secret namespace label")
	}
	want := map[string]string{
		"job": job, "service": name(svc), "container": str(ctr, "name"),
		"endpoint": str(list(sm, "spec", "endpoints")[0], "port"),
	}
	files, _ := filepath.Glob(filepath.Join(c.root, "tests/alerts/*.test.yaml"))
	if len(files) == 0 {
		return fmt.Errorf("no tests/alerts/*.test.yaml")
	}
	n := 0
	var problems []string
	for _, f := range files {
		var doc struct {
			Tests []struct {
				InputSeries []struct {
					Series string `yaml:"series"`
				} `yaml:"input_series"`
			} `yaml:"tests"`
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("%s: %v", f, err)
		}
		for _, t := range doc.Tests {
			for _, s := range t.InputSeries {
				n++
				labels := map[string]string{}
				for _, m := range seriesLabelRe.FindAllStringSubmatch(s.Series, -1) {
					labels[m[1]] = m[2]
				}
				perSecret := labels["secret"] != ""
				for k, v := range want {
					if labels[k] != v {
						problems = append(problems, fmt.Sprintf("%s: %s=%q, want %q", s.Series, k, labels[k], v))
					}
				}
				for _, k := range []string{"namespace", "pod", "instance"} {
					if labels[k] == "" {
						problems = append(problems, fmt.Sprintf("%s: no %s label", s.Series, k))
					}
				}
				if !perSecret && labels["namespace"] != relNS {
					problems = append(problems, fmt.Sprintf("%s: namespace %q, want the controller's %s",
						s.Series, labels["namespace"], relNS))
				}
				if !strings.HasPrefix(labels["pod"], rel+"-") {
					problems = append(problems, fmt.Sprintf("%s: pod %q is not one of Deployment %s's", s.Series,
						labels["pod"], rel))
				}
				port := fmt.Sprint(get(list(ctr, "ports")[0], "containerPort"))
				if !strings.HasSuffix(labels["instance"], ":"+port) {
					problems = append(problems, fmt.Sprintf("%s: instance %q is not on port %s", s.Series,
						labels["instance"], port))
				}
			}
		}
	}
	if n == 0 {
		return fmt.Errorf("no input series in tests/alerts")
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 3 {
			problems = append(problems[:3], fmt.Sprintf("and %d more", len(problems)-3))
		}
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}
