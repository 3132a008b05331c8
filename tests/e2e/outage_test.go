package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/fakes/pki"
	"pgtoken-rotator/tests/stack"
)

// --- helpers for outages (this file and badinput_test.go) -------------------

// entraSet replaces the fake Entra's config with the stack's plus the given fields.
func (w *world) entraSet(kv ...any) {
	w.t.Helper()
	cfg := w.s.EntraConfig()
	for i := 0; i+1 < len(kv); i += 2 {
		cfg[kv[i].(string)] = kv[i+1]
	}
	w.entra("PUT", "config", cfg)
}

// metricsWorld starts a world whose controller serves /metrics; it returns the base URL.
func metricsWorld(t *testing.T, opts stack.Options) (*world, string) {
	port := opsFreePort(t)
	w := newWorld(t, opts, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port))
	return w, fmt.Sprintf("http://127.0.0.1:%d", port)
}

func (w *world) scrape(base string) string {
	w.t.Helper()
	code, text := httpGet(w.t, base+"/metrics")
	if code != 200 {
		w.t.Fatalf("/metrics: %d", code)
	}
	return text
}

func mustMetric(t *testing.T, text, name, labels string) float64 {
	t.Helper()
	v, ok := metricValue(text, name, labels)
	if !ok {
		t.Fatalf("no series %s{%s} in /metrics", name, labels)
	}
	return v
}

// pgCtl stops or starts the stack's PostgreSQL with pg_ctl (same data
// directory and port; pgstack stop would also remove its PAM service).
func (w *world) pgCtl(action string) {
	w.t.Helper()
	pgdata := filepath.Join(w.s.Dir, "pg", "pgdata")
	args := []string{"-D", pgdata, "-w", "-t", "30"}
	if action == "stop" {
		args = append(args, "-m", "fast", "stop")
	} else {
		args = append(args, "-l", filepath.Join(w.s.Dir, "pg", "postgres.log"), "start")
	}
	bin := "/usr/lib/postgresql/15/bin/pg_ctl"
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
		cmd.Dir = "/"
	} else {
		cmd = exec.Command(bin, args...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		w.t.Fatalf("pg_ctl %s: %v: %s", action, err, out)
	}
}

