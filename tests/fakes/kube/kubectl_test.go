package kube

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKubectl drives the real kubectl against the fake.
func TestKubectl(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed; skipping the kubectl compatibility test")
	}
	f := startFake(t)
	dir := t.TempDir()
	kc := filepath.Join(dir, "admin.kubeconfig")
	b, err := Kubeconfig(f.url, pkiDir, "admin")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(kc, b, 0o600)
	env := append(os.Environ(), "HOME="+dir, "KUBECONFIG="+kc)
	run := func(wantErr bool, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectl, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if (err != nil) != wantErr {
			t.Fatalf("kubectl %s: err=%v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	expect := func(out, want string) {
		t.Helper()
		if !strings.Contains(out, want) {
			t.Fatalf("want %q in:\n%s", want, out)
		}
	}
	expect(run(false, "create", "secret", "generic", "s1", "--from-literal=a=b", "-n", "ns1"), "secret/s1 created")
	out := run(false, "get", "secrets", "-A")
	expect(out, "NAMESPACE")
	expect(out, "ns1")
	expect(out, "s1")
	expect(out, "Opaque")
	out = run(false, "get", "secret", "s1", "-n", "ns1", "-o", "yaml")
	expect(out, "name: s1")
	expect(out, "a: Yg==")
	expect(out, "kind: Secret")
	expect(run(false, "patch", "secret", "s1", "-n", "ns1", "-p", `{"data":{"c":"ZA=="}}`), "secret/s1 patched")
	expect(run(false, "patch", "secret", "s1", "-n", "ns1", "--type=merge", "-p", `{"metadata":{"labels":{"app":"x"}}}`), "patched")
	expect(run(false, "patch", "secret", "s1", "-n", "ns1", "--type=json", "-p", `[{"op":"remove","path":"/data/c"}]`), "patched")
	expect(run(true, "patch", "secret", "s1", "-n", "ns1", "--type=json", "-p", `[{"op":"test","path":"/data/a","value":"nope"}]`),
		"the server rejected our request due to an error in our request")
	expect(run(false, "get", "secrets", "-n", "ns1", "-l", "app=x", "-o", "name"), "secret/s1")
	expect(run(true, "create", "secret", "generic", "s1", "--from-literal=a=b", "-n", "ns1"), `secrets "s1" already exists`)

	// get -w: read the initial row, then one event
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w := exec.CommandContext(ctx, kubectl, "get", "secrets", "-n", "ns1", "-w", "--output-watch-events")
	w.Env = env
	stdout, _ := w.StdoutPipe()
	w.Stderr = os.Stderr
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine := func(sub string) {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("kubectl get -w ended before %q", sub)
				}
				if strings.Contains(l, sub) {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %q from kubectl get -w", sub)
			}
		}
	}
	waitLine("s1")
	time.Sleep(200 * time.Millisecond)
	f.createSecret("ns1", "s2", nil, nil)
	waitLine("s2")
	w.Process.Kill()
	w.Wait()

	// apply a deployment, then restart it
	manifest := filepath.Join(dir, "d.yaml")
	os.WriteFile(manifest, []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ns1}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: "nginx:1.25"}]
`), 0o644)
	expect(run(false, "apply", "-f", manifest), "deployment.apps/web created")
	expect(run(false, "apply", "-f", manifest), "deployment.apps/web unchanged")
	expect(run(false, "rollout", "restart", "deployment/web", "-n", "ns1"), "restarted")
	expect(run(false, "get", "deploy", "web", "-n", "ns1", "-o", "jsonpath={.metadata.generation}"), "2")
	expect(run(false, "apply", "--server-side", "-f", manifest), "serverside-applied")

	expect(run(false, "create", "serviceaccount", "robot", "-n", "ns1"), "serviceaccount/robot created")
	if tok := strings.TrimSpace(run(false, "create", "token", "robot", "-n", "ns1")); strings.Count(tok, ".") != 2 {
		t.Fatalf("kubectl create token: %q", tok)
	}
	expect(run(false, "delete", "secret", "s1", "-n", "ns1"), `secret "s1" deleted`)
	expect(run(true, "get", "secret", "s1", "-n", "ns1"), `secrets "s1" not found`)
}
