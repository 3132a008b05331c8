package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"pgtoken-rotator/tests/stack"
)

const (
	rulesPath     = "charts/pgtoken-rotator/files/prometheus-rules.yaml"
	dashboardPath = "charts/pgtoken-rotator/files/dashboard.json"
	ruleTestsPath = "tests/alerts/prometheus-rules.test.yaml"
)

// What Prometheus adds to every series it scrapes through the chart's ServiceMonitor
// (release pgtoken-rotator in pgtoken-system; tests/chart's chartcheck holds the same
// labels in tests/alerts against a render of the chart). With honorLabels the scraped
// namespace label (the Secret's, on per-Secret series) wins over the target's.
const targetLabels = `job="pgtoken-rotator",service="pgtoken-rotator-metrics",` +
	`pod="pgtoken-rotator-5b8c9d7f6-h2k4p",instance="10.244.1.17:9090",endpoint="metrics",container="controller"`

var (
	promStringRe   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promBracesRe   = regexp.MustCompile(`\{[^}]*\}`)
	promRangeRe    = regexp.MustCompile(`\[[^\]]*\]`)
	promGroupingRe = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdentRe    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	labelValuesRe  = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	promKeywords   = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"inf": true, "nan": true}
)

// promMetricNames returns the metric names a PromQL expression selects: identifiers that
// are not in a string, a label matcher, a range, a grouping list, a function call or a
// keyword.
func promMetricNames(expr string) []string {
	s := promStringRe.ReplaceAllString(expr, `""`)
	s = promBracesRe.ReplaceAllString(s, " ")
	s = promRangeRe.ReplaceAllString(s, " ")
	s = promGroupingRe.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promIdentRe.FindAllStringIndex(s, -1) {
		id := s[loc[0]:loc[1]]
		if promKeywords[strings.ToLower(id)] {
			continue
		}
		if loc[0] > 0 && strings.ContainsAny(s[loc[0]-1:loc[0]], "0123456789.$") {
			continue // the tail of a number (1e3) or a variable
		}
		if rest := strings.TrimLeft(s[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function
		}
		names = append(names, id)
	}
	return names
}

// dashboardExprs collects every query of the dashboard: panel targets and the
// variables' label_values(METRIC, ...).
func dashboardExprs(t *testing.T, root string) (exprs, varMetrics []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, dashboardPath))
	if err != nil {
		t.Fatal(err)
	}
	var d any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				if s, ok := e.(string); ok && (k == "query" || k == "definition") {
					for _, m := range labelValuesRe.FindAllStringSubmatch(s, -1) {
						varMetrics = append(varMetrics, m[1])
					}
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(d)
	return exprs, varMetrics
}

func rulesExprs(t *testing.T, root string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rulesPath))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesPath, err)
	}
	var exprs []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// scrapeFamilies reads the exposition text: every sample name, and each family's type.
func scrapeFamilies(text string) (samples map[string]bool, types map[string]string) {
	samples, types = map[string]bool{}, map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			continue
		}
		if m := seriesRe.FindStringSubmatch(line); m != nil {
			samples[m[1]] = true
		}
	}
	return samples, types
}

