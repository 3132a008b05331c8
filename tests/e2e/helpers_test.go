package e2e

import (
	"encoding/json"
	"fmt"
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
}

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

func (w *world) startController(name string, args ...string) {
	w.t.Helper()
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
	for i := 0; i < 100 && !w.ctrl.Exited() && !strings.Contains(w.ctrl.Output(), `"msg":"controller_`); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	err := w.ctrl.Stop(15 * time.Second)
	if err != nil {
		w.t.Errorf("controller exit: %v\n%s", err, tail(w.ctrl.Output(), 40))
	}
	if d := time.Since(start); d > 10*time.Second {
		w.t.Errorf("SIGTERM took %v", d)
	}
	w.checkNoLeak(w.ctrl.Output(), "controller log")
	w.ctrl = nil
}

func (w *world) close() {
	if w.ctrl != nil && !w.ctrl.Exited() {
		w.stopController()
	}
	w.checkAllEvents()
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
	}
}

// realKube reports whether this run uses a real kube-apiserver (PGTR_KUBE=real).
func realKube() bool { return os.Getenv("PGTR_KUBE") == "real" }

// fakeOnly skips a test that needs the fake API server's fault switches.
func (w *world) fakeOnly(why string) {
	w.t.Helper()
	if realKube() {
		w.t.Skip("needs the fake API server: " + why)
	}
}
