package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"pgtoken-rotator/tests/stack"
)

// cli runs the binary's one-off commands with the stack's identity environment.
func (w *world) cli(args ...string) (stdout, stderr string, code int) {
	w.t.Helper()
	cmd := exec.Command(w.s.Bin, args...)
	cmd.Env = append(os.Environ(), w.s.ControllerEnv()...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if x, ok := err.(*exec.ExitError); ok {
		code = x.ExitCode()
	} else if err != nil {
		w.t.Fatal(err)
	}
	w.checkNoLeak(e.String(), "stderr of "+args[0])
	return o.String(), e.String(), code
}

func TestCLITokenAndCheck(t *testing.T) {
	w := newWorld(t, stack.Options{})
	ca := w.s.PKI + "/ca.crt"
	idFlags := []string{"--identity-ca-file", ca}
	conn := []string{"--host", "localhost", "--port", fmt.Sprint(w.s.PGPort), "--user", stack.ControllerRole,
		"--database", "app"}

	out, _, code := w.cli(append([]string{"token"}, idFlags...)...)
	tok := strings.TrimSpace(out)
	if code != 0 || !jwtRe.MatchString(tok) {
		t.Fatalf("token: exit %d, no JWT on stdout", code)
	}
	w.seen[tok] = true
	cmd := exec.Command("psql", "-Atqc", "select current_user")
	cmd.Env = append(os.Environ(), "PGHOST=localhost", fmt.Sprintf("PGPORT=%d", w.s.PGPort),
		"PGUSER="+stack.ControllerRole, "PGDATABASE=app", "PGPASSWORD="+tok, "PGSSLMODE=verify-full",
		"PGSSLROOTCERT="+ca)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the printed token does not log in: %v %s", err, redact(string(b)))
	}

	out, _, code = w.cli(append(append([]string{"token", "--key", "DATABASE_URL"}, conn...), idFlags...)...)
	if code != 0 {
		t.Fatalf("token --key DATABASE_URL: exit %d", code)
	}
	if user, err := w.psql(strings.TrimSpace(out)); err != nil || user != stack.ControllerRole {
		t.Fatalf("rendered DATABASE_URL: %q %v", user, err)
	}
	out, _, code = w.cli(append(append([]string{"token", "--env"}, conn...), idFlags...)...)
	if code != 0 || !strings.Contains(out, "\nDATABASE_URL=postgresql://") && !strings.HasPrefix(out, "DATABASE_URL=") {
		t.Errorf("token --env: exit %d, no DATABASE_URL line", code)
	}

	check := func(want int, extra ...string) string {
		t.Helper()
		args := append(append(append([]string{"check"}, conn...), idFlags...), extra...)
		out, errOut, code := w.cli(args...)
		w.checkNoLeak(out, "stdout of check")
		if code != want {
			t.Errorf("check %v: exit %d, want %d\n%s%s", extra, code, want, out, errOut)
		}
		return out
	}
	out = check(0, "--db-ca-file", ca)
	if !strings.Contains(out, "wi:"+stack.ControllerApp) || !strings.Contains(out, "login:     ok") {
		t.Errorf("check output lacks the identity or the result:\n%s", out)
	}
	out = check(0, "--db-ca-file", ca, "--json")
	if !strings.Contains(out, `"result":"ok"`) {
		t.Errorf("check --json: %s", out)
	}
	check(3, "--db-ca-file", ca, "--user", "no-such-role")
	check(4, "--db-ca-file", ca, "--port", "1")
	check(5, "--db-ca-file", w.s.PKI+"/wrong-ca.crt")
	check(2, "--db-ca-file", ca, "--port", "0")
	w.entra("POST", "faults", map[string]any{"endpoint": "token", "status": 400, "count": 1})
	check(7, "--db-ca-file", ca)
}
