package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

// Faults of the Kubernetes API server, provoked with the fake's fault
// switches (tests/fakes/kube/README.md) and checked against the fake's
// request log, which stamps when each request arrived and when its answer
// ended.

// apiReq is one request as the fake recorded it.
type apiReq struct {
	Seq       int             `json:"seq"`
	Time      string          `json:"time"`
	End       string          `json:"end"`
	Verb      string          `json:"verb"`
	Method    string          `json:"method"`
	Path      string          `json:"path"`
	Query     string          `json:"query"`
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	Code      int             `json:"code"`
	Fault     int             `json:"fault"`
	Body      json.RawMessage `json:"body"`
	at, ended time.Time       // Time and End parsed; ended is zero while open
}

// apiFault sets a fault on the fake API server and returns its id.
func (w *world) apiFault(f map[string]any) int {
	w.t.Helper()
	var out struct{ ID int }
	if err := w.k.JSON("POST", "/_fake/faults", "application/json", f, &out); err != nil {
		w.t.Fatal(err)
	}
	// Faults left over would answer the world's own checks at close.
	w.t.Cleanup(func() { w.k.Fake("DELETE", "faults", nil) })
	return out.ID
}

// apiRequests returns the fake's request log filtered by query (since=SEQ&verb=...).
func (w *world) apiRequests(query string) []apiReq {
	w.t.Helper()
	var out []apiReq
	if err := w.k.JSON("GET", "/_fake/requests?"+query, "", nil, &out); err != nil {
		w.t.Fatal(err)
	}
	for i := range out {
		var err error
		if out[i].at, err = time.Parse(time.RFC3339Nano, out[i].Time); err != nil {
			w.t.Fatalf("request %d: time %q: %v", out[i].Seq, out[i].Time, err)
		}
		if out[i].End != "" {
			out[i].ended, _ = time.Parse(time.RFC3339Nano, out[i].End)
		}
	}
	return out
}

// apiSeq is the sequence number of the last request the fake recorded.
func (w *world) apiSeq() int {
	w.t.Helper()
	all := w.apiRequests("")
	if len(all) == 0 {
		return 0
	}
	return all[len(all)-1].Seq
}

// firedBy returns the index of the request fault id answered, or -1.
func firedBy(reqs []apiReq, id int) int {
	for i, r := range reqs {
		if r.Fault == id {
			return i
		}
	}
	return -1
}

// waitFired waits until fault id has answered a request (ended: and the
// answer is over) and returns that request.
func (w *world) waitFired(id int, query string, ended bool, timeout time.Duration) apiReq {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		reqs := w.apiRequests(query)
		if i := firedBy(reqs, id); i >= 0 && (!ended || reqs[i].End != "") {
			return reqs[i]
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.t.Fatalf("fault %d did not fire (%s) within %v\ncontroller log:\n%s", id, query, timeout,
		tail(w.ctrl.Output(), 30))
	return apiReq{}
}

// logEntries returns the controller's log lines with this msg, decoded.
func logEntries(out, msg string) []map[string]any {
	var res []map[string]any
	for _, line := range strings.Split(out, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			res = append(res, m)
		}
	}
	return res
}

