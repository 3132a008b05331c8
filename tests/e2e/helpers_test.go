package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

// world is one stack with the fake API server and a running controller.
type world struct {
	t    *testing.T
	s    *stack.Stack
	k    *stack.Kube
	ctrl *stack.Proc
	// every password value seen in a Secret, to check none leaks into logs or Events
	seenMu sync.Mutex
	seen   map[string]bool
	// everything the controllers showed the world (logs, /metrics), searched at
	// close for every token the fake Entra minted
	shown   []shown
	metrics string // base URL of the current controller's metrics listener
}

type shown struct{ where, text string }

func newWorld(t *testing.T, opts stack.Options, ctrlArgs ...string) *world {
	t.Helper()
	opts.Log = t.Logf
	s, err := stack.Start(opts)
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	w := &world{t: t, s: s, seen: map[string]bool{}}
	t.Cleanup(w.close)
	if realKube() {
		if err := s.StartRealKube(); err != nil {
			t.Fatalf("real kube-apiserver: %v", err)
		}
	} else if err := s.StartFakeKube(); err != nil {
		t.Fatalf("fake kube: %v", err)
	}
	if w.k, err = s.Kube(); err != nil {
		t.Fatal(err)
	}
	w.startController("controller", ctrlArgs...)
	return w
}

// startController starts the controller with the metrics listener on (as the
// chart does) unless the test picked its own address.
func (w *world) startController(name string, args ...string) {
	w.t.Helper()
	w.metrics = ""
	picked := false
	for i, a := range args {
		if strings.HasPrefix(a, "--metrics-addr") {
			picked = true
			if a == "--metrics-addr" && i+1 < len(args) {
				w.metrics = "http://" + args[i+1]
			}
		}
	}
	if !picked {
		addr := fmt.Sprintf("127.0.0.1:%d", opsFreePort(w.t))
		args = append(append([]string{}, args...), "--metrics-addr", addr)
		w.metrics = "http://" + addr
	}
	var err error
	if w.ctrl, err = w.s.StartController(name, args...); err != nil {
		w.t.Fatalf("controller: %v", err)
	}
}

// stopController stops it with SIGTERM and checks it exited cleanly: status 0
// means no sanitizer report and no leak (the sanitizers exit 99).
func (w *world) stopController() {
	w.t.Helper()
	if w.ctrl == nil {
		return
	}
	// A signal that lands before main() has blocked it (the runtime is still
	// loading) kills the process outright: let it get going first.
	started := func(out string) bool { // either log format
		return strings.Contains(out, `"msg":"controller_`) || strings.Contains(out, " INFO controller_")
	}
	for i := 0; i < 100 && !w.ctrl.Exited() && !started(w.ctrl.Output()); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if w.metrics != "" && !w.ctrl.Exited() {
		if text, err := scrape(w.metrics + "/metrics"); err == nil {
			w.shown = append(w.shown, shown{"/metrics", text})
		}
	}
	start := time.Now()
	err := w.ctrl.Stop(15 * time.Second)
	out := w.ctrl.Output()
	sanitized.add(err == nil, sanitizerRe.FindString(out))
	if err != nil {
		w.t.Errorf("controller exit: %v\n%s", err, tail(w.ctrl.Output(), 40))
	}
	if d := time.Since(start); d > 10*time.Second {
		w.t.Errorf("SIGTERM took %v", d)
	}
	w.checkNoLeak(out, "controller log")
	w.shown = append(w.shown, shown{"controller log", out})
	w.ctrl = nil
}

