package e2e

import (
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

func hasKeys(keys ...string) func(*stack.Secret) bool {
	return func(s *stack.Secret) bool {
		for _, k := range keys {
			if s.Data[k] == "" {
				return false
			}
		}
		return true
	}
}

// A labelled Secret gets password and DATABASE_URL within seconds, and psql
// logs in to the token-validating PostgreSQL with that DATABASE_URL.
func TestRotateAndLogin(t *testing.T) {
	w := newWorld(t, stack.Options{})
	w.managed("team-a", "db", w.pgAnn())
	sec := w.waitSecret("team-a", "db", 30*time.Second, "password and DATABASE_URL written",
		hasKeys("password", "DATABASE_URL"))
	url := sec.Value("DATABASE_URL")
	if !strings.HasPrefix(url, "postgresql://"+stack.ControllerRole+":") {
		t.Errorf("DATABASE_URL has the wrong shape (user part)")
	}
	if user, err := w.psql(url); err != nil || user != stack.ControllerRole {
		t.Fatalf("login with DATABASE_URL: user %q, %v", user, err)
	}
	if sec.Value("unrelated") != "keep-me" {
		t.Errorf("a key the controller does not own was changed")
	}
	for _, a := range []string{"pgtoken.io/status.expires-at", "pgtoken.io/status.rotated-at",
		"pgtoken.io/status.rotate-at", "pgtoken.io/status.spec-hash"} {
		if sec.Metadata.Annotations[a] == "" {
			t.Errorf("status annotation %s missing", a)
		}
	}
	if hasEvent(w.events("team-a", "db"), "Rotated") == nil {
		t.Errorf("no Rotated Event")
	}
	w.stopController()
	for _, e := range w.events("team-a", "db") {
		w.checkNoLeak(e.Message, "Event "+e.Reason)
	}
}

// A role with '@' and a space survives percent-encoding in DATABASE_URL.
func TestRoleNeedingEncoding(t *testing.T) {
	covers(t, "Bad input: annotations", "Role name with @ and a space", "written percent-encoded in DATABASE_URL; psql logs in with it")
	w := newWorld(t, stack.Options{})
	const role = "db team@contoso.com"
	if err := w.s.AddRole(role, stack.ControllerOID, ""); err != nil {
		t.Fatal(err)
	}
	w.managed("team-b", "db", w.pgAnn("pgtoken.io/user", role, "pgtoken.io/database", "postgres"))
	sec := w.waitSecret("team-b", "db", 30*time.Second, "values written", hasKeys("DATABASE_URL"))
	if !strings.Contains(sec.Value("DATABASE_URL"), "db%20team%40contoso.com:") {
		t.Errorf("role not percent-encoded in DATABASE_URL")
	}
	if user, err := w.psql(sec.Value("DATABASE_URL")); err != nil || user != role {
		t.Fatalf("login: user %q, %v", user, err)
	}
}

// With 20 s tokens the Secret is rotated again and again; each value logs in
// and none is left in the Secret past its expiry.
func TestShortLivedTokensRotate(t *testing.T) {
	w := newWorld(t, stack.Options{TokenLifetime: 20 * time.Second})
	w.managed("short", "db", w.pgAnn())
	seen := map[string]bool{}
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) && len(seen) < 3 {
		sec, err := w.k.GetSecret("short", "db")
		if err == nil && sec.Data["password"] != "" {
			w.remember(sec)
			exp, err := time.Parse(time.RFC3339, sec.Metadata.Annotations["pgtoken.io/status.expires-at"])
			if err != nil {
				t.Fatalf("expires-at: %v", err)
			}
			if time.Now().After(exp) {
				t.Fatalf("the Secret holds a token that expired at %v", exp)
			}
			p := sec.Value("password")
			if !seen[p] {
				seen[p] = true
				if _, err := w.psql(sec.Value("DATABASE_URL")); err != nil {
					t.Fatalf("rotation %d does not log in: %v", len(seen), err)
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(seen) < 3 {
		t.Fatalf("saw %d distinct tokens in 45 s with a 20 s lifetime; want >= 3", len(seen))
	}
}

// A role that does not exist: nothing written, LoginFailed Event, status says so,
// retries back off; a working value already in the Secret is kept.
func TestLoginFailureKeepsOldValue(t *testing.T) {
	covers(t, "PostgreSQL", "New token cannot log in (role does not exist)", "annotations point at a missing role; nothing is written, LoginFailed Event and status, retries back off, the working value stays")
	w := newWorld(t, stack.Options{})
	w.managed("bad", "db", w.pgAnn())
	good := w.waitSecret("bad", "db", 30*time.Second, "first write", hasKeys("DATABASE_URL"))
	// Point it at a role that does not exist: the new token cannot log in as it.
	if err := w.k.MergePatchSecret("bad", "db", map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{"pgtoken.io/user": "no-such-role"}}}); err != nil {
		t.Fatal(err)
	}
	sec := w.waitSecret("bad", "db", 30*time.Second, "last-error set", func(s *stack.Secret) bool {
		return strings.HasPrefix(s.Metadata.Annotations["pgtoken.io/status.last-error"], "LoginFailed")
	})
	if sec.Data["password"] != good.Data["password"] || sec.Data["DATABASE_URL"] != good.Data["DATABASE_URL"] {
		t.Fatalf("a token that failed its login check replaced the working value")
	}
	if _, err := w.psql(sec.Value("DATABASE_URL")); err != nil {
		t.Fatalf("the kept value no longer logs in: %v", err)
	}
	if sec.Value("unrelated") != "keep-me" {
		t.Errorf("unrelated key changed")
	}
	if hasEvent(w.events("bad", "db"), "LoginFailed") == nil {
		t.Errorf("no LoginFailed Event")
	}
	// Retries back off: the delays between attempts grow.
	time.Sleep(8 * time.Second)
	delays := retryDelays(w.ctrl.Output(), "LoginFailed")
	if len(delays) < 3 {
		t.Fatalf("want at least 3 retries in 8 s, got %v", delays)
	}
	for i := 1; i < len(delays) && i < 4; i++ {
		if delays[i] < delays[i-1] {
			t.Errorf("retry delays do not grow: %v", delays)
		}
	}
	// Fix the annotation: the next value reflects it at once.
	if err := w.k.MergePatchSecret("bad", "db", map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{"pgtoken.io/user": stack.ControllerRole}}}); err != nil {
		t.Fatal(err)
	}
	sec = w.waitSecret("bad", "db", 30*time.Second, "cleared after the fix", func(s *stack.Secret) bool {
		return s.Metadata.Annotations["pgtoken.io/status.last-error"] == ""
	})
	if _, err := w.psql(sec.Value("DATABASE_URL")); err != nil {
		t.Fatal(err)
	}
}

