package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

// coreFiles lists what looks like a core dump in dir.
func coreFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "core") {
			out = append(out, e.Name())
		}
	}
	return out
}

// quit sends SIGQUIT (default action: terminate with a core dump) and waits.
func quit(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("%s: want death by SIGQUIT, got %v", cmd.Path, err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGQUIT {
		t.Fatalf("%s: want death by SIGQUIT, got %v", cmd.Path, ws)
	}
}

// The process refuses core dumps while it holds tokens (PR_SET_DUMPABLE 0):
// SIGQUIT, whose default action dumps core, leaves no core file, where a
// process without that setting leaves one under the same limits.
func TestNoCoreDumpWithTokens(t *testing.T) {
	covers(t, "Security", "Core dump of a process holding tokens",
		"SIGQUIT to the shipped (non-ASan) binary after it wrote a Secret, with RLIMIT_CORE unlimited: no core file, where `sleep` under the same limits leaves one")
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "build/bin/pgtoken-rotator")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the shipped build is needed (make all): %v", err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &old); err != nil {
		t.Fatal(err)
	}
	unlimited := syscall.Rlimit{Cur: old.Max, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &unlimited); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_CORE, &old)
	if unlimited.Cur < 1<<30 {
		t.Skipf("RLIMIT_CORE hard limit is %d here: no process can dump core", old.Max)
	}

	// The control: a process that allows dumps leaves a core file here.
	control := t.TempDir()
	sleep := exec.Command("sleep", "60")
	sleep.Dir = control
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	quit(t, sleep)
	if len(coreFiles(t, control)) == 0 {
		pattern, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
		t.Skipf("this machine writes no core file even for sleep (core_pattern %q)", strings.TrimSpace(string(pattern)))
	}

	w := newWorld(t, stack.Options{})
	w.stopController()
	dir := t.TempDir()
	ctrl := exec.Command(bin, w.s.ControllerArgs()...)
	ctrl.Env = append(os.Environ(), w.s.ControllerEnv()...)
	ctrl.Dir = dir
	logf, err := os.Create(filepath.Join(w.s.Dir, "controller-plain.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctrl.Stdout, ctrl.Stderr = logf, logf
	if err := ctrl.Start(); err != nil {
		t.Fatal(err)
	}
	defer ctrl.Process.Kill()
	w.managed("core", "db", w.pgAnn())
	w.waitSecret("core", "db", 30*time.Second, "written by the shipped binary", hasKeys("password"))
	quit(t, ctrl)
	if c := coreFiles(t, dir); len(c) > 0 {
		t.Errorf("the controller left a core dump holding tokens: %v", c)
	}
	out, _ := os.ReadFile(logf.Name())
	w.checkNoLeak(string(out), "shipped controller log")
	w.shown = append(w.shown, shown{"shipped controller log", string(out)})
}