// waitLog waits until the controller logged a line with msg whose fields
// hold every given substring, and returns it.
func (w *world) waitLog(msg string, timeout time.Duration, substr ...string) map[string]any {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range logEntries(w.ctrl.Output(), msg) {
			b, _ := json.Marshal(e)
			ok := true
			for _, s := range substr {
				ok = ok && strings.Contains(string(b), s)
			}
			if ok {
				return e
			}
		}
		if w.ctrl.Exited() || time.Now().After(deadline) {
			w.t.Fatalf("no %q log line with %q within %v (exited: %v)\n%s", msg, substr, timeout,
				w.ctrl.Exited(), tail(w.ctrl.Output(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// peakRSSMB is the controller's peak resident memory so far (VmHWM), in MiB.
func (w *world) peakRSSMB() int64 {
	w.t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", w.ctrl.Cmd.Process.Pid))
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				w.t.Fatal(err)
			}
			return kb / 1024
		}
	}
	w.t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// alive fails the test if the controller has exited (a crash, or a
// sanitizer report: the ASan build exits at once on one).
func (w *world) alive(what string) {
	w.t.Helper()
	if w.ctrl.Exited() {
		w.t.Fatalf("the controller exited after %s:\n%s", what, tail(w.ctrl.Output(), 40))
	}
}

// rotatedOK waits until ns/name holds a password that logs in, with no
// error recorded, and returns it.
func (w *world) rotatedOK(ns, name string, timeout time.Duration) *stack.Secret {
	w.t.Helper()
	sec := w.waitSecret(ns, name, timeout, "rotated with no error left", func(s *stack.Secret) bool {
		return s.Data["password"] != "" && s.Metadata.Annotations["pgtoken.io/status.last-error"] == ""
	})
	if user, err := w.psql(sec.Value("DATABASE_URL")); err != nil || user != stack.ControllerRole {
		w.t.Fatalf("%s/%s: the written DATABASE_URL does not log in: %q %v", ns, name, user, err)
	}
	return sec
}

// dataWrites returns the requests that wrote data.password (answered code,
// if code is not 0), with the SHA-256 the fake recorded for the value.
func dataWrites(reqs []apiReq, code int) (out []apiReq, hashes []string) {
	for _, r := range reqs {
		if r.Method != "PATCH" || (code != 0 && r.Code != code) {
			continue
		}
		var b struct{ Data map[string]string }
		if json.Unmarshal(r.Body, &b) == nil && b.Data["password"] != "" {
			out = append(out, r)
			hashes = append(hashes, b.Data["password"])
		}
	}
	return out, hashes
}

func sha256Of(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// restartWith stops the controller, lets setup arrange the API server (faults
// for what the controller does first), then starts a new one. It returns the
// last request seq before the new controller.
func (w *world) restartWith(name string, setup func(), args ...string) int {
	w.t.Helper()
	w.stopController()
	setup()
	seq := w.apiSeq()
	w.startController(name, args...)
	return seq
}

func metricsArgs(t *testing.T) (string, []string) {
	addr := fmt.Sprintf("127.0.0.1:%d", opsFreePort(t))
	return "http://" + addr, []string{"--metrics-addr", addr}
}

func probe(url string) int {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// ---- 429

func TestAPIThrottledPatch(t *testing.T) {
	covers(t, "Kubernetes API", "429 with Retry-After: 3 on PATCH of a Secret",
		"the first rotation PATCH is throttled; the fake's request log shows no PATCH of that Secret for 3 s after it, then the Secret is written and logs in")
	needsFake(t, "answers 429 on demand")
	w := newWorld(t, stack.Options{})
	id := w.apiFault(map[string]any{"match": map[string]any{"verb": "patch", "resource": "secrets", "namespace": "thr"},
		"status": 429, "retry_after_s": 3, "count": 1})
	w.managed("thr", "db", w.pgAnn())
	sec := w.rotatedOK("thr", "db", 40*time.Second)

	reqs := w.apiRequests("verb=patch&resource=secrets&namespace=thr")
	i := firedBy(reqs, id)
	if i < 0 || reqs[i].Code != 429 {
		t.Fatalf("the 429 did not fire: %+v", reqs)
	}
	if i+1 >= len(reqs) {
		t.Fatalf("no PATCH after the 429")
	}
	if gap := reqs[i+1].at.Sub(reqs[i].at); gap < 3*time.Second {
		t.Errorf("the next PATCH (%s) came %v after the 429 with Retry-After: 3", reqs[i+1].Body, gap)
	}
	writes, hashes := dataWrites(reqs, 200)
	if len(writes) != 1 || hashes[0] != sha256Of(sec.Value("password")) {
		t.Errorf("%d successful data writes; want 1, carrying the value the Secret holds", len(writes))
	}
	if d := retryDelays(w.ctrl.Output(), "WriteFailed"); len(d) == 0 || d[0] < 3000 {
		t.Errorf("the throttled write was not retried after Retry-After: retry delays %v", d)
	}
}

func TestAPIThrottledList(t *testing.T) {
	covers(t, "Kubernetes API", "429 with Retry-After: 3 on the initial LIST of Secrets",
		"a new controller's first LIST is throttled; the request log shows the next LIST at least 3 s later, then the Secret is written and logs in")
	needsFake(t, "answers 429 on demand")
	w := newWorld(t, stack.Options{})
	var id int
	seq := w.restartWith("controller-2", func() {
		w.managed("thrl", "db", w.pgAnn())
		id = w.apiFault(map[string]any{"match": map[string]any{"verb": "list", "resource": "secrets"},
			"status": 429, "retry_after_s": 3, "count": 1})
	})
	w.rotatedOK("thrl", "db", 40*time.Second)
	lists := w.apiRequests(fmt.Sprintf("since=%d&verb=list&resource=secrets", seq))
	if len(lists) < 2 || lists[0].Fault != id || lists[0].Code != 429 {
		t.Fatalf("the first LIST was not the throttled one: %+v", lists)
	}
	if gap := lists[1].at.Sub(lists[0].at); gap < 3*time.Second {
		t.Errorf("the next LIST came %v after the 429 with Retry-After: 3", gap)
	}
	e := w.waitLog("list_failed", time.Second, "429")
	if ms, _ := e["retry_in_ms"].(float64); ms < 3000 {
		t.Errorf("list_failed retry_in_ms %v < Retry-After", e["retry_in_ms"])
	}
}

// ---- 500

func TestAPIServerErrorsPatch(t *testing.T) {
	covers(t, "Kubernetes API", "a burst of three 500s on PATCH of a Secret",
		"each failure is logged and retried with growing backoff, a WriteFailed Event names the 500, exactly one data write succeeds and it is the value the Secret holds, which logs in")
	needsFake(t, "answers 500 on demand")
	w := newWorld(t, stack.Options{})
	id := w.apiFault(map[string]any{"match": map[string]any{"verb": "patch", "resource": "secrets", "namespace": "e500"},
		"status": 500, "count": 3})
	w.managed("e500", "db", w.pgAnn())
	sec := w.rotatedOK("e500", "db", 40*time.Second)

	reqs := w.apiRequests("verb=patch&resource=secrets&namespace=e500")
	failed := 0
	for _, r := range reqs {
		if r.Fault == id {
			failed++
		}
	}
	if failed != 3 {
		t.Errorf("%d PATCHes got the 500; want 3", failed)
	}
	attempts, _ := dataWrites(reqs, 0)
	writes, hashes := dataWrites(reqs, 200)
	if len(writes) != 1 || hashes[0] != sha256Of(sec.Value("password")) {
		t.Errorf("%d successful data writes; want exactly 1, carrying the value the Secret holds", len(writes))
	}
	delays := retryDelays(w.ctrl.Output(), "WriteFailed")
	if len(delays) < 1 || len(attempts) != len(delays)+1 {
		t.Fatalf("%d write attempts, %d logged retries (%v)", len(attempts), len(delays), delays)
	}
	for i := 1; i < len(delays); i++ {
		if delays[i] <= delays[i-1] {
			t.Errorf("retry delays do not grow: %v", delays)
		}
	}
	for i := 1; i < len(attempts); i++ {
		if gap := attempts[i].at.Sub(attempts[i-1].at); gap < time.Duration(delays[i-1])*time.Millisecond {
			t.Errorf("attempt %d came %v after the last, before its logged retry_in_ms %d", i+1, gap, delays[i-1])
		}
	}
	ev := hasEvent(w.events("e500", "db"), "WriteFailed")
	if ev == nil || !strings.Contains(ev.Message, "500") {
		t.Errorf("no WriteFailed Event naming the 500: %+v", ev)
	}
}

func TestAPIServerErrorsList(t *testing.T) {
	covers(t, "Kubernetes API", "three 500s on the initial LIST of Secrets",
		"list_failed is logged with the 500 and retried with growing delays the request log confirms; the Secret is then written once and logs in")
	needsFake(t, "answers 500 on demand")
	w := newWorld(t, stack.Options{})
	var id int
	seq := w.restartWith("controller-2", func() {
		w.managed("e500l", "db", w.pgAnn())
		id = w.apiFault(map[string]any{"match": map[string]any{"verb": "list", "resource": "secrets"},
			"status": 500, "count": 3})
	})
	sec := w.rotatedOK("e500l", "db", 40*time.Second)
	lists := w.apiRequests(fmt.Sprintf("since=%d&verb=list&resource=secrets", seq))
	if len(lists) != 4 {
		t.Fatalf("%d LISTs; want 3 failed and 1 good", len(lists))
	}
	var delays []int64
	for _, e := range logEntries(w.ctrl.Output(), "list_failed") {
		if strings.Contains(fmt.Sprint(e["detail"]), "500") {
			delays = append(delays, int64(e["retry_in_ms"].(float64)))
		}
	}
	if len(delays) != 3 {
		t.Fatalf("list_failed naming the 500 logged %d times; want 3", len(delays))
	}
	for i := 0; i < 3; i++ {
		if lists[i].Fault != id {
			t.Errorf("LIST %d was not a 500: %+v", i+1, lists[i])
		}
		if gap := lists[i+1].at.Sub(lists[i].at); gap < time.Duration(delays[i])*time.Millisecond {
			t.Errorf("LIST %d came %v after the last, before its logged retry_in_ms %d", i+2, gap, delays[i])
		}
		if i > 0 && delays[i] <= delays[i-1] {
			t.Errorf("list retry delays do not grow: %v", delays)
		}
	}
	writes, hashes := dataWrites(w.apiRequests(fmt.Sprintf("since=%d&verb=patch&namespace=e500l", seq)), 200)
	if len(writes) != 1 || hashes[0] != sha256Of(sec.Value("password")) {
		t.Errorf("%d data writes after the failed LISTs; want 1", len(writes))
	}
}

// ---- hung connections

// The controller's API requests time out after 30 s (lib/net/http.c default;
// no setting changes it for the Kubernetes client).
const apiRequestTimeout = 30 * time.Second

func TestAPIHungPatch(t *testing.T) {
	covers(t, "Kubernetes API", "a PATCH of a Secret that never gets an answer",
		"the fake holds the connection; other Secrets rotate and /healthz answers meanwhile; the controller gives up after its 30 s request timeout (the fake saw it leave), retries, and the Secret is written and logs in")
	base, args := metricsArgs(t)
	needsFake(t, "holds a PATCH open on demand")
	w := newWorld(t, stack.Options{}, args...)
	id := w.apiFault(map[string]any{"match": map[string]any{"verb": "patch", "resource": "secrets", "namespace": "hangp"},
		"hang": true, "count": 1})
	w.managed("hangp", "db", w.pgAnn())
	hung := w.waitFired(id, "verb=patch&namespace=hangp", false, 20*time.Second)
	if hung.End != "" {
		t.Fatalf("the hung PATCH ended at once: %+v", hung)
	}
	w.managed("hangp-other", "db", w.pgAnn())
	w.rotatedOK("hangp-other", "db", 20*time.Second)
	if c := probe(base + "/healthz"); c != 200 {
		t.Errorf("/healthz answered %d while a PATCH hung", c)
	}
	if rs := w.apiRequests("verb=patch&namespace=hangp"); rs[firedBy(rs, id)].End != "" {
		t.Fatalf("the hung PATCH ended before the other Secret was written")
	}
	sec := w.rotatedOK("hangp", "db", apiRequestTimeout+20*time.Second)
	reqs := w.apiRequests("verb=patch&resource=secrets&namespace=hangp")
	hung = reqs[firedBy(reqs, id)]
	if d := hung.ended.Sub(hung.at); d < apiRequestTimeout-time.Second || d > apiRequestTimeout+5*time.Second {
		t.Errorf("the controller left the hung PATCH after %v; want its %v timeout", d, apiRequestTimeout)
	}
	if _, hashes := dataWrites(reqs, 200); len(hashes) != 1 || hashes[0] != sha256Of(sec.Value("password")) {
		t.Errorf("%d successful data writes; want 1", len(hashes))
	}
	w.waitLog("rotation_failed", time.Second, "WriteFailed", "timed out")
}

func TestAPIHungList(t *testing.T) {
	covers(t, "Kubernetes API", "the initial LIST of Secrets never gets an answer",
		"the fake holds the LIST; /healthz answers and /readyz says not ready meanwhile; after its 30 s request timeout the controller lists again and the Secret is written and logs in")
	base, args := metricsArgs(t)
	needsFake(t, "holds a LIST open on demand")
	w := newWorld(t, stack.Options{}, args...)
	var id int
	seq := w.restartWith("controller-2", func() {
		w.managed("hangl", "db", w.pgAnn())
		id = w.apiFault(map[string]any{"match": map[string]any{"verb": "list", "resource": "secrets"},
			"hang": true, "count": 1})
	}, args...)
	w.waitFired(id, fmt.Sprintf("since=%d&verb=list", seq), false, 20*time.Second)
	time.Sleep(2 * time.Second)
	if c := probe(base + "/healthz"); c != 200 {
		t.Errorf("/healthz answered %d while the LIST hung", c)
	}
	if c := probe(base + "/readyz"); c == 200 || c == 0 {
		t.Errorf("/readyz answered %d before any LIST completed", c)
	}
	w.rotatedOK("hangl", "db", apiRequestTimeout+20*time.Second)
	lists := w.apiRequests(fmt.Sprintf("since=%d&verb=list&resource=secrets", seq))
	if len(lists) < 2 || lists[0].Fault != id {
		t.Fatalf("LISTs %+v", lists)
	}
	if d := lists[0].ended.Sub(lists[0].at); d < apiRequestTimeout-time.Second || d > apiRequestTimeout+5*time.Second {
		t.Errorf("the controller left the hung LIST after %v; want its %v timeout", d, apiRequestTimeout)
	}
	w.waitLog("list_failed", time.Second, "timed out")
	if c := probe(base + "/readyz"); c != 200 {
		t.Errorf("/readyz answered %d after the LIST", c)
	}
}

func TestAPIHungWatch(t *testing.T) {
	covers(t, "Kubernetes API", "a watch of Secrets that never sends a byte",
		"the watch is cut and its retry is held by the fake; a Secret created meanwhile is written once the controller's idle timeout (watch.idleTimeoutSeconds: 5) fires and it watches again")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("watch:\n  idleTimeoutSeconds: 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	needsFake(t, "holds a watch open on demand")
	w := newWorld(t, stack.Options{}, "--config", cfg)
	w.managed("hangw", "first", w.pgAnn())
	w.rotatedOK("hangw", "first", 30*time.Second)
	seq := w.apiSeq()
	id := w.apiFault(map[string]any{"match": map[string]any{"verb": "watch", "resource": "secrets"},
		"hang": true, "count": 1})
	if err := w.k.Fake("POST", "drop-watches", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	w.waitFired(id, fmt.Sprintf("since=%d&verb=watch", seq), false, 20*time.Second)
	w.managed("hangw", "second", w.pgAnn())
	w.rotatedOK("hangw", "second", 30*time.Second)
	watches := w.apiRequests(fmt.Sprintf("since=%d&verb=watch", seq))
	i := firedBy(watches, id)
	if watches[i].End == "" {
		t.Fatalf("the hung watch is still open")
	}
	if d := watches[i].ended.Sub(watches[i].at); d < 4500*time.Millisecond || d > 15*time.Second {
		t.Errorf("the controller left the silent watch after %v; want about its 5 s idle timeout", d)
	}
	w.waitLog("watch_failed", time.Second, "went quiet for 5s")
}

// ---- a slow, paged list of many Secrets

func TestAPISlowPagedList(t *testing.T) {
	const managed, unmanaged = 520, 80 // over five pages of the controller's 100
	covers(t, "Kubernetes API", fmt.Sprintf("a slow LIST of %d managed and %d unmanaged Secrets, in pages", managed, unmanaged),
		"the first two pages are delayed; the controller pages with limit and continue, a Secret created between pages 1 and 2 arrives by the watch, every managed Secret is written exactly once, no unmanaged one is touched")
	needsFake(t, "delays LIST pages on demand")
	w := newWorld(t, stack.Options{})
	var late apiReq
	seq := w.restartWith("controller-2", func() {
		if err := w.k.EnsureNamespace("slow"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < managed+unmanaged; i++ {
			labels := map[string]string{"pgtoken.io/managed": "true"}
			if i >= managed {
				labels = map[string]string{"app": "other"}
			}
			if err := w.k.CreateSecret("slow", fmt.Sprintf("s-%03d", i), labels, w.pgAnn(),
				map[string]string{"unrelated": "keep-me"}); err != nil {
				t.Fatal(err)
			}
		}
		w.apiFault(map[string]any{"match": map[string]any{"verb": "list", "resource": "secrets"}, "delay_ms": 1500, "count": 1})
		w.apiFault(map[string]any{"match": map[string]any{"verb": "list", "resource": "secrets"}, "delay_ms": 3000, "count": 1})
	})
	// Create one more Secret once the first page is out and the second is held.
	deadline := time.Now().Add(20 * time.Second)
	for {
		lists := w.apiRequests(fmt.Sprintf("since=%d&verb=list&resource=secrets", seq))
		if len(lists) >= 2 && lists[0].End != "" && lists[1].End == "" {
			w.managed("slow", "late", w.pgAnn())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never saw page 1 served and page 2 pending: %+v", lists)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, r := range w.apiRequests(fmt.Sprintf("since=%d&verb=create&resource=secrets&namespace=slow", seq)) {
		late = r
	}
	names := []string{"late"}
	for i := 0; i < managed; i++ {
		names = append(names, fmt.Sprintf("s-%03d", i))
	}
	deadline = time.Now().Add(90 * time.Second)
	for _, n := range names {
		w.waitSecret("slow", n, time.Until(deadline), "written", hasKeys("password"))
	}
	lists := w.apiRequests(fmt.Sprintf("since=%d&verb=list&resource=secrets", seq))
	q1, _ := url.ParseQuery(lists[0].Query)
	limit, err := strconv.Atoi(q1.Get("limit"))
	if err != nil || limit <= 0 || limit >= managed || q1.Get("continue") != "" {
		t.Fatalf("the first LIST is not a page: %q", lists[0].Query)
	}
	if want := (managed + limit - 1) / limit; len(lists) != want {
		t.Fatalf("%d LISTs; want %d pages of %d and no relist", len(lists), want, limit)
	}
	for _, l := range lists[1:] {
		q, _ := url.ParseQuery(l.Query)
		if q.Get("continue") == "" || q.Get("limit") != q1.Get("limit") || l.Code != 200 {
			t.Errorf("not paged with limit and continue: %q then %q (%d)", lists[0].Query, l.Query, l.Code)
		}
	}
	if !(late.at.After(lists[0].ended) && late.at.Before(lists[1].ended)) {
		t.Errorf("the late Secret was not created between the pages (page 1 ended %v, created %v, page 2 ended %v)",
			lists[0].ended, late.at, lists[1].ended)
	}
	patches := w.apiRequests(fmt.Sprintf("since=%d&verb=patch&resource=secrets&namespace=slow", seq))
	perName := map[string]int{}
	for _, r := range patches {
		var b struct{ Data map[string]string }
		if json.Unmarshal(r.Body, &b) == nil && b.Data["password"] != "" && r.Code == 200 {
			perName[r.Name]++
		}
		if n, _ := strconv.Atoi(strings.TrimPrefix(r.Name, "s-")); strings.HasPrefix(r.Name, "s-") && n >= managed {
			t.Errorf("unmanaged Secret %s was patched", r.Name)
		}
	}
	for _, n := range names {
		if perName[n] != 1 {
			t.Errorf("%s written %d times; want 1", n, perName[n])
		}
	}
	if sec, err := w.k.GetSecret("slow", fmt.Sprintf("s-%03d", managed)); err != nil || sec.Data["password"] != "" {
		t.Errorf("an unmanaged Secret got a password (%v)", err)
	}
	w.rotatedOK("slow", "late", time.Second)
}

func TestAPIListEndsEarly(t *testing.T) {
	const managed, page = 150, 100 // the controller's pages are 100
	covers(t, "Kubernetes API", fmt.Sprintf("a paged LIST of %d managed Secrets that ends after its first page (no continue token)", managed),
		"with watch.relistSeconds: 0 the Secrets past the first page stay empty (nothing else finds them); with 5 the periodic relist finds them, logs them (relist_found) and counts them (relist_found_total), and every one is written")
	needsFake(t, "ends a paged LIST early on demand")
	dir := t.TempDir()
	config := func(relist int) string {
		p := filepath.Join(dir, fmt.Sprintf("relist-%d.yaml", relist))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("watch: {relistSeconds: %d}\n", relist)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	w := newWorld(t, stack.Options{}, "--config", config(0))
	name := func(i int) string { return fmt.Sprintf("s-%03d", i) }
	short := func() int {
		return w.apiFault(map[string]any{"match": map[string]any{"verb": "list", "resource": "secrets"}, "drop_continue": true, "count": 1})
	}
	var id int
	seq := w.restartWith("controller-norelist", func() {
		if err := w.k.EnsureNamespace("short"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < managed; i++ {
			if err := w.k.CreateSecret("short", name(i), map[string]string{"pgtoken.io/managed": "true"}, w.pgAnn(), nil); err != nil {
				t.Fatal(err)
			}
		}
		id = short()
	}, "--config", config(0))
	w.waitFired(id, fmt.Sprintf("since=%d&verb=list&resource=secrets", seq), true, 20*time.Second)
	for i := 0; i < page; i++ {
		w.waitSecret("short", name(i), 60*time.Second, "written", hasKeys("password"))
	}
	time.Sleep(8 * time.Second) // more than the relist period of the second half
	for i := page; i < managed; i++ {
		if sec, err := w.k.GetSecret("short", name(i)); err != nil || sec.Data["password"] != "" {
			t.Fatalf("%s: written without a relist (%v): the fault did not cut the list", name(i), err)
		}
	}
	if lists := w.apiRequests(fmt.Sprintf("since=%d&verb=list&resource=secrets", seq)); len(lists) != 1 {
		t.Fatalf("%d LISTs without a relist; want the one cut short", len(lists))
	}

	seq = w.restartWith("controller-relist", func() { id = short() }, "--config", config(5))
	w.waitFired(id, fmt.Sprintf("since=%d&verb=list&resource=secrets", seq), true, 20*time.Second)
	for i := 0; i < managed; i++ {
		w.waitSecret("short", name(i), 60*time.Second, "written", hasKeys("password"))
	}
	text, err := scrape(w.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := metricValue(text, "pgtoken_rotator_relist_found_total", ""); !ok || v != managed-page {
		t.Errorf("relist_found_total = %v (present %v); want %d", v, ok, managed-page)
	}
	if v, ok := metricValue(text, "pgtoken_rotator_resync_requeued_total", ""); !ok || v != 0 {
		t.Errorf("resync_requeued_total = %v (present %v); want 0", v, ok)
	}
	out := w.ctrl.Output()
	if !strings.Contains(out, `"msg":"relist_found"`) || !strings.Contains(out, `"found":50`) {
		t.Errorf("the log has no relist_found line with found 50:\n%s", tail(out, 20))
	}
	if n := strings.Count(out, `"msg":"secret_found_by_relist"`); n != 20 {
		t.Errorf("%d secret_found_by_relist lines; want 20 (the first 20 of 50)", n)
	}
	if !strings.Contains(out, `"key":"short/`+name(page)+`"`) {
		t.Errorf("the log does not name %s, the first Secret past the cut", name(page))
	}
}

// ---- hostile and malformed answers

// hostile is one bad answer: a raw fault (without match and count) and what
// the controller's log must then say.
type hostile struct {
	name  string
	fault map[string]any
	want  string
}

const (
	peakBoundMB = 200       // the controller's VmHWM bound (the ASan build, quarantine included)
	enormous    = 256 << 20 // bytes of an enormous answer
)

// enormousBody is a valid-looking JSON document of about 256 MiB (prefix,
// a small object repeated, suffix): far over any sane response cap.
func enormousBody(prefix, unit, suffix string) map[string]any {
	return map[string]any{"raw_prefix": prefix, "raw_body": unit, "raw_repeat": enormous / len(unit), "raw_suffix": suffix}
}

// deepBody is 100000 levels of [ ... ].
func deepBody() map[string]any { return map[string]any{"raw_deep": 100000} }

// queueHostile sets one count-1 fault per case, in order, on match.
func (w *world) queueHostile(match map[string]any, cases []hostile) []int {
	w.t.Helper()
	var ids []int
	for _, c := range cases {
		f := map[string]any{"match": match, "count": 1}
		for k, v := range c.fault {
			f[k] = v
		}
		ids = append(ids, w.apiFault(f))
	}
	return ids
}

// sufferHostile waits until every case's fault has answered, checking the
// controller survives each, then that it logged what each should say and
// that its peak memory stayed bounded.
func (w *world) sufferHostile(ids []int, cases []hostile, query string, timeout time.Duration) {
	w.t.Helper()
	for i, id := range ids {
		w.waitFired(id, query, true, timeout)
		time.Sleep(200 * time.Millisecond)
		w.alive(cases[i].name)
	}
	out := w.ctrl.Output()
	for _, c := range cases {
		if c.want != "" && !strings.Contains(out, c.want) {
			w.t.Errorf("after %s the log does not say %q", c.name, c.want)
		}
	}
	if mb := w.peakRSSMB(); mb > peakBoundMB {
		w.t.Errorf("the controller's peak RSS was %d MiB (bound %d MiB)", mb, peakBoundMB)
	} else {
		w.t.Logf("peak RSS %d MiB", mb)
	}
}

func TestAPIHostileList(t *testing.T) {
	covers(t, "Kubernetes API", "LIST of Secrets answered with truncated JSON, HTML, 100000-deep nesting, 256 MiB, wrong types (items a string, metadata a number), an empty body",
		"one bad answer per LIST, each logged as list_failed with the reason and retried, none taken for a list; no crash or sanitizer report, peak RSS under 200 MiB; then the Secret is written and logs in")
	needsFake(t, "sends raw answers on demand")
	w := newWorld(t, stack.Options{})
	var ids []int
	var cases []hostile
	seq := w.restartWith("controller-2", func() {
		w.managed("hostl", "db", w.pgAnn())
		var st struct{ ResourceVersion uint64 }
		if err := w.k.JSON("GET", "/_fake/stats", "", nil, &st); err != nil {
			t.Fatal(err)
		}
		// A resourceVersion that is current when the LIST is answered: a
		// watch from there would never show the Secret.
		rv := fmt.Sprint(st.ResourceVersion)
		head := `{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"` + rv + `"},"items":`
		cases = []hostile{
			{"truncated JSON", map[string]any{"raw_body": head + `[{"metadata":{"name":"db","namespace":"hostl"`}, "malformed JSON"},
			{"an HTML page", map[string]any{"raw_body": "<html><body>502 Bad Gateway</body></html>", "content_type": "text/html"}, "malformed JSON"},
			{"100000-deep nesting", deepBody(), "nested deeper"},
			{"a 256 MiB list", enormousBody(head+"[", `{"metadata":{"name":"padding","namespace":"hostl"}},`, `{}]}`), "bytes"},
			{"items a string", map[string]any{"raw_body": head + `"x"}`}, ""},
			{"metadata a number, items not objects", map[string]any{"raw_body": `{"kind":"SecretList","metadata":5,"items":[5,"x",{"metadata":5}]}`}, ""},
			{"an empty body", map[string]any{"raw": true}, ""},
		}
		ids = w.queueHostile(map[string]any{"verb": "list", "resource": "secrets"}, cases)
	})
	query := fmt.Sprintf("since=%d&verb=list", seq)
	for i, c := range cases {
		w.waitFired(ids[i], query, true, 30*time.Second)
		// Then either its list_failed (the i+1st), or the answer was taken for
		// a list (secrets_listed, with no list_failed for it).
		deadline := time.Now().Add(10 * time.Second)
		for len(logEntries(w.ctrl.Output(), "list_failed")) <= i && len(logEntries(w.ctrl.Output(), "secrets_listed")) == 0 {
			w.alive(c.name)
			if time.Now().After(deadline) {
				t.Fatalf("nothing logged after a LIST answered with %s:\n%s", c.name, tail(w.ctrl.Output(), 10))
			}
			time.Sleep(50 * time.Millisecond)
		}
		w.alive(c.name)
		if l := logEntries(w.ctrl.Output(), "secrets_listed"); len(l) > 0 && len(logEntries(w.ctrl.Output(), "list_failed")) <= i {
			t.Errorf("a LIST answered with %s was taken for a good list: %v", c.name, l[0])
			w.k.Fake("DELETE", "faults", nil)
			break
		}
		if e := logEntries(w.ctrl.Output(), "list_failed")[i]; !strings.Contains(fmt.Sprint(e["detail"]), c.want) {
			t.Errorf("after %s list_failed says %q; want %q", c.name, e["detail"], c.want)
		}
	}
	if mb := w.peakRSSMB(); mb > peakBoundMB {
		t.Errorf("the controller's peak RSS was %d MiB (bound %d MiB)", mb, peakBoundMB)
	} else {
		t.Logf("peak RSS %d MiB", mb)
	}
	w.rotatedOK("hostl", "db", 30*time.Second)
}

func TestAPIHostileWatch(t *testing.T) {
	covers(t, "Kubernetes API", "watch streams of garbage frames, wrong types, a truncated event then a cut connection, a 100000-deep event, a 256 MiB event, an HTML page",
		"one bad stream per watch, each logged and the watch restarted with backoff; no crash or sanitizer report, peak RSS under 200 MiB; a Secret created after is written and logs in")
	needsFake(t, "sends raw answers on demand")
	w := newWorld(t, stack.Options{})
	w.managed("hostw", "first", w.pgAnn())
	w.rotatedOK("hostw", "first", 30*time.Second)
	seq := w.apiSeq()
	ev := `{"type":"MODIFIED","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"first","namespace":"hostw"`
	cases := []hostile{
		{"garbage frames", map[string]any{"raw_body": "{\"type\":\"ADDED\",\"object\":{\"metadata\":5}}\n\x00\xff not json\n"}, "watch_bad_event"},
		{"wrong types", map[string]any{"raw_body": "{\"type\":5,\"object\":[]}\n{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":[],\"namespace\":{}},\"data\":\"x\"}}\n"}, "without type or object"},
		{"a truncated event, then a cut", map[string]any{"raw_body": ev, "raw_abort": true}, ""},
		{"100000-deep event", map[string]any{"raw_deep": 100000, "raw_suffix": "\n"}, "nested deeper"},
		{"a 256 MiB event", enormousBody(ev+`},"data":{"x":"`, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", `"}}}`+"\n"), "watch event over"},
		{"an HTML page", map[string]any{"raw_body": "<html>\n<body>upstream timed out</body>\n</html>\n", "content_type": "text/html"}, ""},
	}
	ids := w.queueHostile(map[string]any{"verb": "watch", "resource": "secrets"}, cases)
	if err := w.k.Fake("POST", "drop-watches", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	w.sufferHostile(ids, cases, fmt.Sprintf("since=%d&verb=watch", seq), 40*time.Second)
	w.managed("hostw", "second", w.pgAnn())
	w.rotatedOK("hostw", "second", 30*time.Second)
	if n := len(logEntries(w.ctrl.Output(), "watch_failed")); n < 4 {
		t.Errorf("%d watch_failed lines for %d bad streams", n, len(cases))
	}
}

func TestAPIHostilePatch(t *testing.T) {
	covers(t, "Kubernetes API", "PATCH of a Secret answered 500 with truncated JSON, 500 with 100000-deep nesting, 503 with 256 MiB, 500 with a wrongly typed Status, 409 not JSON",
		"each bad answer fails that write (logged, WriteFailed Event) and the write is retried; no crash or sanitizer report, peak RSS under 200 MiB; then the Secret is written and logs in")
	needsFake(t, "sends raw answers on demand")
	w := newWorld(t, stack.Options{})
	// Error answers only: a 2xx means the server applied the write, so the
	// controller need not read its body (and the fake applies nothing here).
	cases := []hostile{
		{"truncated JSON", map[string]any{"status": 500, "raw_body": `{"kind":"Status","apiVersion":"v1","message":"inter`}, "500 InternalError"},
		{"100000-deep nesting", map[string]any{"status": 500, "raw_deep": 100000}, "500 InternalError"},
		{"a 256 MiB answer", map[string]any{"status": 503, "raw_prefix": `{"kind":"Status","message":"`, "raw_body": "0123456789abcdef",
			"raw_repeat": enormous / 16, "raw_suffix": `"}`}, "bytes"},
		{"a 500 with a wrongly typed Status", map[string]any{"status": 500,
			"raw_body": `{"kind":"Status","status":5,"message":["x"],"reason":{"a":1},"details":"y","code":"500"}`}, "500 InternalError"},
		{"a 409 that is not JSON", map[string]any{"status": 409, "raw_body": "\x00\x01conflict?", "content_type": "application/octet-stream"}, "write_conflict_rereading"},
	}
	ids := w.queueHostile(map[string]any{"verb": "patch", "resource": "secrets", "namespace": "hostp"}, cases)
	seq := w.apiSeq()
	w.managed("hostp", "db", w.pgAnn())
	w.sufferHostile(ids, cases, fmt.Sprintf("since=%d&verb=patch&namespace=hostp", seq), 60*time.Second)
	sec := w.rotatedOK("hostp", "db", 40*time.Second)
	reqs := w.apiRequests(fmt.Sprintf("since=%d&verb=patch&namespace=hostp", seq))
	if _, hashes := dataWrites(reqs, 200); len(hashes) == 0 || hashes[len(hashes)-1] != sha256Of(sec.Value("password")) {
		t.Errorf("the value the Secret holds is not the last one written")
	}
	ev := hasEvent(w.events("hostp", "db"), "WriteFailed")
	if ev == nil {
		t.Errorf("no WriteFailed Event")
	}
}

func TestAPIHostileGet(t *testing.T) {
	covers(t, "Kubernetes API", "GET of a ServiceAccount answered with truncated JSON, 100000-deep nesting, 256 MiB, a wrongly typed client-id annotation",
		"a Secret using that ServiceAccount's identity: each bad answer fails the attempt with a logged reason and a backoff; no crash or sanitizer report, peak RSS under 200 MiB; then it is written with that identity and logs in as its role")
	needsFake(t, "sends raw answers on demand")
	w := newWorld(t, stack.Options{})
	w.entraConfig([]any{map[string]any{
		"client_id": appAClient, "object_id": appAOID, "display_name": "app-a",
		"federated_credentials": []any{map[string]any{"issuer": stack.Issuer,
			"subject": "system:serviceaccount:hostg:app-a", "audiences": []string{stack.Audience}}},
	}}, nil)
	if err := w.s.AddRole("hostg-role", appAOID, "hostg"); err != nil {
		t.Fatal(err)
	}
	w.serviceAccount("hostg", "app-a", map[string]string{"azure.workload.identity/client-id": appAClient})
	cases := []hostile{
		{"truncated JSON", map[string]any{"raw_body": `{"kind":"ServiceAccount","metadata":{"name":"app-a","annotations":{"azure.work`}, "malformed JSON"},
		{"100000-deep nesting", deepBody(), "nested deeper"},
		{"a 256 MiB answer", enormousBody(`{"kind":"ServiceAccount","metadata":{"name":"app-a","annotations":{"x":"`, "0123456789abcdef", `"}}}`), "bytes"},
		{"a client-id that is a number", map[string]any{"raw_body": `{"kind":"ServiceAccount","metadata":{"name":"app-a","annotations":{"azure.workload.identity/client-id":5}}}`}, "annotation"},
	}
	ids := w.queueHostile(map[string]any{"verb": "get", "resource": "serviceaccounts", "namespace": "hostg"}, cases)
	seq := w.apiSeq()
	w.managed("hostg", "db", w.pgAnn("pgtoken.io/service-account", "app-a",
		"pgtoken.io/user", "hostg-role", "pgtoken.io/database", "hostg"))
	w.sufferHostile(ids, cases, fmt.Sprintf("since=%d&verb=get&resource=serviceaccounts", seq), 40*time.Second)
	sec := w.waitSecret("hostg", "db", 40*time.Second, "written with the ServiceAccount's identity", func(s *stack.Secret) bool {
		return s.Data["password"] != "" && s.Metadata.Annotations["pgtoken.io/status.last-error"] == ""
	})
	if user, err := w.psql(sec.Value("DATABASE_URL")); err != nil || user != "hostg-role" {
		t.Fatalf("login as the ServiceAccount's role: %q %v", user, err)
	}
	if got := sec.Metadata.Annotations["pgtoken.io/status.identity"]; got != "sa:hostg/app-a:"+appAClient {
		t.Errorf("status.identity %q", got)
	}
	if n := len(logEntries(w.ctrl.Output(), "rotation_failed")); n < len(cases) {
		t.Errorf("%d rotation_failed lines for %d bad answers", n, len(cases))
	}
}

func TestAPIHostileManyValues(t *testing.T) {
	covers(t, "Kubernetes API", "a watch event of 4 MiB and a LIST page of 16 MiB made of millions of tiny JSON values (under the size caps)",
		"each answered once; the controller must reject or survive them with peak RSS under 200 MiB and without stalling; a Secret created after is written and logs in")
	needsFake(t, "sends raw answers on demand")
	w := newWorld(t, stack.Options{})
	w.managed("amp", "first", w.pgAnn())
	w.rotatedOK("amp", "first", 30*time.Second)
	seq := w.apiSeq()
	meta := `"metadata":{"name":"first","namespace":"amp","resourceVersion":"1"}`
	wid := w.apiFault(map[string]any{"match": map[string]any{"verb": "watch", "resource": "secrets"}, "count": 1,
		"raw_prefix": `{"type":"MODIFIED","object":{` + meta + `,"data":{"a":[`, "raw_body": "[],",
		"raw_repeat": (4<<20)/3 - 100, "raw_suffix": "[]]}}}\n"})
	if err := w.k.Fake("POST", "drop-watches", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	w.waitFired(wid, fmt.Sprintf("since=%d&verb=watch", seq), true, 20*time.Second)
	time.Sleep(time.Second)
	w.alive("a 4 MiB watch event of tiny values")
	if mb := w.peakRSSMB(); mb > peakBoundMB {
		t.Errorf("peak RSS %d MiB after a 4 MiB watch event of tiny values (bound %d MiB)", mb, peakBoundMB)
	}
	lid := w.apiFault(map[string]any{"match": map[string]any{"verb": "list", "resource": "secrets"}, "count": 1,
		"raw_prefix": `{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[`,
		"raw_body":   "[],", "raw_repeat": (16<<20)/3 - 100, "raw_suffix": "[]]}"})
	// Forget all resourceVersions: the controller's watch gets 410 and it lists again.
	if err := w.k.Fake("POST", "restart", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	w.waitFired(lid, fmt.Sprintf("since=%d&verb=list", seq), true, 30*time.Second)
	start := time.Now()
	for {
		// (plain counts: with a log flood, decoding every line would be slow)
		out := w.ctrl.Output()
		if strings.Contains(out, `"msg":"list_failed"`) || strings.Count(out, `"msg":"secrets_listed"`) >= 2 {
			break
		}
		w.alive("a 16 MiB LIST of tiny values")
		if time.Since(start) > 20*time.Second {
			t.Fatalf("the controller is still busy with a 16 MiB LIST page of tiny values after %v (%d MiB of log)",
				time.Since(start), len(out)>>20)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if mb := w.peakRSSMB(); mb > peakBoundMB {
		t.Errorf("peak RSS %d MiB after a 16 MiB LIST page of tiny values (bound %d MiB)", mb, peakBoundMB)
	}
	if n := strings.Count(w.ctrl.Output(), `"msg":"watch_bad_object"`); n > 1000 {
		t.Errorf("one bad answer made %d watch_bad_object log lines", n)
	}
	w.managed("amp", "second", w.pgAnn())
	w.rotatedOK("amp", "second", 30*time.Second)
}
