package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

// bulkShape is a cluster as a large one is found: many labelled Secrets over a
// few namespaces, many more unlabelled ones elsewhere, some already filled by an
// earlier run of the controller, all created before the controller starts.
type bulkShape struct {
	managed, filled, unmanaged, namespaces int
	elsewhere                              int    // labelled Secrets in one more namespace, before prod-* in the list
	unmanagedNS                            string // prefix of the unlabelled Secrets' namespaces
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q is not a count", name, v)
	}
	return n
}

// bulkSecret is Secret s<i> of the shape, in prod-<i mod namespaces>.
func bulkSecret(i int, sh bulkShape) (ns, name string) {
	return fmt.Sprintf("prod-%d", i%sh.namespaces), fmt.Sprintf("s%d", i)
}

// applyList creates the objects with one `kubectl apply --server-side` of a List
// against the real API server (as a user bulk-loads a cluster); the fake has no
// apply, so each one missing is POSTed there.
func (w *world) applyList(items []map[string]any) {
	w.t.Helper()
	if !realKube() {
		err := parallelDo(len(items), 16, func(i int) error {
			md := items[i]["metadata"].(map[string]any)
			err := w.k.JSON("POST", "/api/v1/namespaces/"+md["namespace"].(string)+"/secrets",
				"application/json", items[i], nil)
			if e, ok := err.(*stack.APIError); ok && e.Status == 409 {
				return nil // there already, as apply leaves an object that holds the same
			}
			return err
		})
		if err != nil {
			w.t.Fatal(err)
		}
		return
	}
	f := filepath.Join(w.s.Dir, fmt.Sprintf("list-%d.json", time.Now().UnixNano()))
	b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if err := os.WriteFile(f, b, 0o600); err != nil {
		w.t.Fatal(err)
	}
	defer os.Remove(f)
	out, err := exec.Command(w.s.Kubectl, "--kubeconfig", w.s.AdminKubeconfig, "apply",
		"--server-side", "--field-manager", "bulk-load", "-f", f).CombinedOutput()
	if err != nil {
		w.t.Fatalf("kubectl apply --server-side of %d objects: %v\n%s", len(items), err, tail(string(out), 10))
	}
}

