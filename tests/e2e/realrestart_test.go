package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

// The real kube-apiserver stopped and started again (etcd keeps its data, the
// URL stays): the controller's watch breaks, it reconnects without a restart
// of its own, and a Secret created after the API server is back is rotated.
func TestRealAPIServerRestart(t *testing.T) {
	covers(t, "Kubernetes API", "Real kube-apiserver restarted",
		"the real kube-apiserver is stopped for 5 s and started again on the same etcd; the same controller process reconnects and rotates a Secret created afterwards")
	if !realKube() {
		t.Skip("restarts the real kube-apiserver; the fake's restart (all resourceVersions gone) is TestWatchDropAndGone")
	}
	w := newWorld(t, stack.Options{})
	w.managed("rrs", "before", w.pgAnn())
	w.waitSecret("rrs", "before", 30*time.Second, "written", hasKeys("password"))

	stop := exec.Command(filepath.Join(w.s.Root, "tests/realkube/stop.sh"), w.s.Dir, "kube-apiserver")
	if out, err := stop.CombinedOutput(); err != nil {
		t.Fatalf("stop.sh: %v\n%s", err, out)
	}
	time.Sleep(5 * time.Second)
	if w.ctrl.Exited() {
		t.Fatalf("the controller exited while the API server was down:\n%s", tail(w.ctrl.Output(), 20))
	}
	start := exec.Command(filepath.Join(w.s.Root, "tests/realkube/start.sh"), w.s.Dir)
	start.Env = append(os.Environ(), "REALKUBE_ISSUER="+stack.Issuer, "REALKUBE_AUDIT=0")
	if out, err := start.CombinedOutput(); err != nil {
		t.Fatalf("start.sh: %v\n%s", err, out)
	}
	w.managed("rrs", "after", w.pgAnn())
	sec := w.waitSecret("rrs", "after", 60*time.Second, "written after the restart", hasKeys("DATABASE_URL"))
	if out, err := w.psql(sec.Value("DATABASE_URL")); err != nil {
		t.Fatalf("psql with the value written after the restart: %v\n%s", err, redact(out))
	}
	if out := w.ctrl.Output(); !strings.Contains(out, `"watch_failed"`) && !strings.Contains(out, `"list_failed"`) {
		t.Errorf("the controller did not log that it lost the API server")
	}
}
