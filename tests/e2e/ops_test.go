package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

func opsFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var seriesRe = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$`)

// metricValue finds the value of one series (name plus a label substring).
func metricValue(text, name, labels string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		m := seriesRe.FindStringSubmatch(sc.Text())
		if m != nil && m[1] == name && strings.Contains(m[2], labels) {
			v, err := strconv.ParseFloat(m[3], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// The metrics endpoint during a run: the format parses, the numbers move as
// they should, per-Secret expiry matches the Secret, probes answer.
func TestMetricsScrape(t *testing.T) {
	port := opsFreePort(t)
	w := newWorld(t, stack.Options{}, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	w.managed("met", "db", w.pgAnn())
	w.managed("met", "bad", w.pgAnn("pgtoken.io/user", "no-such-role"))
	sec := w.waitSecret("met", "db", 30*time.Second, "written", hasKeys("password"))
	w.waitSecret("met", "bad", 30*time.Second, "failed", lastErrorIs("LoginFailed"))
	time.Sleep(500 * time.Millisecond)

	code, text := httpGet(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for i, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		if !seriesRe.MatchString(line) {
			t.Fatalf("line %d is not in the exposition format: %q", i+1, line)
		}
	}
	w.checkNoLeak(text, "/metrics")
	if v, ok := metricValue(text, "pgtoken_rotator_rotations_total", `result="success"`); !ok || v < 1 {
		t.Errorf("rotations_total{success} = %v (%v)", v, ok)
	}
	if v, ok := metricValue(text, "pgtoken_rotator_rotation_failures_total", `reason="LoginFailed"`); !ok || v < 1 {
		t.Errorf("rotation_failures_total{LoginFailed} = %v (%v)", v, ok)
	}
	exp, _ := time.Parse(time.RFC3339, sec.Metadata.Annotations["pgtoken.io/status.expires-at"])
	if v, ok := metricValue(text, "pgtoken_rotator_secret_token_expiry_timestamp_seconds",
		`secret="db"`); !ok || int64(v) != exp.Unix() {
		t.Errorf("secret expiry gauge %v (%v), Secret says %d", v, ok, exp.Unix())
	}
	if _, ok := metricValue(text, "pgtoken_rotator_build_info", `version="`); !ok {
		t.Errorf("no build_info")
	}
	// Readiness per Secret, with the reason of the one that fails.
	if v, ok := metricValue(text, "pgtoken_rotator_secret_ready", `namespace="met",secret="db",reason="Ready"`); !ok || v != 1 {
		t.Errorf("secret_ready{db,Ready} = %v (%v)", v, ok)
	}
	if v, ok := metricValue(text, "pgtoken_rotator_secret_ready", `namespace="met",secret="bad",reason="LoginFailed"`); !ok || v != 0 {
		t.Errorf("secret_ready{bad,LoginFailed} = %v (%v)", v, ok)
	}
	// API requests by exact status: the first list (GET 200) and the writes (PATCH 200).
	for _, verb := range []string{"get", "patch"} {
		if v, ok := metricValue(text, "pgtoken_rotator_kube_api_requests_total", `verb="`+verb+`",code="200"`); !ok || v < 1 {
			t.Errorf("kube_api_requests_total{%s,200} = %v (%v)", verb, v, ok)
		}
	}
	if strings.Contains(text, `code="2xx"`) {
		t.Errorf("a status class in kube_api_requests_total")
	}
	// Latency histograms: cumulative buckets, +Inf equal to the count.
	for _, h := range []string{"pgtoken_rotator_token_request_duration_seconds", "pgtoken_rotator_login_check_duration_seconds"} {
		inf, ok1 := metricValue(text, h+"_bucket", `le="+Inf"`)
		n, ok2 := metricValue(text, h+"_count", "")
		low, ok3 := metricValue(text, h+"_bucket", `le="60"`)
		if !ok1 || !ok2 || !ok3 || n < 1 || inf != n || low > inf {
			t.Errorf("%s: +Inf %v, count %v, le=60 %v", h, inf, n, low)
		}
	}
	// The standard process metrics, for this process.
	// (A start time with its fraction of a second: compared with now's, not a truncated second.)
	if v, ok := metricValue(text, "process_start_time_seconds", ""); !ok || v > float64(time.Now().UnixNano())/1e9 || v < float64(time.Now().Add(-10*time.Minute).Unix()) {
		t.Errorf("process_start_time_seconds = %v (%v)", v, ok)
	}
	for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds", "process_max_fds"} {
		if v, ok := metricValue(text, name, ""); !ok || v <= 0 {
			t.Errorf("%s = %v (%v)", name, v, ok)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := httpGet(t, base+p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	// Deleting the Secret removes its series.
	if err := w.k.DeleteSecret("met", "db"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, text = httpGet(t, base+"/metrics")
		if _, ok := metricValue(text, "pgtoken_rotator_secret_token_expiry_timestamp_seconds", `secret="db"`); !ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("the deleted Secret's series is still exported")
}

// Two replicas with leader election: exactly one writes; kill the leader and
// the other takes over within the lease duration; no Secret is written by both.
func TestLeaderElection(t *testing.T) {
	covers(t, "Process", "Leader killed with two replicas", "exactly one replica writes; the other takes over within the lease duration; no Secret written by both")
	w := newWorld(t, stack.Options{})
	w.stopController()
	if realKube() {
		w.grantLeases()
	}
	env := append(w.s.ControllerEnv(), "POD_NAMESPACE="+stack.ControllerNS)
	start := func(name string) *stack.Proc {
		p, err := w.s.Spawn(name, append(env, "POD_NAME="+name), w.s.Bin,
			append(w.s.ControllerArgs(), "--leader-elect")...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := start("replica-a")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(a.Output(), "leader_acquired") {
		time.Sleep(100 * time.Millisecond)
	}
	b := start("replica-b")
	w.ctrl = b
	w.managed("le", "one", w.pgAnn())
	w.waitSecret("le", "one", 30*time.Second, "written by the leader", hasKeys("password"))
	if !strings.Contains(a.Output(), `"msg":"rotated"`) || strings.Contains(b.Output(), `"msg":"rotated"`) {
		t.Fatalf("want only replica-a (the leader) to write")
	}
	a.Kill()
	killed := time.Now()
	w.managed("le", "two", w.pgAnn())
	w.waitSecret("le", "two", 40*time.Second, "written by the new leader", hasKeys("password"))
	if took := time.Since(killed); took > 25*time.Second {
		t.Errorf("takeover took %v; the lease lasts 15 s", took)
	}
	if !strings.Contains(b.Output(), "leader_acquired") {
		t.Errorf("replica-b never became leader")
	}
	// The first leader's token for "one" is fresh: the new leader leaves it alone.
	if strings.Contains(b.Output(), `"msg":"rotated","namespace":"le","secret":"one"`) {
		t.Errorf("replica-b rewrote a Secret the first leader had written")
	}
}

func (w *world) grantLeases() {
	w.t.Helper()
	w.grant("pgtoken-rotator-leader", stack.ControllerNS,
		rule("coordination.k8s.io", []string{"leases"}, "get", "create", "update"))
}
