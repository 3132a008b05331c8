package e2e

import (
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

// forceCounts is what a forced rotation must move: token requests the fake
// Entra answered, logins the controller made (cached results excluded), and
// the controller's writes of this Secret.
type forceCounts struct {
	tokens, logins, writes int
}

func (w *world) forceCounts(ns, name string) forceCounts {
	w.t.Helper()
	var st struct {
		Endpoints map[string]map[string]int `json:"endpoints"`
	}
	w.entraJSON("GET", "stats", nil, &st)
	c := forceCounts{tokens: st.Endpoints["token"]["total"]}
	c.logins = int(mustMetric(w.t, w.scrape(w.metrics), "pgtoken_rotator_login_checks_total", `result="ok"`))
	for _, e := range logEntries(w.ctrl.Output(), "rotated") {
		if e["namespace"] == ns && e["secret"] == name {
			c.writes++
		}
	}
	return c
}

func (w *world) annotate(ns, name string, kv ...string) {
	w.t.Helper()
	ann := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		ann[kv[i]] = kv[i+1]
	}
	if err := w.k.MergePatchSecret(ns, name, map[string]any{"metadata": map[string]any{"annotations": ann}}); err != nil {
		w.t.Fatal(err)
	}
}

// pgtoken.io/force-rotate: a value not handled yet gets a token minted for it
// (not the shared one: one more token request), proven by a login of its own,
// written once with the value recorded in pgtoken.io/status.force-rotate; the
// same value again does nothing; another value rotates again. The forced token
// then serves other Secrets of the identity.
func TestForceRotate(t *testing.T) {
	w := newWorld(t, stack.Options{})
	const ns, force = "force", "pgtoken.io/status.force-rotate"
	w.managed(ns, "db", w.pgAnn())
	first := w.waitSecret(ns, "db", 30*time.Second, "first write", hasKeys("password", "DATABASE_URL"))
	w.waitLog("rotated", 10*time.Second, `"secret":"db"`)
	before := w.forceCounts(ns, "db")
	if before.tokens < 1 || before.logins < 1 || before.writes != 1 {
		t.Fatalf("before forcing: %+v; want a token request, a login and one write", before)
	}

	rotate := func(value string, prev *stack.Secret, was forceCounts) (*stack.Secret, forceCounts) {
		t.Helper()
		w.annotate(ns, "db", "pgtoken.io/force-rotate", value)
		sec := w.waitSecret(ns, "db", 30*time.Second, "forced rotation "+value, func(s *stack.Secret) bool {
			return s.Metadata.Annotations[force] == value
		})
		// The value is recorded by the write of the new values, not before or after it.
		if sec.Data["password"] == prev.Data["password"] || sec.Data["DATABASE_URL"] == prev.Data["DATABASE_URL"] {
			t.Errorf("force-rotate %s: status recorded but the values are the old ones", value)
		}
		if sec.Metadata.Annotations["pgtoken.io/status.last-error"] != "" {
			t.Errorf("force-rotate %s: last-error %q", value, sec.Metadata.Annotations["pgtoken.io/status.last-error"])
		}
		if user, err := w.psql(sec.Value("DATABASE_URL")); err != nil || user != stack.ControllerRole {
			t.Fatalf("force-rotate %s: the new DATABASE_URL does not log in: %q %v", value, user, err)
		}
		time.Sleep(time.Second) // room for a second write or request, which must not come
		now := w.forceCounts(ns, "db")
		if now.tokens != was.tokens+1 {
			t.Errorf("force-rotate %s: %d token requests, want exactly one (the cached token must not do)",
				value, now.tokens-was.tokens)
		}
		if now.logins != was.logins+1 {
			t.Errorf("force-rotate %s: %d logins made, want exactly one (a kept result must not count)",
				value, now.logins-was.logins)
		}
		if now.writes != was.writes+1 {
			t.Errorf("force-rotate %s: %d writes, want exactly one", value, now.writes-was.writes)
		}
		forced := false
		for _, e := range w.events(ns, "db") {
			forced = forced || e.Reason == "Rotated" && e.Type == "Normal" && strings.HasSuffix(e.Message, "(forced)")
		}
		if !forced {
			t.Errorf("force-rotate %s: no Rotated Event saying forced", value)
		}
		return sec, now
	}

	const v1, v2 = "2030-01-02T03:04:05Z", "2030-01-02T03:09:00Z"
	sec, counts := rotate(v1, first, before)

	// The same value again, with another change that wakes the Secret up:
	// nothing is minted and nothing written (bounded wait on both).
	w.annotate(ns, "db", "pgtoken.io/force-rotate", v1, "team", "payments")
	touched, err := w.k.GetSecret(ns, "db")
	if err != nil || touched.Metadata.Annotations["team"] != "payments" {
		t.Fatalf("reading the touched Secret: %v", err)
	}
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		cur, err := w.k.GetSecret(ns, "db")
		if err != nil {
			t.Fatal(err)
		}
		if cur.Metadata.ResourceVersion != touched.Metadata.ResourceVersion {
			t.Fatalf("the same force-rotate value again: the Secret was written (resourceVersion %s -> %s)",
				touched.Metadata.ResourceVersion, cur.Metadata.ResourceVersion)
		}
	}
	if now := w.forceCounts(ns, "db"); now != counts {
		t.Fatalf("the same force-rotate value again: %+v, was %+v", now, counts)
	}

	// Another value: a new token again.
	sec, counts = rotate(v2, sec, counts)

	// The forced token replaced the shared one: a new Secret of the same identity gets it
	// without a request of its own.
	w.managed(ns, "db2", w.pgAnn())
	other := w.waitSecret(ns, "db2", 30*time.Second, "second Secret written", hasKeys("password"))
	if other.Data["password"] != sec.Data["password"] {
		t.Errorf("a Secret written after the forced rotation did not get the forced token")
	}
	if now := w.forceCounts(ns, "db"); now.tokens != counts.tokens {
		t.Errorf("%d token requests for a Secret after a forced rotation; want 0", now.tokens-counts.tokens)
	}
}