// vmHWM is the controller's peak resident set size in KiB (/proc/PID/status).
func (w *world) vmHWM() int64 {
	w.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.ctrl.Cmd.Process.Pid))
	if err != nil {
		w.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	w.t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// jwtClaims decodes a JWT's claims (no verification).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT (%d parts)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var c map[string]any
	if err := d.Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func claimUnix(t *testing.T, c map[string]any, k string) int64 {
	t.Helper()
	n, ok := c[k].(json.Number)
	if !ok {
		t.Fatalf("claim %s missing", k)
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func annTime(t *testing.T, s *stack.Secret, a string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s.Metadata.Annotations[a])
	if err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	return v
}

// signToken signs claims with the fake Entra's key (a token PostgreSQL accepts
// if its claims are right).
func (w *world) signToken(claims map[string]any) string {
	w.t.Helper()
	key, err := pki.LoadKey(filepath.Join(w.s.PKI, "idp.key"))
	if err != nil {
		w.t.Fatal(err)
	}
	tok, err := pki.Sign(key, claims)
	if err != nil {
		w.t.Fatal(err)
	}
	return tok
}

func sameData(a, b *stack.Secret) bool {
	if len(a.Data) != len(b.Data) {
		return false
	}
	for k, v := range a.Data {
		if b.Data[k] != v {
			return false
		}
	}
	return true
}

// --- Entra ID ---------------------------------------------------------------

// The token endpoint is down for longer than the token in the Secret lives:
// the Secret keeps that value (expired, but never replaced by anything that
// failed), Events, status and metrics say so, and the same process rotates
// as soon as Entra answers again.
func TestOutageTokenEndpointPastExpiry(t *testing.T) {
	covers(t, "Entra ID", "token endpoint down longer than the token's remaining lifetime",
		"30 s tokens, every token request answered 503/500 until the token in the Secret has expired: the value is kept, TokenFailed Events, last-error and failure/expiry metrics say so, and the same process rotates to a value that logs in once the faults are cleared")
	apiNeutral(t)
	w, base := metricsWorld(t, stack.Options{TokenLifetime: 30 * time.Second})
	pid := w.ctrl.Cmd.Process.Pid
	w.managed("eout", "db", w.pgAnn())
	first := w.waitSecret("eout", "db", 30*time.Second, "first write", hasKeys("password"))
	exp := annTime(t, first, "pgtoken.io/status.expires-at")
	w.entra("POST", "faults", []map[string]any{
		{"endpoint": "token", "status": 503, "count": 2},
		{"endpoint": "token", "status": 500, "count": 0},
	})
	// Until well past the expiry: every look at the Secret shows the first value.
	for time.Now().Before(exp.Add(4 * time.Second)) {
		sec, err := w.k.GetSecret("eout", "db")
		if err != nil {
			t.Fatal(err)
		}
		if !sameData(sec, first) {
			t.Fatalf("the Secret's data changed while the token endpoint was down")
		}
		time.Sleep(500 * time.Millisecond)
	}
	sec, err := w.k.GetSecret("eout", "db")
	if err != nil {
		t.Fatal(err)
	}
	if le := sec.Metadata.Annotations["pgtoken.io/status.last-error"]; !strings.HasPrefix(le, "TokenFailed: ") ||
		!strings.Contains(le, "token endpoint answered 50") {
		t.Errorf("last-error %q does not say the token endpoint failed", le)
	}
	if annTime(t, sec, "pgtoken.io/status.expires-at") != exp {
		t.Errorf("expires-at changed without a write")
	}
	if ev := hasEvent(w.events("eout", "db"), "TokenFailed"); ev == nil || ev.Type != "Warning" {
		t.Errorf("no TokenFailed Warning Event: %+v", ev)
	}
	// The kept value has expired: PostgreSQL refuses it (so the wait above meant something).
	if _, err := w.psql(sec.Value("DATABASE_URL")); err == nil {
		t.Errorf("an expired token still logs in: the test PostgreSQL does not check exp")
	}
	text := w.scrape(base)
	if v := mustMetric(t, text, "pgtoken_rotator_rotation_failures_total", `reason="TokenFailed"`); v < 2 {
		t.Errorf("rotation_failures_total{TokenFailed} = %v, want >= 2", v)
	}
	if v := mustMetric(t, text, "pgtoken_rotator_token_requests_total", `result="failure"`); v < 2 {
		t.Errorf("token_requests_total{failure} = %v, want >= 2", v)
	}
	if v := mustMetric(t, text, "pgtoken_rotator_secret_token_expiry_timestamp_seconds", `secret="db"`); int64(v) != exp.Unix() ||
		float64(time.Now().Unix()) <= v {
		t.Errorf("expiry gauge %v: want the kept token's expiry %d, in the past", v, exp.Unix())
	}
	if v := mustMetric(t, text, "pgtoken_rotator_secret_next_rotation_timestamp_seconds", `secret="db"`); float64(time.Now().Unix()) <= v {
		t.Errorf("next-rotation gauge %v is not in the past while rotations fail", v)
	}
	okBefore := mustMetric(t, text, "pgtoken_rotator_rotations_total", `result="success"`)
	// The retries back off: far fewer token requests than seconds of outage.
	var st struct {
		Endpoints map[string]map[string]int `json:"endpoints"`
	}
	w.entraJSON("GET", "stats", nil, &st)
	if n := st.Endpoints["token"]["500"] + st.Endpoints["token"]["503"]; n < 3 || n > 15 {
		t.Errorf("%d failed token requests in a ~30 s outage: want a few, backing off", n)
	}

	w.entra("DELETE", "faults", nil)
	sec = w.waitSecret("eout", "db", 70*time.Second, "rotation after recovery", func(s *stack.Secret) bool {
		return s.Data["password"] != first.Data["password"] && s.Metadata.Annotations["pgtoken.io/status.last-error"] == ""
	})
	if user, err := w.psql(sec.Value("DATABASE_URL")); err != nil || user != stack.ControllerRole {
		t.Fatalf("the value written after recovery does not log in: %q %v", user, err)
	}
	if w.ctrl.Exited() || w.ctrl.Cmd.Process.Pid != pid {
		t.Fatalf("the controller did not survive the outage")
	}
	text = w.scrape(base)
	if v := mustMetric(t, text, "pgtoken_rotator_rotations_total", `result="success"`); v <= okBefore {
		t.Errorf("rotations_total{success} did not grow after recovery (%v -> %v)", okBefore, v)
	}
	if v := mustMetric(t, text, "pgtoken_rotator_secret_token_expiry_timestamp_seconds", `secret="db"`); float64(time.Now().Unix()) >= v {
		t.Errorf("expiry gauge %v is not in the future after recovery", v)
	}
}

// --- PostgreSQL -------------------------------------------------------------

// checkGrowing fails unless the first n retry delays for reason never shrink
// and the last is larger than the first.
func checkGrowing(t *testing.T, log, reason string, n int) {
	t.Helper()
	d := retryDelays(log, reason)
	if len(d) < n {
		t.Fatalf("want at least %d %s retries, got %v", n, reason, d)
	}
	d = d[:n]
	for i := 1; i < n; i++ {
		if d[i] < d[i-1] {
			t.Errorf("%s retry delays shrink: %v", reason, d)
		}
	}
	if d[n-1] <= d[0] {
		t.Errorf("%s retry delays do not grow: %v", reason, d)
	}
}

// PostgreSQL is stopped while a new value must be proven (a spec change
// asks for one): nothing is written, LoginFailed Warning Events with growing
// retry delays; once it is back the new value is written and logs in.
func TestOutagePostgresDown(t *testing.T) {
	covers(t, "PostgreSQL", "server down",
		"pg_ctl stop, then a change that needs a new value: the old value is kept, LoginFailed (unreachable) Warning Events, retry delays grow, and after pg_ctl start the new value is written and logs in")
	apiNeutral(t)
	w := newWorld(t, stack.Options{})
	w.managed("pgdown", "db", w.pgAnn())
	first := w.waitSecret("pgdown", "db", 30*time.Second, "first write", hasKeys("DATABASE_URL"))
	w.pgCtl("stop")
	stopped := true
	defer func() {
		if stopped {
			w.pgCtl("start")
		}
	}()
	if err := w.k.MergePatchSecret("pgdown", "db", map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{"pgtoken.io/database": "postgres"}}}); err != nil {
		t.Fatal(err)
	}
	sec := w.waitSecret("pgdown", "db", 30*time.Second, "LoginFailed status", lastErrorIs("LoginFailed"))
	if le := sec.Metadata.Annotations["pgtoken.io/status.last-error"]; !strings.Contains(le, "unreachable") ||
		!strings.Contains(le, "kept") {
		t.Errorf("last-error %q does not say the server was unreachable and the value kept", le)
	}
	if ev := hasEvent(w.events("pgdown", "db"), "LoginFailed"); ev == nil || ev.Type != "Warning" {
		t.Errorf("no LoginFailed Warning Event")
	}
	time.Sleep(14 * time.Second)
	checkGrowing(t, w.ctrl.Output(), "LoginFailed", 4)
	sec, err := w.k.GetSecret("pgdown", "db")
	if err != nil {
		t.Fatal(err)
	}
	if !sameData(sec, first) {
		t.Fatalf("the Secret was written while PostgreSQL was down")
	}
	w.pgCtl("start")
	stopped = false
	sec = w.waitSecret("pgdown", "db", 40*time.Second, "written after PostgreSQL is back", func(s *stack.Secret) bool {
		return strings.Contains(s.Value("DATABASE_URL"), "/postgres?") &&
			s.Metadata.Annotations["pgtoken.io/status.last-error"] == ""
	})
	if user, err := w.psql(sec.Value("DATABASE_URL")); err != nil || user != stack.ControllerRole {
		t.Fatalf("login after recovery: %q %v", user, err)
	}
}