// Bad annotations: InvalidConfig Event and status, nothing written, other Secrets unaffected.
func TestInvalidConfig(t *testing.T) {
	covers(t, "Bad input: annotations", "Port out of range, unknown template placeholder", "InvalidConfig Event and status, nothing written; a good Secret alongside is rotated")
	w := newWorld(t, stack.Options{})
	w.managed("cfg", "bad-port", w.pgAnn("pgtoken.io/port", "99999"))
	w.managed("cfg", "unknown-placeholder", w.pgAnn("pgtoken.io/template.URL", "postgresql://{usr}@{host}"))
	w.managed("cfg", "good", w.pgAnn())
	for _, name := range []string{"bad-port", "unknown-placeholder"} {
		sec := w.waitSecret("cfg", name, 30*time.Second, "InvalidConfig status", func(s *stack.Secret) bool {
			return strings.HasPrefix(s.Metadata.Annotations["pgtoken.io/status.last-error"], "InvalidConfig")
		})
		if len(sec.Data) != 1 {
			t.Errorf("%s: data written despite invalid config: %d keys", name, len(sec.Data))
		}
		if hasEvent(w.events("cfg", name), "InvalidConfig") == nil {
			t.Errorf("%s: no InvalidConfig Event", name)
		}
	}
	w.waitSecret("cfg", "good", 30*time.Second, "good Secret written", hasKeys("DATABASE_URL"))
}

// Annotations changed (another database): the next value reflects them at once.
func TestAnnotationChangeRerenders(t *testing.T) {
	w := newWorld(t, stack.Options{})
	w.managed("chg", "db", w.pgAnn())
	w.waitSecret("chg", "db", 30*time.Second, "first write", hasKeys("DATABASE_URL"))
	if err := w.k.MergePatchSecret("chg", "db", map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{"pgtoken.io/database": "postgres"}}}); err != nil {
		t.Fatal(err)
	}
	sec := w.waitSecret("chg", "db", 20*time.Second, "DATABASE_URL names the new database",
		func(s *stack.Secret) bool { return strings.Contains(s.Value("DATABASE_URL"), "/postgres?") })
	if _, err := w.psql(sec.Value("DATABASE_URL")); err != nil {
		t.Fatal(err)
	}
}

// Restarting the controller mints no new token for Secrets whose tokens are fresh.
func TestRestartDoesNotRemint(t *testing.T) {
	w := newWorld(t, stack.Options{})
	w.managed("rs", "db", w.pgAnn())
	first := w.waitSecret("rs", "db", 30*time.Second, "first write", hasKeys("password"))
	w.stopController()
	w.startController("controller-2")
	time.Sleep(4 * time.Second)
	if !strings.Contains(w.ctrl.Output(), `"msg":"secrets_listed"`) {
		t.Fatalf("restarted controller did not list Secrets:\n%s", tail(w.ctrl.Output(), 20))
	}
	if strings.Contains(w.ctrl.Output(), `"msg":"token_minted"`) {
		t.Errorf("restarted controller minted a token for a fresh Secret")
	}
	sec, err := w.k.GetSecret("rs", "db")
	if err != nil {
		t.Fatal(err)
	}
	if sec.Data["password"] != first.Data["password"] {
		t.Errorf("password changed after restart")
	}
}