func (w *world) close() {
	if w.ctrl != nil && !w.ctrl.Exited() {
		w.stopController()
	}
	w.checkAllEvents()
	w.searchMinted()
	if w.t.Failed() {
		os.Setenv("PGTR_KEEP", "1")
		w.t.Logf("stack kept in %s", w.s.Dir)
	}
	w.s.Close()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var jwtRe = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+`)

// checkNoLeak fails if text holds anything token-shaped or any password seen.
func (w *world) checkNoLeak(text, where string) {
	w.t.Helper()
	if m := jwtRe.FindString(text); m != "" {
		w.t.Errorf("%s holds a JWT-shaped string (%d bytes)", where, len(m))
	}
	w.seenMu.Lock()
	defer w.seenMu.Unlock()
	for p := range w.seen {
		if len(p) >= 16 && strings.Contains(text, p[len(p)-16:]) {
			w.t.Errorf("%s holds part of a password written to a Secret", where)
		}
	}
}

func (w *world) remember(sec *stack.Secret) {
	if p := sec.Value("password"); p != "" {
		w.seenMu.Lock()
		w.seen[p] = true
		w.seenMu.Unlock()
	}
}

// managed creates a labelled Secret with the given annotations.
func (w *world) managed(ns, name string, ann map[string]string) {
	w.t.Helper()
	if err := w.k.EnsureNamespace(ns); err != nil {
		w.t.Fatal(err)
	}
	if err := w.k.CreateSecret(ns, name, map[string]string{"pgtoken.io/managed": "true"}, ann,
		map[string]string{"unrelated": "keep-me"}); err != nil {
		w.t.Fatal(err)
	}
}

// pgAnn are annotations pointing at the stack's PostgreSQL as the controller's role.
func (w *world) pgAnn(extra ...string) map[string]string {
	a := map[string]string{
		"pgtoken.io/host":     "localhost",
		"pgtoken.io/port":     fmt.Sprint(w.s.PGPort),
		"pgtoken.io/user":     stack.ControllerRole,
		"pgtoken.io/database": "app",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		a[extra[i]] = extra[i+1]
	}
	return a
}

// waitSecret polls until cond holds (or fails the test after timeout).
func (w *world) waitSecret(ns, name string, timeout time.Duration, what string, cond func(*stack.Secret) bool) *stack.Secret {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *stack.Secret
	for time.Now().Before(deadline) {
		if sec, err := w.k.GetSecret(ns, name); err == nil {
			last = sec
			w.remember(sec)
			if cond(sec) {
				return sec
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	var ann map[string]string
	if last != nil {
		ann = last.Metadata.Annotations
	}
	w.t.Fatalf("%s/%s: %s did not happen within %v; annotations %v\ncontroller log:\n%s", ns, name,
		what, timeout, ann, tail(w.ctrl.Output(), 30))
	return nil
}

// psql logs in with a connection URI and returns current_user.
func (w *world) psql(uri string) (string, error) {
	cmd := exec.Command("psql", uri, "-Atqc", "select current_user")
	cmd.Env = append(os.Environ(), "PGSSLROOTCERT="+w.s.PKI+"/ca.crt", "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql: %v: %s", err, redact(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

func redact(s string) string { return jwtRe.ReplaceAllString(s, "[token]") }

// events returns the Events about one Secret.
func (w *world) events(ns, name string) []stack.Event {
	w.t.Helper()
	evs, err := w.k.Events(ns)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []stack.Event
	for _, e := range evs {
		if e.InvolvedObject.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func hasEvent(evs []stack.Event, reason string) *stack.Event {
	for i := range evs {
		if evs[i].Reason == reason {
			return &evs[i]
		}
	}
	return nil
}

// retryDelays returns the retry_in_ms of each rotation_failed line with reason.
func retryDelays(log, reason string) []int64 {
	var out []int64
	for _, line := range strings.Split(log, "\n") {
		var l struct {
			Msg, Reason string
			RetryInMs   int64 `json:"retry_in_ms"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "rotation_failed" && l.Reason == reason {
			out = append(out, l.RetryInMs)
		}
	}
	return out
}

// checkAllEvents scans every Event in the cluster for token material.
func (w *world) checkAllEvents() {
	w.t.Helper()
	var l struct{ Items []stack.Event }
	if err := w.k.JSON("GET", "/api/v1/events", "", nil, &l); err != nil {
		w.t.Errorf("listing Events: %v", err)
		return
	}
	for _, e := range l.Items {
		w.checkNoLeak(e.Message, "Event "+e.Reason)
		w.shown = append(w.shown, shown{"Event " + e.Reason, e.Message})
	}
	var secrets struct{ Items []stack.Secret }
	if err := w.k.JSON("GET", "/api/v1/secrets", "", nil, &secrets); err != nil {
		w.t.Errorf("listing Secrets: %v", err)
		return
	}
	for _, sec := range secrets.Items {
		where := "annotations of Secret " + sec.Metadata.Namespace + "/" + sec.Metadata.Name
		for _, m := range []map[string]string{sec.Metadata.Annotations, sec.Metadata.Labels} {
			for k, v := range m {
				w.checkNoLeak(k+"="+v, where)
				w.shown = append(w.shown, shown{where, k + "=" + v})
			}
		}
	}
}

// searchMinted looks for every access token the fake Entra issued in this
// world (whole, and its signature alone) in everything the controllers showed:
// logs, Events, annotations and labels of every Secret, /metrics.
func (w *world) searchMinted() {
	w.t.Helper()
	tokens, err := w.minted()
	if err != nil {
		w.t.Errorf("asking the fake Entra for the tokens it minted: %v", err)
		return
	}
	n := 0
	for _, s := range w.shown {
		n += len(s.text)
		for _, tok := range tokens {
			sig := tok
			if i := strings.LastIndexByte(tok, '.'); i >= 0 && len(tok)-i > 16 {
				sig = tok[i+1:]
			}
			if strings.Contains(s.text, tok) || strings.Contains(s.text, sig) {
				w.t.Errorf("%s holds a token the fake Entra minted", s.where)
				leaks.found++
			}
		}
	}
	leaks.add(len(tokens), n, len(w.shown))
}