// The role the Secret names is dropped: the new value is refused
// (LoginFailed, rejected), the old one kept, retries back off; when the role
// is created again the next retry writes a value that logs in.
func TestOutageRoleDropped(t *testing.T) {
	covers(t, "PostgreSQL", "role dropped",
		"DROP ROLE of the Secret's role, then a change that needs a new value: the old value is kept, LoginFailed (rejected) Warning Events, retry delays grow; after the role is re-created the new value is written and logs in")
	apiNeutral(t)
	w := newWorld(t, stack.Options{})
	const role = "dropped-role"
	if err := w.s.AddRole(role, stack.ControllerOID, ""); err != nil {
		t.Fatal(err)
	}
	w.managed("pgrole", "db", w.pgAnn("pgtoken.io/user", role, "pgtoken.io/database", "postgres"))
	first := w.waitSecret("pgrole", "db", 30*time.Second, "first write", hasKeys("DATABASE_URL"))
	if _, err := w.psql(first.Value("DATABASE_URL")); err != nil {
		t.Fatal(err)
	}
	if out, err := w.s.PSQLAdmin(`DROP ROLE "` + role + `"`); err != nil {
		t.Fatalf("drop role: %v %s", err, out)
	}
	if err := w.k.MergePatchSecret("pgrole", "db", map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{"pgtoken.io/database": "app"}}}); err != nil {
		t.Fatal(err)
	}
	sec := w.waitSecret("pgrole", "db", 30*time.Second, "LoginFailed status", lastErrorIs("LoginFailed"))
	if le := sec.Metadata.Annotations["pgtoken.io/status.last-error"]; !strings.Contains(le, "rejected") {
		t.Errorf("last-error %q does not say the login was rejected", le)
	}
	if hasEvent(w.events("pgrole", "db"), "LoginFailed") == nil {
		t.Errorf("no LoginFailed Event")
	}
	time.Sleep(14 * time.Second)
	checkGrowing(t, w.ctrl.Output(), "LoginFailed", 4)
	if sec, _ = w.k.GetSecret("pgrole", "db"); !sameData(sec, first) {
		t.Fatalf("the Secret was written while its role did not exist")
	}
	if err := w.s.AddRole(role, stack.ControllerOID, ""); err != nil {
		t.Fatal(err)
	}
	if out, err := w.s.PSQLAdmin(`GRANT CONNECT ON DATABASE app TO "` + role + `"`); err != nil {
		t.Fatalf("grant: %v %s", err, out)
	}
	sec = w.waitSecret("pgrole", "db", 40*time.Second, "written after the role is back", func(s *stack.Secret) bool {
		return strings.Contains(s.Value("DATABASE_URL"), "/app?") &&
			s.Metadata.Annotations["pgtoken.io/status.last-error"] == ""
	})
	if user, err := w.psql(sec.Value("DATABASE_URL")); err != nil || user != role {
		t.Fatalf("login after the role is back: %q %v", user, err)
	}
}

