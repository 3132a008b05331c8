package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

// The token endpoint fails (500, then 429 with Retry-After, then garbage):
// the Secret keeps its working value; when it recovers, rotation resumes.
func TestTokenEndpointOutage(t *testing.T) {
	covers(t, "Entra ID", "Token endpoint: 500, 429 with Retry-After, garbage body", "faults on the fake Entra; the Secret keeps its working value, Retry-After is honoured, rotation resumes when the endpoint recovers")
	w := newWorld(t, stack.Options{TokenLifetime: 60 * time.Second})
	w.managed("out", "db", w.pgAnn())
	first := w.waitSecret("out", "db", 30*time.Second, "first write", hasKeys("password"))
	w.entra("POST", "faults", []map[string]any{
		{"endpoint": "token", "status": 500, "count": 2},
		{"endpoint": "token", "status": 429, "retry_after_s": 2, "count": 1},
		{"endpoint": "token", "malformed": true, "count": 2},
	})
	sec := w.waitSecret("out", "db", 40*time.Second, "TokenFailed status", func(s *stack.Secret) bool {
		return strings.HasPrefix(s.Metadata.Annotations["pgtoken.io/status.last-error"], "TokenFailed")
	})
	if sec.Data["password"] != first.Data["password"] {
		t.Fatalf("the password changed while the token endpoint was failing")
	}
	if _, err := w.psql(sec.Value("DATABASE_URL")); err != nil {
		t.Fatalf("the kept value no longer logs in: %v", err)
	}
	// The faults run out: rotation resumes without a restart.
	sec = w.waitSecret("out", "db", 40*time.Second, "rotation after recovery", func(s *stack.Secret) bool {
		return s.Data["password"] != first.Data["password"] &&
			s.Metadata.Annotations["pgtoken.io/status.last-error"] == ""
	})
	if _, err := w.psql(sec.Value("DATABASE_URL")); err != nil {
		t.Fatal(err)
	}
	if hasEvent(w.events("out", "db"), "TokenFailed") == nil {
		t.Errorf("no TokenFailed Event")
	}
	if !strings.Contains(w.ctrl.Output(), `"retry_in_ms":`) {
		t.Errorf("no retry logged")
	}
}

