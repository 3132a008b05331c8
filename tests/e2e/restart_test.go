package e2e

import (
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

func (w *world) createDeployment(ns, name string) {
	w.t.Helper()
	labels := map[string]string{"app": name}
	err := w.k.JSON("POST", "/apis/apps/v1/namespaces/"+ns+"/deployments", "application/json", map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"replicas": 1,
			"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{
				"metadata": map[string]any{"labels": labels},
				"spec": map[string]any{"containers": []any{map[string]any{
					"name": "app", "image": "example.invalid/app:1",
					"envFrom": []any{map[string]any{"secretRef": map[string]any{"name": "db"}}}}}},
			},
		},
	}, nil)
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) restartedAt(ns, name string) string {
	w.t.Helper()
	var d struct {
		Spec struct {
			Template struct {
				Metadata struct{ Annotations map[string]string }
			}
		}
	}
	if err := w.k.JSON("GET", "/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, "", nil, &d); err != nil {
		w.t.Fatal(err)
	}
	return d.Spec.Template.Metadata.Annotations["kubectl.kubernetes.io/restartedAt"]
}

// grantRestart gives the controller's ServiceAccount what the restart feature
// needs (the chart adds it when restarts are enabled): patch on workloads.
func (w *world) grantRestart() {
	w.t.Helper()
	w.grant("pgtoken-rotator-restart", "", rule("apps", []string{"deployments", "statefulsets"}, "patch"))
}

// After each write, the listed Deployment gets the rollout-restart patch; a
// reconcile that writes nothing restarts nothing; a missing workload is an Event.
func TestRestartAfterWrite(t *testing.T) {
	w := newWorld(t, stack.Options{})
	w.grantRestart()
	if err := w.k.EnsureNamespace("rst"); err != nil {
		t.Fatal(err)
	}
	w.createDeployment("rst", "web")
	w.managed("rst", "db", w.pgAnn("pgtoken.io/restart", "deployment/web,deployment/missing"))
	w.waitSecret("rst", "db", 30*time.Second, "written", hasKeys("DATABASE_URL"))
	var first string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && first == "" {
		first = w.restartedAt("rst", "web")
		time.Sleep(200 * time.Millisecond)
	}
	if first == "" {
		t.Fatalf("deployment/web was not restarted after the write:\n%s", tail(w.ctrl.Output(), 20))
	}
	if hasEvent(w.events("rst", "db"), "RestartFailed") == nil {
		t.Errorf("no RestartFailed Event for deployment/missing")
	}
	// A Normal Restarted Event names the workload rolled (kind/name), and only that one.
	restarted := func() (n int) {
		for _, e := range w.events("rst", "db") {
			if e.Reason != "Restarted" {
				continue
			}
			if e.Type != "Normal" || e.Message != "restarted deployment/web after writing the Secret" {
				t.Errorf("Restarted Event: %s %q", e.Type, e.Message)
			}
			n += e.Count
		}
		return n
	}
	var events int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && events == 0; {
		if events = restarted(); events == 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if events != 1 {
		t.Errorf("%d Restarted Events for one rolled workload; want 1", events)
	}
	// A change that does not alter the values: reconciled, nothing written, no restart.
	if err := w.k.MergePatchSecret("rst", "db", map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{"team": "payments"}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if got := w.restartedAt("rst", "web"); got != first {
		t.Errorf("restarted again without a write: %q then %q", first, got)
	}
	if n := strings.Count(w.ctrl.Output(), `"msg":"workload_restarted"`); n != 1 {
		t.Errorf("%d restarts for one write; want 1", n)
	}
	if n := restarted(); n != 1 {
		t.Errorf("%d Restarted Events after a change that wrote nothing; want 1", n)
	}
}
