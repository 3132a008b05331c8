package e2e

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

var textLineRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARN|ERROR) \S`)

// --log-format text: every record is one line of time, level, message and
// key=value pairs, a value with spaces quoted; nothing is JSON.
func TestLogFormatText(t *testing.T) {
	w := newWorld(t, stack.Options{}, "--log-format", "text")
	w.managed("logtext", "db", w.pgAnn())
	w.managed("logtext", "bad", w.pgAnn("pgtoken.io/port", "0"))
	w.waitSecret("logtext", "db", 30*time.Second, "written", hasKeys("password"))
	rotated := regexp.MustCompile(`(?m)^\S+Z INFO rotated namespace=logtext secret=db why=new identity=wi:` +
		stack.ControllerApp + ` expires_at=\S+Z rotate_at=\S+Z$`)
	const invalid = ` WARN invalid_config namespace=logtext secret=bad detail="pgtoken.io/port: must be a ` +
		`number from 1 to 65535 (digits only); nothing was written"` + "\n"
	var out string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if out = w.ctrl.Output(); rotated.MatchString(out) && strings.Contains(out, invalid) {
			break
		}
	}
	if !rotated.MatchString(out) {
		t.Errorf("no text line for the rotation:\n%s", tail(out, 20))
	}
	if !strings.Contains(out, invalid) {
		t.Errorf("no text line with the quoted detail of invalid_config:\n%s", tail(out, 20))
	}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if !textLineRe.MatchString(line) {
			t.Errorf("not a text log line: %q", line)
			break
		}
	}
}

// A bad --log-format (or log.format) stops the controller at start with exit
// status 2 and a message naming the setting, before it talks to anything.
func TestLogFormatBadValue(t *testing.T) {
	bin := stack.EnvOr("PGTR_BIN", "")
	if bin == "" {
		root, err := stack.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(root, "build/san/bin/pgtoken-rotator")
	}
	for _, args := range [][]string{
		{"run", "--log-format", "xml", "--kubeconfig", "/nonexistent"},
		{"run", "--log-format=JSON", "--kubeconfig", "/nonexistent"},
	} {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stderr = &stderr
		err := cmd.Run()
		x, ok := err.(*exec.ExitError)
		if !ok || x.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit status 2\n%s", args, err, stderr.String())
			continue
		}
		if !strings.Contains(stderr.String(), `"msg":"invalid_configuration"`) ||
			!strings.Contains(stderr.String(), "log.format ") ||
			!strings.Contains(stderr.String(), ": must be json or text") {
			t.Errorf("%v: the error does not name log.format and its values:\n%s", args, stderr.String())
		}
	}
}