// A forced rotation that fails is reported like any other (Event, last-error)
// and retried; the working values stay until it succeeds, and the value is
// recorded only then.
func TestForceRotateFailureKeepsValues(t *testing.T) {
	apiNeutral(t)
	w := newWorld(t, stack.Options{})
	const ns = "forcefail"
	w.managed(ns, "db", w.pgAnn())
	good := w.waitSecret(ns, "db", 30*time.Second, "first write", hasKeys("password"))
	w.entra("POST", "faults", map[string]any{"endpoint": "token", "status": 500, "count": 2})
	w.annotate(ns, "db", "pgtoken.io/force-rotate", "1")
	sec := w.waitSecret(ns, "db", 30*time.Second, "TokenFailed in last-error", func(s *stack.Secret) bool {
		return strings.HasPrefix(s.Metadata.Annotations["pgtoken.io/status.last-error"], "TokenFailed")
	})
	if sec.Data["password"] != good.Data["password"] || sec.Metadata.Annotations["pgtoken.io/status.force-rotate"] != "" {
		t.Fatalf("a failed forced rotation changed the values or recorded the value")
	}
	if sec.Metadata.Annotations["pgtoken.io/status.last-error-at"] == "" {
		t.Errorf("last-error without last-error-at")
	}
	if hasEvent(w.events(ns, "db"), "TokenFailed") == nil {
		t.Errorf("no TokenFailed Event")
	}
	sec = w.waitSecret(ns, "db", 40*time.Second, "forced rotation after the retries", func(s *stack.Secret) bool {
		return s.Metadata.Annotations["pgtoken.io/status.force-rotate"] == "1"
	})
	if sec.Data["password"] == good.Data["password"] || sec.Metadata.Annotations["pgtoken.io/status.last-error"] != "" {
		t.Errorf("recorded without a new value, or with last-error left")
	}
	if _, err := w.psql(sec.Value("DATABASE_URL")); err != nil {
		t.Fatal(err)
	}
}