// minted returns the access tokens the fake Entra has issued (GET /_fake/minted).
func (w *world) minted() ([]string, error) {
	var v []struct {
		AccessToken string `json:"access_token"`
	}
	if err := w.s.EntraControl("GET", "minted", nil, &v); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(v))
	for _, m := range v {
		if len(m.AccessToken) >= 16 { // a truncated answer may hold a stub
			out = append(out, m.AccessToken)
		}
	}
	return out, nil
}

// entraJSON calls the fake Entra's control API (PATH under /_fake/) and
// decodes its answer into out (unless nil); any failure ends the test.
func (w *world) entraJSON(method, path string, body, out any) {
	w.t.Helper()
	if err := w.s.EntraControl(method, path, body, out); err != nil {
		w.t.Fatal(err)
	}
}

// entra sends one control request to the fake Entra (faults, config).
func (w *world) entra(method, path string, body any) {
	w.t.Helper()
	w.entraJSON(method, path, body, nil)
}

func scrape(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

var sanitizerRe = regexp.MustCompile(`(ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:)[^\n]*`)

// The run's totals, printed by TestMain for the reliability table.
var (
	leaks     leakTotals
	sanitized sanTotals
)

type leakTotals struct {
	mu                            sync.Mutex
	worlds, tokens, bytes, places int
	found                         int
}

func (l *leakTotals) add(tokens, bytes, places int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.worlds++
	l.tokens += tokens
	l.bytes += bytes
	l.places += places
}

type sanTotals struct {
	mu             sync.Mutex
	stops, unclean int
	reports        []string
}

func (s *sanTotals) add(clean bool, report string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stops++
	if !clean {
		s.unclean++
	}
	if report != "" {
		s.reports = append(s.reports, report)
	}
}

// rule is one RBAC policy rule.
func rule(group string, resources []string, verbs ...string) map[string]any {
	return map[string]any{"apiGroups": []string{group}, "resources": resources, "verbs": verbs}
}

// grant gives the controller's ServiceAccount the rules, as a ClusterRole and
// ClusterRoleBinding named name, or a Role and RoleBinding in namespace ns. Only
// the real kube-apiserver enforces RBAC; against the fake it does nothing.
func (w *world) grant(name, ns string, rules ...map[string]any) {
	w.t.Helper()
	if !realKube() {
		return
	}
	kind, base := "ClusterRole", "/apis/rbac.authorization.k8s.io/v1/"
	meta := map[string]any{"name": name}
	if ns != "" {
		kind, base = "Role", base+"namespaces/"+ns+"/"
		meta["namespace"] = ns
	}
	role := map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
		"metadata": meta, "rules": rules}
	bind := map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind + "Binding",
		"metadata": meta,
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
		"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": stack.ControllerSA,
			"namespace": stack.ControllerNS}}}
	if err := w.k.JSON("POST", base+strings.ToLower(kind)+"s", "application/json", role, nil); err != nil {
		w.t.Fatal(err)
	}
	if err := w.k.JSON("POST", base+strings.ToLower(kind)+"bindings", "application/json", bind, nil); err != nil {
		w.t.Fatal(err)
	}
}

// realKube reports whether this run uses a real kube-apiserver (PGTR_KUBE=real).
func realKube() bool { return os.Getenv("PGTR_KUBE") == "real" }

// apiNeutral skips the real kube-apiserver tier's second run of a test whose
// subject is Entra ID, PostgreSQL or the clock, not the API server: the same
// controller code talks to both servers, and the run is long enough.
func apiNeutral(t *testing.T) {
	t.Helper()
	if realKube() {
		t.Skip("its subject is not the API server: run once, in the fake API server tier")
	}
}

// needsFake skips, before any stack is started, a test that needs the fake API
// server's fault switches.
func needsFake(t *testing.T, why string) {
	t.Helper()
	if realKube() {
		t.Skip("needs the fake API server: " + why)
	}
}

// fakeOnly skips a test that needs the fake API server's fault switches.
func (w *world) fakeOnly(why string) {
	w.t.Helper()
	if realKube() {
		w.t.Skip("needs the fake API server: " + why)
	}
}

// covers declares that this test proves one row of the README's reliability
// table: class (e.g. "Kubernetes API"), the fault or bad input, and how the
// test provokes and checks it. tests/reliability builds the table from these
// lines and the test's own PASS/FAIL/SKIP in the run's log, so a row exists
// only where a test ran and its result is what the run said.
func covers(t *testing.T, class, fault, how string) {
	t.Helper()
	clean := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	tier := "fake"
	if realKube() {
		tier = "real"
	}
	fmt.Printf("RELIABILITY\t%s\t%s\t%s\t%s\t%s\n", tier, t.Name(), clean(class), clean(fault), clean(how))
}