// parallelDo runs fn(i) for i < n on w goroutines; the first error wins.
func parallelDo(n, workers int, fn func(i int) error) error {
	next := make(chan int)
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		go func() {
			var first error
			for i := range next {
				if err := fn(i); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	var first error
	for g := 0; g < workers; g++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// unfilled lists the labelled Secrets in the namespaces that hold no password yet.
func (w *world) unfilled(namespaces []string) ([]string, int, error) {
	var missing []string
	total := 0
	for _, ns := range namespaces {
		cont := ""
		for {
			var l struct {
				Items    []stack.Secret
				Metadata struct{ Continue string }
			}
			path := "/api/v1/namespaces/" + ns + "/secrets?labelSelector=pgtoken.io%2Fmanaged%3Dtrue&limit=500"
			if cont != "" {
				path += "&continue=" + cont
			}
			if err := w.k.JSON("GET", path, "", nil, &l); err != nil {
				return nil, 0, err
			}
			for _, s := range l.Items {
				total++
				if s.Data["password"] == "" {
					missing = append(missing, ns+"/"+s.Metadata.Name)
				}
			}
			if cont = l.Metadata.Continue; cont == "" {
				break
			}
		}
	}
	sort.Strings(missing)
	return missing, total, nil
}

// Many labelled Secrets among many more unlabelled ones, some filled by an
// earlier run, all created in bulk before the controller starts: every labelled
// Secret must be filled, including the last ones the list returns.
func TestBulkLoadedClusterEverySecretFilled(t *testing.T) {
	covers(t, "Kubernetes API", "Secrets bulk-loaded before start, most of the cluster unlabelled",
		"labelled Secrets over ten namespaces among many more unlabelled ones (the list's last page holds the last labelled Secrets), "+
			"some filled by an earlier run, created with one server-side apply before the controller starts; every one is filled")
	sh := bulkShape{
		managed:     envInt(t, "PGTR_BULK_MANAGED", 1000),
		filled:      envInt(t, "PGTR_BULK_FILLED", 100),
		unmanaged:   envInt(t, "PGTR_BULK_UNMANAGED", 5000),
		namespaces:  10,
		elsewhere:   envInt(t, "PGTR_BULK_ELSEWHERE", 62),
		unmanagedNS: stack.EnvOr("PGTR_BULK_UNMANAGED_NS", "bulk-"),
	}
	w := newWorld(t, stack.Options{TokenLifetime: 3599 * time.Second}, "--workers", "4")
	ann := w.pgAnn()
	var namespaces []string
	for i := 0; i < sh.namespaces; i++ {
		ns := fmt.Sprintf("prod-%d", i)
		namespaces = append(namespaces, ns)
		if err := w.k.EnsureNamespace(ns); err != nil {
			t.Fatal(err)
		}
		if err := w.k.EnsureNamespace(fmt.Sprintf("%s%d", sh.unmanagedNS, i)); err != nil {
			t.Fatal(err)
		}
	}
	secret := func(ns, name string, labelled bool) map[string]any {
		md := map[string]any{"name": name, "namespace": ns}
		if labelled {
			md["labels"] = map[string]string{"pgtoken.io/managed": "true"}
			md["annotations"] = ann
		} else {
			md["labels"] = map[string]string{"app.kubernetes.io/name": "other"}
			md["annotations"] = map[string]string{"owner": "someone-else"}
		}
		return map[string]any{"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": md,
			"data": map[string]string{"unrelated": "a2VlcC1tZQ=="}}
	}
	// An earlier run fills s1 ... s<filled>, and the Secrets of another namespace.
	var items []map[string]any
	if sh.elsewhere > 0 {
		namespaces = append([]string{"apps"}, namespaces...)
		if err := w.k.EnsureNamespace("apps"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < sh.elsewhere; i++ {
		items = append(items, secret("apps", fmt.Sprintf("app-%d", i), true))
	}
	for i := 1; i <= sh.filled; i++ {
		ns, name := bulkSecret(i, sh)
		items = append(items, secret(ns, name, true))
	}
	w.applyList(items)
	deadline := time.Now().Add(time.Duration(60+sh.filled/20) * time.Second)
	for {
		missing, _, err := w.unfilled(namespaces)
		if err != nil {
			t.Fatal(err)
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the earlier run left %d Secrets unfilled, e.g. %v", len(missing), missing[:min(5, len(missing))])
		}
		time.Sleep(time.Second)
	}
	w.stopController()

	// All of them, in bulk, with the controller down (applying the filled ones
	// again changes nothing of theirs).
	items = items[:0]
	for i := 1; i <= sh.managed; i++ {
		ns, name := bulkSecret(i, sh)
		items = append(items, secret(ns, name, true))
	}
	w.applyList(items)
	items = items[:0]
	for i := 0; i < sh.unmanaged; i++ {
		items = append(items, secret(fmt.Sprintf("%s%d", sh.unmanagedNS, i%sh.namespaces), fmt.Sprintf("o%d", i), false))
	}
	w.applyList(items)

	start := time.Now()
	w.startController("controller-bulk", "--workers", "4")
	deadline = time.Now().Add(time.Duration(90+sh.managed/25) * time.Second)
	var missing []string
	var total int
	for {
		var err error
		if missing, total, err = w.unfilled(namespaces); err != nil {
			t.Fatal(err)
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if total != sh.managed+sh.elsewhere {
		t.Fatalf("the API server holds %d labelled Secrets, want %d", total, sh.managed+sh.elsewhere)
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d labelled Secrets still unfilled %v after the controller started, e.g. %v\ncontroller log:\n%s",
			len(missing), sh.managed, time.Since(start).Round(time.Second), missing[:min(10, len(missing))],
			tail(w.ctrl.Output(), 20))
	}
	t.Logf("%d labelled Secrets (%d filled before) among %d unlabelled: all filled within %v", sh.managed+sh.elsewhere,
		sh.filled, sh.unmanaged, time.Since(start).Round(time.Second))
	// Filled is not enough: none may have been lost and found again by the resync.
	text, err := scrape(w.metrics + "/metrics")
	if err != nil {
		t.Fatalf("scraping the controller: %v", err)
	}
	if v, ok := metricValue(text, "pgtoken_rotator_resync_requeued_total", ""); !ok || v != 0 {
		t.Errorf("resync_requeued_total = %v (present %v): the controller lost Secrets and its resync found them again\n%s",
			v, ok, grepLines(w.ctrl.Output(), `"secret_requeued"`, 10))
	}
	if v, ok := metricValue(text, "pgtoken_rotator_managed_secrets", ""); !ok || int(v) != sh.managed+sh.elsewhere {
		t.Errorf("managed_secrets = %v, want %d: the list left some out", v, sh.managed+sh.elsewhere)
	}
	if out := w.ctrl.Output(); strings.Contains(out, `"list_failed"`) || strings.Contains(out, `"watch_bad_object"`) {
		t.Logf("the controller logged a failed list or a bad object:\n%s", grepLines(out, `"list_failed"|"watch_bad_object"`, 10))
	}
}

// grepLines returns up to n lines of text matching any of the |-separated substrings.
func grepLines(text, subs string, n int) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, s := range strings.Split(subs, "|") {
			if strings.Contains(l, s) {
				out = append(out, l)
				break
			}
		}
		if len(out) == n {
			break
		}
	}
	return strings.Join(out, "\n")
}