// promtool returns the path of promtool (tests/promtool.sh fetches it once).
func promtool(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(root, "tests/promtool.sh")).Output()
	if err != nil {
		t.Fatalf("tests/promtool.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// notReadyAnnotations is what PgTokenRotatorSecretNotReady says about ns/name with
// reason: the annotations tests/alerts expects for team-a/app-db (TokenFailed), with
// this Secret's names and reason put in.
func notReadyAnnotations(t *testing.T, root, ns, name, reason string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, ruleTestsPath))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []struct {
					ExpAnnotations map[string]string `yaml:"exp_annotations"`
				} `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", ruleTestsPath, err)
	}
	r := strings.NewReplacer("team-a/app-db", ns+"/"+name, "-n team-a", "-n "+ns, "secret app-db", "secret "+name,
		"reason now: TokenFailed", "reason now: "+reason)
	for _, tc := range f.Tests {
		for _, c := range tc.AlertRuleTest {
			if c.Alertname == "PgTokenRotatorSecretNotReady" && len(c.ExpAlerts) == 1 {
				out := map[string]string{}
				for k, v := range c.ExpAlerts[0].ExpAnnotations {
					if k == "description" && !strings.Contains(v, "reason now: TokenFailed") {
						t.Fatalf("%s: the description no longer says \"reason now: TokenFailed\"", ruleTestsPath)
					}
					out[k] = r.Replace(v)
				}
				return out
			}
		}
	}
	t.Fatalf("%s: no firing case of PgTokenRotatorSecretNotReady", ruleTestsPath)
	return nil
}

// The dashboard and the alert rules against the real controller: every metric they query
// is in its /metrics, and PgTokenRotatorSecretNotReady, evaluated by promtool on the
// scraped pgtoken_rotator_secret_ready series (labelled as the chart's ServiceMonitor
// labels them), fires after 10 minutes for the Secret with an annotation typo
// (InvalidConfig) and the one whose role PostgreSQL lacks (LoginFailed), not for the
// healthy one.
func TestAlertsAndDashboardAgainstScrape(t *testing.T) {
	w := newWorld(t, stack.Options{})
	root := w.s.Root
	w.managed("alerts", "healthy", w.pgAnn())
	w.managed("alerts", "typo", w.pgAnn("pgtoken.io/hots", "localhost"))
	w.managed("alerts", "no-role", w.pgAnn("pgtoken.io/user", "no-such-role"))
	w.waitSecret("alerts", "healthy", 30*time.Second, "written", hasKeys("password"))
	w.waitSecret("alerts", "typo", 30*time.Second, "InvalidConfig", lastErrorIs("InvalidConfig"))
	w.waitSecret("alerts", "no-role", 30*time.Second, "LoginFailed", lastErrorIs("LoginFailed"))
	time.Sleep(500 * time.Millisecond)

	text, err := scrape(w.metrics + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	w.checkNoLeak(text, "/metrics")
	samples, types := scrapeFamilies(text)

	// (a) Every metric the dashboard or the rules query is served; histograms are read
	// through NAME_bucket, which must be a histogram's bucket series.
	dashExprs, varMetrics := dashboardExprs(t, root)
	ruleExprs := rulesExprs(t, root)
	if len(dashExprs) < 10 || len(varMetrics) == 0 || len(ruleExprs) < 10 {
		t.Fatalf("read %d dashboard queries, %d variable queries, %d rules: have the files changed shape?",
			len(dashExprs), len(varMetrics), len(ruleExprs))
	}
	used := map[string][]string{}
	for _, e := range dashExprs {
		for _, n := range promMetricNames(e) {
			used[n] = append(used[n], "dashboard")
		}
	}
	for _, n := range varMetrics {
		used[n] = append(used[n], "dashboard variable")
	}
	for _, e := range ruleExprs {
		for _, n := range promMetricNames(e) {
			used[n] = append(used[n], "rules")
		}
	}
	for _, want := range []string{"pgtoken_rotator_secret_ready", "pgtoken_rotator_kube_api_request_duration_seconds_bucket",
		"process_resident_memory_bytes", "up"} {
		if used[want] == nil {
			t.Errorf("the name extraction missed %s (found %d names)", want, len(used))
		}
	}
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		where := strings.Join(dedupe(used[n]), ", ")
		switch {
		case n == "up":
			// Prometheus makes it for every target; the controller does not serve it.
		case !samples[n]:
			t.Errorf("%s (%s) is not in the controller's /metrics", n, where)
		case strings.HasSuffix(n, "_bucket") && types[strings.TrimSuffix(n, "_bucket")] != "histogram":
			t.Errorf("%s (%s): %s is a %q, not a histogram", n, where, strings.TrimSuffix(n, "_bucket"),
				types[strings.TrimSuffix(n, "_bucket")])
		}
	}
	t.Logf("%d metric names in the dashboard and the rules: %s", len(names), strings.Join(names, " "))

	// (b) The scraped readiness series, as Prometheus would store them for 15 minutes.
	var series []string
	bySecret := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		m := seriesRe.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != "pgtoken_rotator_secret_ready" {
			continue
		}
		labels := strings.TrimSuffix(strings.TrimPrefix(m[2], "{"), "}")
		series = append(series, fmt.Sprintf("      - series: '%s{%s,%s}'\n        values: '%sx15'\n",
			m[1], labels, targetLabels, m[3]))
		bySecret[labels] = m[3]
	}
	want := map[string]string{
		`namespace="alerts",secret="healthy",reason="Ready"`:       "1",
		`namespace="alerts",secret="typo",reason="InvalidConfig"`:  "0",
		`namespace="alerts",secret="no-role",reason="LoginFailed"`: "0",
	}
	for l, v := range want {
		if bySecret[l] != v {
			t.Errorf("scraped pgtoken_rotator_secret_ready{%s} = %q, want %s (all: %v)", l, bySecret[l], v, bySecret)
		}
	}
	if len(bySecret) != len(want) {
		t.Errorf("scraped %d pgtoken_rotator_secret_ready series, want %d: %v", len(bySecret), len(want), bySecret)
	}

	type expAlert struct {
		ExpLabels      map[string]string `yaml:"exp_labels"`
		ExpAnnotations map[string]string `yaml:"exp_annotations"`
	}
	firing := []expAlert{}
	for _, s := range []struct{ name, reason string }{{"typo", "InvalidConfig"}, {"no-role", "LoginFailed"}} {
		firing = append(firing, expAlert{
			ExpLabels:      map[string]string{"severity": "warning", "namespace": "alerts", "secret": s.name},
			ExpAnnotations: notReadyAnnotations(t, root, "alerts", s.name, s.reason),
		})
	}
	cases, err := yaml.Marshal([]map[string]any{
		{"eval_time": "9m", "alertname": "PgTokenRotatorSecretNotReady", "exp_alerts": []expAlert{}},
		{"eval_time": "10m", "alertname": "PgTokenRotatorSecretNotReady", "exp_alerts": firing},
		{"eval_time": "15m", "alertname": "PgTokenRotatorSecretNotReady", "exp_alerts": firing},
	})
	if err != nil {
		t.Fatal(err)
	}
	doc := "rule_files:\n  - " + filepath.Join(root, rulesPath) + "\nevaluation_interval: 1m\ntests:\n" +
		"  - interval: 1m\n    input_series:\n" + strings.Join(series, "") +
		"    alert_rule_test:\n" + indent(string(cases), "      ")
	testFile := filepath.Join(w.s.Dir, "secret-ready.test.yaml")
	if err := os.WriteFile(testFile, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool(t, root), "test", "rules", testFile).CombinedOutput()
	if err != nil {
		t.Errorf("promtool test rules (PgTokenRotatorSecretNotReady on the scraped series): %v\n%s\n--- %s:\n%s",
			err, out, testFile, doc)
	}
}

func dedupe(l []string) []string {
	seen := map[string]bool{}
	var r []string
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			r = append(r, s)
		}
	}
	return r
}

func indent(s, by string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = by + l
	}
	return strings.Join(lines, "\n") + "\n"
}
