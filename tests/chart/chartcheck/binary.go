package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

func execOut(prog string, args ...string) (string, error) {
	cmd := exec.Command(prog, args...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// A kubeconfig that loads but is never dialled: the controller stops at the
// workload identity, before any connection.
const dummyKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`

// lockedBuf is an output buffer the poller may read while the process writes.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runController runs the binary with args in a clean environment (no AZURE_*
// variables). A run that logs controller_configured (or is still going after
// 5 s) got past its configuration: it is stopped with SIGTERM and reported
// with running=true.
func (c *checker) runController(dir string, args ...string) (code int, out string, running bool, err error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = dir
	// POD_NAMESPACE as the Deployment's downward API sets it (leader election needs it).
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "KUBECONFIG=" + filepath.Join(dir, "kubeconfig"),
		"POD_NAMESPACE=pgtoken-system"}
	var b lockedBuf
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		return -1, "", false, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-time.After(50 * time.Millisecond):
			if strings.Contains(b.String(), "controller_configured") || time.Now().After(deadline) {
				running = true
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case err = <-done:
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Kill()
					err = <-done
				}
				break wait
			}
		}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), b.String(), running, nil
	}
	return 0, b.String(), running, err
}

// wantAccepted checks that a run got past the configuration: it either
// stopped for want of a workload identity (exit 2, startup_failed), or it was
// still running (it configured itself and went on to the API server).
func wantAccepted(code int, out string, running bool) error {
	if strings.Contains(out, "invalid_configuration") || strings.Contains(out, "unknown setting") ||
		strings.Contains(out, "unknown flag") {
		return fmt.Errorf("configuration refused (exit %d): %s", code, firstLine(out))
	}
	if running {
		if !strings.Contains(out, "controller_configured") {
			return fmt.Errorf("running but never logged controller_configured: %s", firstLine(out))
		}
		return nil
	}
	if code != 2 || !strings.Contains(out, "startup_failed") ||
		!(strings.Contains(out, "workload identity") || strings.Contains(out, "azure.workload.identity") ||
			strings.Contains(out, "AZURE_CLIENT_ID")) {
		return fmt.Errorf("want exit 2 with startup_failed naming the workload identity, got exit %d: %s",
			code, firstLine(out))
	}
	return nil
}

func (c *checker) binaryChecks() {
	dir, err := os.MkdirTemp("", "chartcheck-")
	if err != nil {
		c.run("binary: temporary folder", func() error { return err })
		return
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), []byte(dummyKubeconfig), 0o600); err != nil {
		c.run("binary: kubeconfig", func() error { return err })
		return
	}
	help, _ := execOut(c.bin, "run", "--help")

	for _, tc := range []struct {
		label string
		args  []string
	}{
		{"default values", nil},
		{"every option", []string{"-f", c.valuesAll()}},
		{"watchNamespaces and a float from --set", []string{"--set", "watchNamespaces={a,b}",
			"--set", "config.rotation.refreshRatio=0.3"}},
	} {
		tc := tc
		c.run("binary: accepts the rendered config.yaml and the Deployment's args ("+tc.label+")",
			func() error {
				objs, _, err := c.render(rel, relNS, tc.args...)
				if err != nil {
					return err
				}
				text, _, err := configOf(objs)
				if err != nil {
					return err
				}
				cfg := filepath.Join(dir, "config.yaml")
				if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
					return err
				}
				code, out, running, err := c.runController(dir, "run", "--config", cfg)
				if err != nil {
					return err
				}
				if err := wantAccepted(code, out, running); err != nil {
					return err
				}
				// The Deployment's own args, with the config where the pod has it.
				_, ctr, err := controller(objs)
				if err != nil {
					return err
				}
				var args []string
				for _, a := range strList(get(ctr, "args")) {
					if a == cfgPath {
						a = cfg
					}
					if a == "--leader-elect" && !strings.Contains(help, "--leader-elect") {
						continue // the flag arrives with the operability work
					}
					args = append(args, a)
				}
				code, out, running, err = c.runController(dir, args...)
				if err != nil {
					return err
				}
				if err := wantAccepted(code, out, running); err != nil {
					return fmt.Errorf("with the Deployment's args %v: %v", args, err)
				}
				return nil
			})
	}
	c.run("binary: a config with an unknown key is refused (so the checks above can fail)", func() error {
		cfg := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(cfg, []byte("workers: 4\nworkerz: 4\n"), 0o600); err != nil {
			return err
		}
		code, out, _, err := c.runController(dir, "run", "--config", cfg)
		if err != nil {
			return err
		}
		if code != 2 || !strings.Contains(out, "invalid_configuration") {
			return fmt.Errorf("exit %d: %s", code, firstLine(out))
		}
		return nil
	})
	c.run("binary: --leader-elect is rendered only with leader election on", func() error {
		if strings.Contains(help, "--leader-elect") {
			return nil
		}
		// Not supported yet: it must not appear with default values.
		objs, _, err := c.render(rel, relNS)
		if err != nil {
			return err
		}
		_, ctr, _ := controller(objs)
		if contains(strList(get(ctr, "args")), "--leader-elect") {
			return fmt.Errorf("the default Deployment passes --leader-elect, which this controller lacks")
		}
		return nil
	})
}