// --- Clock ------------------------------------------------------------------

// clockSkew runs one skew case: the fake Entra issues tokens as if its clock
// were off by offset (Entra's 5-minute backdating on), PostgreSQL and the
// controller use the real clock. For `watch`: every value the Secret holds
// logs in, its expires-at is never later than the token's exp (what the
// server checks) and never earlier than receipt + expires_in (minus slack),
// rotate-at lies between the write and the expiry, and the Secret is
// rotated before its token expires. It returns the distinct values seen.
func clockSkew(t *testing.T, offset time.Duration, lifetime int, watch time.Duration, wantRotations int) {
	w := newWorld(t, stack.Options{Backdate: 5 * time.Minute})
	w.entraSet("backdate_s", 300, "clock_offset_s", int(offset/time.Second), "token_lifetime_s", lifetime)
	ns := "skew"
	w.managed(ns, "db", w.pgAnn())
	seen := map[string]bool{}
	deadline := time.Now().Add(watch)
	var last *stack.Secret
	for time.Now().Before(deadline) {
		sec, err := w.k.GetSecret(ns, "db")
		if err != nil || sec.Data["password"] == "" {
			time.Sleep(300 * time.Millisecond)
			continue
		}
		w.remember(sec)
		last = sec
		p := sec.Value("password")
		if !seen[p] {
			seen[p] = true
			now := time.Now()
			c := jwtClaims(t, p)
			exp := time.Unix(claimUnix(t, c, "exp"), 0)
			expAt := annTime(t, sec, "pgtoken.io/status.expires-at")
			rotAt := annTime(t, sec, "pgtoken.io/status.rotate-at")
			wrote := annTime(t, sec, "pgtoken.io/status.rotated-at")
			// expires_in is the lifetime on the controller's clock from receipt
			// (receipt is at most a few seconds before rotated-at).
			floor := wrote.Add(time.Duration(lifetime)*time.Second - 5*time.Second)
			if exp.Before(floor) {
				floor = exp
			}
			if expAt.After(exp) || expAt.Before(floor) {
				t.Errorf("value %d: expires-at %v, token exp %v, receipt+expires_in ~%v", len(seen),
					expAt, exp, wrote.Add(time.Duration(lifetime)*time.Second))
			}
			if !rotAt.After(wrote) || !rotAt.Before(expAt) {
				t.Errorf("value %d: rotate-at %v is not between the write %v and expiry %v", len(seen), rotAt, wrote, expAt)
			}
			if !now.Before(exp) {
				t.Fatalf("value %d: the Secret holds a token that expired at %v", len(seen), exp)
			}
			if user, err := w.psql(sec.Value("DATABASE_URL")); err != nil || user != stack.ControllerRole {
				t.Fatalf("value %d (issuer clock %+v) does not log in: %v", len(seen), offset, err)
			}
		} else if !time.Now().Before(time.Unix(claimUnix(t, jwtClaims(t, p), "exp"), 0)) {
			t.Fatalf("the Secret still holds a token past its exp")
		}
		if wantRotations > 0 && len(seen) > wantRotations {
			time.Sleep(5 * time.Second) // and no loop right after it
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if last == nil {
		t.Fatalf("nothing was written in %v\n%s", watch, tail(w.ctrl.Output(), 30))
	}
	if len(seen) < wantRotations+1 {
		t.Fatalf("%d distinct values in %v; want at least %d (a rotation before expiry)", len(seen), watch, wantRotations+1)
	}
	// No rotation loop: a handful of token requests, not one per reconcile.
	if n := strings.Count(w.ctrl.Output(), `"msg":"token_minted"`); n > len(seen)+2 {
		t.Errorf("%d tokens minted for %d values written: rotation loop?", n, len(seen))
	}
	if le := last.Metadata.Annotations["pgtoken.io/status.last-error"]; le != "" {
		t.Errorf("last-error %q", le)
	}
}

// The issuer's clock is 3 minutes ahead (Entra backdates iat/nbf by 5
// minutes, so PostgreSQL accepts the token at once); its exp is 3 minutes
// later than receipt + expires_in.
func TestClockIssuerAhead(t *testing.T) {
	covers(t, "Clock", "token issuer's clock 3 min ahead",
		"fake Entra clock_offset_s=+180 with 90 s tokens: expires-at is between receipt+expires_in and the token's exp, rotate-at between the write and expiry, each value logs in, no rotation loop")
	apiNeutral(t)
	clockSkew(t, 3*time.Minute, 90, 25*time.Second, 0)
}

// The issuer's clock is 3 minutes behind: a 5-minute token really lasts 2
// minutes on the server's clock. The controller must schedule from the true
// remaining lifetime: it rotates (about a minute in) before the token stops
// logging in, without looping.
func TestClockIssuerBehind(t *testing.T) {
	covers(t, "Clock", "token issuer's clock 3 min behind",
		"fake Entra clock_offset_s=-180 with 300 s tokens (120 s left on the real clock): expires-at is the token's exp, rotate-at between the write and expiry, the Secret is rotated within 90 s before that exp, every value logs in, no rotation loop")
	apiNeutral(t)
	clockSkew(t, -3*time.Minute, 300, 90*time.Second, 1)
}

// Many Secrets failing for one cause cost one login per while, not one each: 30 Secrets
// name a role the server does not have; every one reports LoginFailed (each Secret still
// gets its Event and status), but the server sees the role's login a handful of times (a
// failed check is kept 5 s, then 10 s, ...), where 30 Secrets retrying on their own
// backoff made it try 91 times in the same window.
func TestSharedFailureCostsPerCause(t *testing.T) {
	covers(t, "PostgreSQL", "one cause failing many Secrets (a role that does not exist, named by 30 Secrets)",
		"every Secret gets LoginFailed; the server's log shows at most 8 refused logins of that role up to 20 s after all have failed (3 in a run; 91 without the kept failure)")
	w := newWorld(t, stack.Options{})
	const role = "no-such-role"
	const n = 30
	for i := 0; i < n; i++ {
		w.managed("shared-fail", fmt.Sprintf("db%02d", i), w.pgAnn("pgtoken.io/user", role, "pgtoken.io/database", "postgres"))
	}
	for i := 0; i < n; i++ {
		w.waitSecret("shared-fail", fmt.Sprintf("db%02d", i), 60*time.Second, "LoginFailed status", lastErrorIs("LoginFailed"))
	}
	refused := func() int {
		b, _ := os.ReadFile(filepath.Join(w.s.Dir, "pg", "postgres.log"))
		c := 0
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "FATAL") && strings.Contains(l, `"`+role+`"`) {
				c++
			}
		}
		return c
	}
	first := refused()
	if first == 0 {
		t.Fatalf("the server's log shows no refused login of %s: the count below would prove nothing", role)
	}
	time.Sleep(20 * time.Second)
	got := refused()
	if got > 8 {
		t.Errorf("%d refused logins of %s for %d Secrets failing for one cause (want at most 8: one per keep of the failure)", got, role, n)
	}
	if h := hasEvent(w.events("shared-fail", "db07"), "LoginFailed"); h == nil {
		t.Errorf("no LoginFailed Event on a Secret answered from the kept failure")
	}
	// Each Secret's repeats of the same Event are counted, and the count is sent at most
	// once a minute (EVENT_REPEAT_MIN_S): within this window, one write per Secret.
	for i := 0; i < n; i++ {
		for _, e := range w.events("shared-fail", fmt.Sprintf("db%02d", i)) {
			if e.Reason == "LoginFailed" && e.Count != 1 {
				t.Errorf("db%02d: LoginFailed Event count %d within a minute of its creation: the repeats were sent each time", i, e.Count)
			}
		}
	}
	t.Logf("%d refused logins of %s for %d Secrets (%d when all had failed once)", got, role, n, first)
}