// The API server drops every watch and then forgets all resourceVersions
// (410 on resume): the controller relists and misses no Secret.
func TestWatchDropAndGone(t *testing.T) {
	covers(t, "Kubernetes API", "Watch dropped mid-stream; server restarted (all resourceVersions gone: 410)", "the fake API server drops every watch, then compacts its history; Secrets changed meanwhile are all reconciled after the relist")
	if realKube() {
		t.Skip("needs the fake API server to drop watches and forget resourceVersions on demand")
	}
	w := newWorld(t, stack.Options{})
	w.managed("wd", "one", w.pgAnn())
	w.waitSecret("wd", "one", 30*time.Second, "first Secret", hasKeys("password"))
	if err := w.k.Fake("POST", "drop-watches", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	w.managed("wd", "two", w.pgAnn())
	w.waitSecret("wd", "two", 30*time.Second, "Secret created after a dropped watch", hasKeys("password"))
	if err := w.k.Fake("POST", "restart", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	w.managed("wd", "three", w.pgAnn())
	w.waitSecret("wd", "three", 30*time.Second, "Secret created after a restart (410)", hasKeys("password"))
	if !strings.Contains(w.ctrl.Output(), "watch_expired_relisting") {
		t.Errorf("the controller did not relist after 410:\n%s", tail(w.ctrl.Output(), 20))
	}
}

// Someone else writes the Secret between our read and our write (409): no
// update is lost, theirs or ours.
func TestConflictNoLostUpdate(t *testing.T) {
	covers(t, "Kubernetes API", "Concurrent writer to the same Secret (409 conflict)", "another client edits unrelated keys between read and write; both its keys and the new credential survive")
	if realKube() {
		t.Skip("needs the fake API server to answer 409 on demand")
	}
	w := newWorld(t, stack.Options{})
	if err := w.k.Fake("POST", "faults", map[string]any{
		"match":  map[string]any{"verb": "patch", "resource": "secrets", "namespace": "cf"},
		"status": 409, "count": 1}); err != nil {
		t.Fatal(err)
	}
	w.managed("cf", "db", w.pgAnn())
	sec := w.waitSecret("cf", "db", 30*time.Second, "written after a conflict", hasKeys("DATABASE_URL"))
	if !strings.Contains(w.ctrl.Output(), "write_conflict_rereading") {
		t.Errorf("the 409 was not seen")
	}
	// A concurrent writer edits an unrelated key while we rotate: both survive.
	if err := w.k.MergePatchSecret("cf", "db", map[string]any{"data": map[string]string{
		"theirs": "dGhlaXJz"}, "metadata": map[string]any{"annotations": map[string]string{
		"pgtoken.io/database": "postgres"}}}); err != nil {
		t.Fatal(err)
	}
	sec = w.waitSecret("cf", "db", 30*time.Second, "rewritten", func(s *stack.Secret) bool {
		return strings.Contains(s.Value("DATABASE_URL"), "/postgres?")
	})
	if sec.Value("theirs") != "theirs" || sec.Value("unrelated") != "keep-me" {
		t.Errorf("another writer's keys were lost")
	}
}

// A deleted Secret, or one whose label is removed, is forgotten.
func TestDeleteAndUnlabel(t *testing.T) {
	covers(t, "Kubernetes API", "Secret deleted or label removed during work", "the controller logs that it forgot each one and never writes them again")
	w := newWorld(t, stack.Options{})
	w.managed("del", "a", w.pgAnn())
	w.managed("del", "b", w.pgAnn())
	w.waitSecret("del", "a", 30*time.Second, "a written", hasKeys("password"))
	w.waitSecret("del", "b", 30*time.Second, "b written", hasKeys("password"))
	if err := w.k.DeleteSecret("del", "a"); err != nil {
		t.Fatal(err)
	}
	if err := w.k.MergePatchSecret("del", "b", map[string]any{"metadata": map[string]any{
		"labels": map[string]any{"pgtoken.io/managed": nil}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		out := w.ctrl.Output()
		if strings.Contains(out, `"secret_forgotten","key":"del/a"`) &&
			strings.Contains(out, `"secret_forgotten","key":"del/b"`) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("not forgotten:\n%s", tail(w.ctrl.Output(), 20))
}

// Many Secrets at once: all written; the token is requested once, not per Secret.
func TestManySecretsShareOneToken(t *testing.T) {
	w := newWorld(t, stack.Options{})
	const n = 40
	for i := 0; i < n; i++ {
		w.managed(fmt.Sprintf("many-%d", i%4), fmt.Sprintf("db-%d", i), w.pgAnn())
	}
	for i := 0; i < n; i++ {
		w.waitSecret(fmt.Sprintf("many-%d", i%4), fmt.Sprintf("db-%d", i), 60*time.Second, "written", hasKeys("password"))
	}
	if c := strings.Count(w.ctrl.Output(), `"msg":"token_minted"`); c != 1 {
		t.Errorf("%d token requests for %d Secrets; want 1", c, n)
	}
	if c := strings.Count(w.ctrl.Output(), `"result":"ok"`); c != 1 {
		t.Errorf("%d login checks for one (host, port, database, user, token); want 1", c)
	}
}

// A 401 (say, a rotated ServiceAccount token) drops the credential and the
// request is sent again with a fresh one; nothing fails.
func TestUnauthorizedRefreshesCredential(t *testing.T) {
	covers(t, "Kubernetes API", "401 (rotated ServiceAccount token)", "the fake API server answers 401 once; the controller re-reads its credential and the request succeeds")
	if realKube() {
		t.Skip("needs the fake API server to answer 401 on demand")
	}
	w := newWorld(t, stack.Options{})
	if err := w.k.Fake("POST", "faults", map[string]any{
		"match":  map[string]any{"verb": "patch", "resource": "secrets", "namespace": "auth"},
		"status": 401, "count": 1}); err != nil {
		t.Fatal(err)
	}
	w.managed("auth", "db", w.pgAnn())
	sec := w.waitSecret("auth", "db", 30*time.Second, "written after a 401", hasKeys("DATABASE_URL"))
	if !strings.Contains(w.ctrl.Output(), "kubernetes_unauthorized") {
		t.Errorf("the 401 was not seen")
	}
	if strings.Contains(w.ctrl.Output(), `"reason":"WriteFailed"`) {
		t.Errorf("a 401 answered by a fresh credential counted as a failed write")
	}
	if _, err := w.psql(sec.Value("DATABASE_URL")); err != nil {
		t.Fatal(err)
	}
}
