package e2e

import (
	"errors"
	"fmt"
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

// A thread that cannot start stops the controller with a clear error and status 1:
// it neither runs short of a watch or a worker nor joins a thread that never was.
// A preload (tests/faults/threadfail.c) makes the K-th pthread_create of the shipped
// binary fail, as glibc does with no memory for a stack: the signal thread
// (K=1), then the threads controller_run starts (the watch, the workers).
func TestThreadStartFailure(t *testing.T) {
	covers(t, "Process", "A thread cannot start (no memory for its stack, a thread limit)",
		"the shipped binary with a preload failing its 1st to 4th pthread_create: exit status 1 within 30 s and an error naming it, never a crash, a hang or a controller short of a thread")
	if realKube() {
		t.Skip("a process test: the fake tier covers it")
	}
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "build/bin/pgtoken-rotator")
	preload := filepath.Join(root, "build/tests/threadfail.so")
	for _, f := range []string{bin, preload} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("needed (make all faults): %v", err)
		}
	}
	w := newWorld(t, stack.Options{})
	w.stopController()
	sawStartFailure := false
	for k := 1; k <= 4; k++ {
		env := append(w.s.ControllerEnv(), "LD_PRELOAD="+preload, fmt.Sprintf("PGTR_TEST_FAIL_THREAD=%d", k))
		p, err := w.s.Spawn(fmt.Sprintf("controller-threadfail-%d", k), env, bin, w.s.ControllerArgs()...)
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); !p.Exited() && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		if !p.Exited() {
			p.Stop(5 * time.Second)
			t.Fatalf("K=%d: the controller still runs 30 s after a thread failed to start; log:\n%s", k, p.Output())
		}
		out := p.Output()
		perr := p.Stop(0) // the exit error of the ended process
		var ee *exec.ExitError
		if !errors.As(perr, &ee) || ee.ExitCode() != 1 {
			t.Errorf("K=%d: want exit status 1, got %v; log:\n%s", k, perr, out)
			continue
		}
		log := out
		switch {
		case k == 1 && !strings.Contains(log, "cannot start the signal thread"):
			t.Errorf("K=1: no startup_failed naming the signal thread; log:\n%s", log)
		case strings.Contains(log, `"msg":"thread_start_failed"`):
			sawStartFailure = true
			if strings.Contains(log, `"msg":"controller_started"`) {
				t.Errorf("K=%d: controller_started logged although a thread failed; log:\n%s", k, log)
			}
		}
		w.checkNoLeak(log, fmt.Sprintf("controller log (K=%d)", k))
	}
	if !sawStartFailure {
		t.Error("no run logged thread_start_failed: the controller's own threads were never the failing one")
	}
}
