package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"pgtoken-rotator/tests/stack"
)

// rawJSON quotes s as a JSON string but copies bytes >= 0x80 as they are, so a
// test can send bytes that are not UTF-8 (encoding/json would replace them).
func rawJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// createRawSecret creates a labelled Secret whose annotations are sent byte
// for byte. It returns the API server's status.
func (w *world) createRawSecret(ns, name string, ann map[string]string) int {
	w.t.Helper()
	keys := make([]string, 0, len(ann))
	for k := range ann {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var a []string
	for _, k := range keys {
		a = append(a, rawJSON(k)+":"+rawJSON(ann[k]))
	}
	body := fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":%q,"namespace":%q,`+
		`"labels":{"pgtoken.io/managed":"true"},"annotations":{%s}},"type":"Opaque",`+
		`"data":{"unrelated":"a2VlcC1tZQ=="}}`, name, ns, strings.Join(a, ","))
	st, b, err := w.k.Do("POST", "/api/v1/namespaces/"+ns+"/secrets", "application/json", []byte(body))
	if err != nil {
		w.t.Fatal(err)
	}
	if st != 201 {
		w.t.Logf("creating %s/%s: %d %.200s", ns, name, st, b)
	}
	return st
}

// pollSecret is waitSecret without failing: the last Secret read and whether cond held.
func (w *world) pollSecret(ns, name string, timeout time.Duration, cond func(*stack.Secret) bool) (*stack.Secret, bool) {
	deadline := time.Now().Add(timeout)
	var last *stack.Secret
	for {
		if sec, err := w.k.GetSecret(ns, name); err == nil {
			last = sec
			w.remember(sec)
			if cond(sec) {
				return sec, true
			}
		}
		if time.Now().After(deadline) {
			return last, false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type badCase struct {
	name   string
	set    []string // annotation, value pairs on top of w.pgAnn()
	del    []string // annotations removed
	reason string   // the Warning Event and last-error prefix
	msg    string   // in the message
}

// Bad annotation values, each on its own Secret: every one gets a Warning
// Event and a last-error that name the problem, nothing is written to its
// data, and the controller goes on to rotate a good Secret created after them.
func TestBadInputAnnotations(t *testing.T) {
	covers(t, "Bad input: annotations", "missing, empty, huge, non-UTF-8, control characters, template injection, bad port/host/user/database",
		"a Secret per bad value (~60 cases): InvalidConfig Warning Event and last-error naming the annotation (LoginFailed where the value is a legal but unknown role or database), data untouched, the controller keeps running and then rotates a good Secret")
	w := newWorld(t, stack.Options{})
	const ns = "badin"
	if err := w.k.EnsureNamespace(ns); err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("h", 300<<10)
	cases := []badCase{
		{"no-host", nil, []string{"pgtoken.io/host"}, "InvalidConfig", "pgtoken.io/host: required"},
		{"no-user", nil, []string{"pgtoken.io/user"}, "InvalidConfig", "pgtoken.io/user: required"},
		{"no-annotations", nil, []string{"pgtoken.io/host", "pgtoken.io/user", "pgtoken.io/port", "pgtoken.io/database"}, "InvalidConfig", "required"},
		{"empty-host", []string{"pgtoken.io/host", ""}, nil, "InvalidConfig", "pgtoken.io/host"},
		{"empty-user", []string{"pgtoken.io/user", ""}, nil, "InvalidConfig", "pgtoken.io/user: must not be empty"},
		{"empty-database", []string{"pgtoken.io/database", ""}, nil, "InvalidConfig", "pgtoken.io/database: must not be empty"},
		{"empty-port", []string{"pgtoken.io/port", ""}, nil, "InvalidConfig", "pgtoken.io/port"},
		{"empty-template", []string{"pgtoken.io/template.X", ""}, nil, "InvalidConfig", "pgtoken.io/template"},
		{"huge-host", []string{"pgtoken.io/host", huge}, nil, "InvalidConfig", "pgtoken.io/host: longer than"},
		{"huge-template", []string{"pgtoken.io/template.DATABASE_URL", "postgresql://{user}:{password}@{host}/" + huge}, nil, "InvalidConfig", "pgtoken.io/template.DATABASE_URL: longer than"},
		{"huge-user", []string{"pgtoken.io/user", strings.Repeat("u", 64)}, nil, "InvalidConfig", "pgtoken.io/user: longer than"},
		{"non-utf8-host", []string{"pgtoken.io/host", "db\xff\xfe.example"}, nil, "InvalidConfig", "pgtoken.io/host"},
		{"non-utf8-port", []string{"pgtoken.io/port", "54\xc332"}, nil, "InvalidConfig", "pgtoken.io/port"},
		{"non-utf8-template", []string{"pgtoken.io/template.pw", "{password}\xc0\xaf"}, nil, "", ""}, // decided below
		{"newline-user", []string{"pgtoken.io/user", "pgtoken-rotator-mi\nx"}, nil, "InvalidConfig", "pgtoken.io/user: has a control character"},
		{"esc-database", []string{"pgtoken.io/database", "app\x1b[31m"}, nil, "InvalidConfig", "pgtoken.io/database: has a control character"},
		{"esc-host", []string{"pgtoken.io/host", "local\x1bhost"}, nil, "InvalidConfig", "pgtoken.io/host"},
		{"del-user", []string{"pgtoken.io/user", "role\x7f"}, nil, "InvalidConfig", "pgtoken.io/user: has a control character"},
		{"esc-template", []string{"pgtoken.io/template.pw", "\x1b]0;{password}\x07"}, nil, "InvalidConfig", "pgtoken.io/template.pw"},
		{"lead-space-user", []string{"pgtoken.io/user", " pgtoken-rotator-mi"}, nil, "InvalidConfig", "pgtoken.io/user: begins or ends with a space"},
		{"port-0", []string{"pgtoken.io/port", "0"}, nil, "InvalidConfig", "pgtoken.io/port: must be a number from 1 to 65535"},
		{"port-65536", []string{"pgtoken.io/port", "65536"}, nil, "InvalidConfig", "pgtoken.io/port: must be a number from 1 to 65535"},
		{"port-minus-1", []string{"pgtoken.io/port", "-1"}, nil, "InvalidConfig", "pgtoken.io/port: must be a number from 1 to 65535"},
		{"port-abc", []string{"pgtoken.io/port", "abc"}, nil, "InvalidConfig", "pgtoken.io/port: must be a number from 1 to 65535"},
		{"port-space", []string{"pgtoken.io/port", " 5432"}, nil, "InvalidConfig", "pgtoken.io/port"},
		{"port-hex", []string{"pgtoken.io/port", "0x1538"}, nil, "InvalidConfig", "pgtoken.io/port"},
		{"port-huge", []string{"pgtoken.io/port", "18446744073709551617"}, nil, "InvalidConfig", "pgtoken.io/port"},
		{"host-slash", []string{"pgtoken.io/host", "db.example/evil"}, nil, "InvalidConfig", "pgtoken.io/host"},
		{"host-at", []string{"pgtoken.io/host", "evil@db.example"}, nil, "InvalidConfig", "pgtoken.io/host"},
		{"host-space", []string{"pgtoken.io/host", "db example"}, nil, "InvalidConfig", "pgtoken.io/host"},
		{"host-port", []string{"pgtoken.io/host", "localhost:5432"}, nil, "InvalidConfig", "pgtoken.io/host"},
		{"host-query", []string{"pgtoken.io/host", "localhost?sslmode=disable"}, nil, "InvalidConfig", "pgtoken.io/host"},
		{"host-conninfo", []string{"pgtoken.io/host", "localhost sslmode=disable"}, nil, "InvalidConfig", "pgtoken.io/host"},
		{"host-dollar", []string{"pgtoken.io/host", "${PGHOST}"}, nil, "InvalidConfig", "pgtoken.io/host"},
		{"host-dash", []string{"pgtoken.io/host", "-oProxyCommand=x"}, nil, "InvalidConfig", "pgtoken.io/host"},
		{"sslmode-disable", []string{"pgtoken.io/sslmode", "disable"}, nil, "InvalidConfig", "pgtoken.io/sslmode"},
		{"sslmode-empty", []string{"pgtoken.io/sslmode", ""}, nil, "InvalidConfig", "pgtoken.io/sslmode"},
		{"format-unknown", []string{"pgtoken.io/format", "url,shell"}, nil, "InvalidConfig", "pgtoken.io/format: unknown format"},
		{"login-check-bad", []string{"pgtoken.io/login-check", "sometimes"}, nil, "InvalidConfig", "pgtoken.io/login-check"},
		{"refresh-ratio-bad", []string{"pgtoken.io/refresh-ratio", "1.5"}, nil, "InvalidConfig", "pgtoken.io/refresh-ratio"},
		{"refresh-ratio-nan", []string{"pgtoken.io/refresh-ratio", "NaN"}, nil, "InvalidConfig", "pgtoken.io/refresh-ratio"},
		{"unknown-annotation", []string{"pgtoken.io/hots", "localhost"}, nil, "InvalidConfig", "unknown annotation pgtoken.io/hots"},
		// Template injection: braces, foreign syntaxes, placeholders that do not exist.
		{"tmpl-unknown-placeholder", []string{"pgtoken.io/template.DATABASE_URL", "postgresql://{usr}:{password}@{host}/{database}"}, nil, "InvalidConfig", "pgtoken.io/template.DATABASE_URL"},
		{"tmpl-double-brace", []string{"pgtoken.io/template.DATABASE_URL", "postgresql://{user}:{{password}}@{host}:{port}/{database}"}, nil, "InvalidConfig", "pgtoken.io/template.DATABASE_URL"},
		{"tmpl-unclosed", []string{"pgtoken.io/template.pw", "{password"}, nil, "InvalidConfig", "pgtoken.io/template.pw"},
		{"tmpl-stray-close", []string{"pgtoken.io/template.pw", "{password}}"}, nil, "InvalidConfig", "pgtoken.io/template.pw"},
		{"tmpl-nested", []string{"pgtoken.io/template.pw", "{pass{password}word}"}, nil, "InvalidConfig", "pgtoken.io/template.pw"},
		{"tmpl-modifier", []string{"pgtoken.io/template.pw", "{password:shell}"}, nil, "InvalidConfig", "pgtoken.io/template.pw"},
		{"tmpl-env-syntax", []string{"pgtoken.io/template.DATABASE_URL", "postgresql://${USER}:{password}@{host}/{database}"}, nil, "InvalidConfig", "pgtoken.io/template.DATABASE_URL"},
		{"tmpl-go-syntax", []string{"pgtoken.io/template.pw", "{{.Password}}{password}{{end}"}, nil, "InvalidConfig", "pgtoken.io/template.pw"},
		{"tmpl-no-password", []string{"pgtoken.io/template.DATABASE_URL", "postgresql://{user}@{host}:{port}/{database}"}, nil, "InvalidConfig", "no template has {password}"},
		{"tmpl-key-dotdot", []string{"pgtoken.io/template...pw", "{password}"}, nil, "InvalidConfig", "the key after template."},
		{"tmpl-key-own-status", []string{"pgtoken.io/template.pgtoken.io-status", "{password}"}, nil, "InvalidConfig", "the key after template."},
		{"tmpl-key-slash", []string{"pgtoken.io/template.a/b", "{password}"}, nil, "InvalidConfig", "pgtoken.io/template"},
		{"tmpl-key-empty", []string{"pgtoken.io/template.", "{password}"}, nil, "InvalidConfig", "the key after template."},
		// Legal values that are not what they seem: never expanded, the role or
		// database does not exist, nothing is written.
		{"user-placeholder", []string{"pgtoken.io/user", "{password}"}, nil, "LoginFailed", "did not log in"},
		{"database-printf", []string{"pgtoken.io/database", "%s%n%x"}, nil, "LoginFailed", "did not log in"},
	}
	w.runBadCases(ns, cases)
	if w.ctrl.Exited() {
		t.Fatalf("the controller exited:\n%s", tail(w.ctrl.Output(), 30))
	}
	// The controller still works: a change to the good Secret is rotated.
	if err := w.k.MergePatchSecret(ns, "good", map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{"pgtoken.io/database": "postgres"}}}); err != nil {
		t.Fatal(err)
	}
	good := w.waitSecret(ns, "good", 30*time.Second, "good Secret rewritten", func(s *stack.Secret) bool {
		return strings.Contains(s.Value("DATABASE_URL"), "/postgres?")
	})
	if _, err := w.psql(good.Value("DATABASE_URL")); err != nil {
		t.Errorf("the good Secret does not log in after the change: %v", err)
	}
	b, _ := json.Marshal(w.events(ns, "good"))
	w.checkNoLeak(string(b), "Events of the good Secret")
}

// --- hostile token endpoint answers ----------------------------------------

type tokenCase struct {
	name  string
	fault map[string]any // on the token endpoint, until cleared
	msg   string         // in the TokenFailed message
}

// tokenWorld is a world with 10 s tokens (so the token cache asks Entra again
// within seconds) and two Secrets: one with the login check, one without it
// (so only the controller's own checks stand between a bad answer and the Secret).
func tokenWorld(t *testing.T) *world {
	w := newWorld(t, stack.Options{TokenLifetime: 10 * time.Second})
	w.managed("tok", "db", w.pgAnn())
	w.managed("tok", "nocheck", w.pgAnn("pgtoken.io/login-check", "off"))
	w.waitSecret("tok", "db", 30*time.Second, "first write", hasKeys("password"))
	w.waitSecret("tok", "nocheck", 30*time.Second, "first write", hasKeys("password"))
	return w
}

// hostile applies one fault until both Secrets report TokenFailed for it and
// checks that nothing was written meanwhile; then clears it and waits for
// both to be rotated to values that log in.
func (w *world) hostile(c tokenCase) {
	t := w.t
	t.Helper()
	flip := map[bool]string{true: "postgres", false: "app"}
	before := map[string]*stack.Secret{}
	for _, n := range []string{"db", "nocheck"} {
		before[n] = w.waitSecret("tok", n, 30*time.Second, "healthy before "+c.name, func(s *stack.Secret) bool {
			return s.Metadata.Annotations["pgtoken.io/status.last-error"] == "" && s.Data["password"] != ""
		})
	}
	w.entra("POST", "faults", c.fault)
	time.Sleep(3 * time.Second) // past the token cache's quarter-life: the next rotation asks Entra
	// A change that needs a new value now: if anything is written, it shows the new database.
	db := map[string]string{}
	for _, n := range []string{"db", "nocheck"} {
		db[n] = flip[!strings.Contains(before[n].Value("DATABASE_URL"), "/postgres?")]
		if err := w.k.MergePatchSecret("tok", n, map[string]any{"metadata": map[string]any{
			"annotations": map[string]string{"pgtoken.io/database": db[n]}}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"db", "nocheck"} {
		sec, ok := w.pollSecret("tok", n, 30*time.Second, lastErrorIs("TokenFailed"))
		if !ok {
			le := ""
			if sec != nil {
				le = sec.Metadata.Annotations["pgtoken.io/status.last-error"]
			}
			t.Errorf("%s: %s: no TokenFailed status (last-error %q)", c.name, n, le)
			continue
		}
		le := sec.Metadata.Annotations["pgtoken.io/status.last-error"]
		if !strings.Contains(le, c.msg) || len(le) > 600 || !utf8.ValidString(le) {
			t.Errorf("%s: %s: last-error %q does not say %q", c.name, n, le, c.msg)
		}
		if strings.Contains(sec.Value("DATABASE_URL"), "/"+db[n]+"?") {
			t.Errorf("%s: %s: a value was written during the fault", c.name, n)
		}
		w.checkNoLeak(le, "last-error")
	}
	if w.ctrl.Exited() {
		t.Fatalf("%s: the controller exited:\n%s", c.name, tail(w.ctrl.Output(), 30))
	}
	w.entra("DELETE", "faults", nil)
	for _, n := range []string{"db", "nocheck"} {
		sec := w.waitSecret("tok", n, 40*time.Second, "recovery after "+c.name, func(s *stack.Secret) bool {
			return strings.Contains(s.Value("DATABASE_URL"), "/"+db[n]+"?") &&
				s.Metadata.Annotations["pgtoken.io/status.last-error"] == ""
		})
		if _, err := w.psql(sec.Value("DATABASE_URL")); err != nil {
			t.Errorf("%s: %s: the value written after recovery does not log in: %v", c.name, n, err)
		}
	}
}

// Answers that are not JSON token replies: truncated, malformed, wrong types,
// 100000-deep nesting, 96 MB bodies with and without Content-Length. Each is a
// TokenFailed with a clear message and nothing written; memory stays bounded;
// rotation resumes when the answers are good again.
func TestBadInputTokenResponses(t *testing.T) {
	covers(t, "Entra ID", "hostile token endpoint answers: truncated, malformed, wrong types, deep nesting, enormous bodies",
		"fake Entra faults on every token request: TokenFailed status and Event with a clear message, nothing written (with or without the login check), VmHWM grows < 48 MB across two 96 MB answers, rotation resumes once the fault is cleared")
	apiNeutral(t)
	// ASan keeps freed memory in a quarantine (256 MB by default), which would
	// count every capped 8 MiB read in VmHWM: keep it small so the peak shows
	// what the controller holds at once.
	t.Setenv("ASAN_OPTIONS", strings.TrimPrefix(os.Getenv("ASAN_OPTIONS")+":quarantine_size_mb=4", ":"))
	w := tokenWorld(t)
	hwm0 := w.vmHWM()
	cases := []tokenCase{
		{"truncated", map[string]any{"endpoint": "token", "truncate": true}, "token request"},
		{"malformed", map[string]any{"endpoint": "token", "malformed": true}, "malformed JSON"},
		{"access_token-number", map[string]any{"endpoint": "token",
			"body": `{"token_type":"Bearer","expires_in":3600,"access_token":12345}`}, "no access_token string"},
		{"access_token-object", map[string]any{"endpoint": "token",
			"body": `{"token_type":"Bearer","expires_in":3600,"access_token":{"jwt":"x"}}`}, "no access_token string"},
		{"not-an-object", map[string]any{"endpoint": "token", "body": `["access_token"]`}, "no access_token string"},
		{"html", map[string]any{"endpoint": "token", "body": "<html><body>Sign in</body></html>",
			"content_type": "text/html"}, "malformed JSON"},
		{"deep-nesting", map[string]any{"endpoint": "token", "nesting_depth": 100000}, "nested deeper"},
		{"enormous", map[string]any{"endpoint": "token", "enormous_bytes": 96 << 20}, "over"},
		{"enormous-chunked", map[string]any{"endpoint": "token", "enormous_bytes": 96 << 20, "chunked": true}, "over"},
	}
	for _, c := range cases {
		w.hostile(c)
	}
	grew := w.vmHWM() - hwm0
	t.Logf("VmHWM %d KiB at start, grew by %d KiB", hwm0, grew)
	if grew > 48<<10 {
		t.Errorf("VmHWM grew by %d MiB across the hostile answers: a body was not capped", grew>>10)
	}
	if ev := hasEvent(w.events("tok", "db"), "TokenFailed"); ev == nil || ev.Type != "Warning" {
		t.Errorf("no TokenFailed Warning Event")
	}
}

// Token replies whose access_token is not a real Entra token: not base64url,
// unsigned (alg none), without exp, already expired. Each is refused by the
// controller itself (TokenFailed, also for a Secret without the login check),
// nothing is written; an expires_in given as a string is read (and the signed
// token in that reply is written and logs in).
func TestBadInputTokenJWTs(t *testing.T) {
	covers(t, "Entra ID", "invalid JWTs from the token endpoint: bad base64, alg none, missing exp, exp in the past",
		"fake Entra answers 200 with such tokens: TokenFailed with a clear message, nothing written even with login-check off, rotation resumes once the fault is cleared")
	apiNeutral(t)
	w := tokenWorld(t)
	sec, err := w.k.GetSecret("tok", "db")
	if err != nil {
		t.Fatal(err)
	}
	claims := jwtClaims(t, sec.Value("password"))
	now := time.Now().Unix()
	with := func(kv ...any) map[string]any {
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		c["iat"], c["nbf"], c["exp"] = now, now, now+3600
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	reply := func(tok string, expiresIn any) map[string]any {
		b, _ := json.Marshal(map[string]any{"token_type": "Bearer", "expires_in": expiresIn, "access_token": tok})
		return map[string]any{"endpoint": "token", "body": string(b)}
	}
	good := w.signToken(with())
	parts := strings.Split(good, ".")
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	cases := []tokenCase{
		{"bad-base64", reply(parts[0]+".!!!not*base64!!!."+parts[2], 3600), "malformed JWT"},
		{"not-json-payload", reply(parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte("exp=1"))+"."+parts[2], 3600), "malformed JWT"},
		{"alg-none", reply(unsigned, 3600), "unsigned"},
		{"alg-none-with-signature", reply(unsigned+parts[2], 3600), "unsigned"},
		{"missing-exp", reply(w.signToken(with("exp", nil)), 3600), "malformed JWT"},
		{"exp-in-the-past", reply(w.signToken(with("iat", now-3700, "nbf", now-3700, "exp", now-100)), 3600), "expired"},
		{"exp-just-passed", reply(w.signToken(with("iat", now-600, "nbf", now-600, "exp", now-1)), 600), "expired"},
		{"token-with-newline", reply(parts[0]+"."+parts[1]+"\n."+parts[2], 3600), "control"},
	}
	for _, c := range cases {
		w.hostile(c)
	}
	// expires_in as a string, with a good signed token: read, written, logs in.
	tok := w.signToken(with("exp", time.Now().Unix()+600))
	w.entra("POST", "faults", reply(tok, "600"))
	time.Sleep(3 * time.Second)
	if err := w.k.MergePatchSecret("tok", "db", map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{"pgtoken.io/refresh-ratio": "0.5", "pgtoken.io/database": "postgres"}}}); err != nil {
		t.Fatal(err)
	}
	sec = w.waitSecret("tok", "db", 30*time.Second, "the reply with a string expires_in written",
		func(s *stack.Secret) bool { return s.Value("password") == tok })
	if _, err := w.psql(sec.Value("DATABASE_URL")); err != nil {
		t.Errorf("the token from a reply with a string expires_in does not log in: %v", err)
	}
	w.entra("DELETE", "faults", nil)
	w.remember(sec)
}

// runBadCases creates a Secret per case, then a good one (which must be
// rotated), and checks each bad one: its Warning Event and last-error, and
// data untouched.
func (w *world) runBadCases(ns string, cases []badCase) {
	t := w.t
	t.Helper()
	names := map[string]bool{}
	status := map[string]int{}
	for _, c := range cases {
		if names[c.name] {
			t.Fatalf("case %s twice", c.name)
		}
		names[c.name] = true
		ann := w.pgAnn(c.set...)
		for _, d := range c.del {
			delete(ann, d)
		}
		status[c.name] = w.createRawSecret(ns, c.name, ann)
		if status[c.name] != 201 && strings.HasPrefix(c.name, "huge-") {
			// The API server caps annotations (256 KiB in all): the largest it takes.
			for k, v := range ann {
				if len(v) > 4096 {
					ann[k] = v[:250<<10]
				}
			}
			status[c.name] = w.createRawSecret(ns, c.name, ann)
		}
		if status[c.name] == 422 && strings.HasPrefix(c.name, "tmpl-key-") {
			// The API server validates annotation keys as qualified names (the fake as
			// the real one): such a key never reaches the controller, whose own refusal
			// of it is tested in tests/unit/rot/test_spec.c.
			t.Logf("%s: the API server refuses the key itself (422)", c.name)
			continue
		}
		if status[c.name] != 201 {
			t.Errorf("%s: the API server refused the Secret (%d): the controller never saw it", c.name, status[c.name])
		}
	}
	// The API server decodes JSON as UTF-8 and may replace bytes that are
	// not: what the controller sees is what the server stored.
	for i := range cases {
		c := &cases[i]
		sec, err := w.k.GetSecret(ns, c.name)
		if err != nil {
			continue
		}
		if c.name == "non-utf8-template" {
			v := sec.Metadata.Annotations["pgtoken.io/template.pw"]
			if utf8.ValidString(v) {
				// Replaced by U+FFFD: a legal template; the Secret is written.
				c.reason, c.msg = "", ""
			} else {
				c.reason, c.msg = "InvalidConfig", "not valid UTF-8"
			}
		}
	}
	// Created after all the bad ones: still rotated.
	w.managed(ns, "good", w.pgAnn())
	good := w.waitSecret(ns, "good", 40*time.Second, "good Secret written", hasKeys("password", "DATABASE_URL"))
	if _, err := w.psql(good.Value("DATABASE_URL")); err != nil {
		t.Errorf("the good Secret does not log in: %v", err)
	}
	for _, c := range cases {
		if status[c.name] != 201 {
			continue
		}
		if c.reason == "" {
			if _, ok := w.pollSecret(ns, c.name, 20*time.Second, hasKeys("pw")); !ok {
				t.Errorf("%s: not written", c.name)
			}
			continue
		}
		sec, ok := w.pollSecret(ns, c.name, 10*time.Second, lastErrorIs(c.reason))
		if !ok {
			if sec != nil {
				t.Errorf("%s: no %s status; data has %d keys, annotations %q", c.name, c.reason, len(sec.Data),
					sec.Metadata.Annotations["pgtoken.io/status.last-error"])
			} else {
				t.Errorf("%s: Secret unreadable", c.name)
			}
			continue
		}
		le := sec.Metadata.Annotations["pgtoken.io/status.last-error"]
		if !strings.Contains(le, c.msg) {
			t.Errorf("%s: last-error %q does not say %q", c.name, le, c.msg)
		}
		if len(le) > 600 || strings.ContainsAny(le, "\x00\x1b\n") || !utf8.ValidString(le) {
			t.Errorf("%s: last-error is not a short clean message (%d bytes): %q", c.name, len(le), le)
		}
		if len(sec.Data) != 1 || sec.Value("unrelated") != "keep-me" {
			t.Errorf("%s: data changed: %d keys", c.name, len(sec.Data))
		}
		if _, ok := sec.Metadata.Annotations["pgtoken.io/status.expires-at"]; ok {
			t.Errorf("%s: a token status was written", c.name)
		}
		ev := hasEvent(w.events(ns, c.name), c.reason)
		if ev == nil || ev.Type != "Warning" {
			t.Errorf("%s: no %s Warning Event", c.name, c.reason)
		} else if !strings.Contains(ev.Message, c.msg) || len(ev.Message) > 1024 {
			t.Errorf("%s: Event message %q does not say %q", c.name, ev.Message, c.msg)
		}
	}
}

// An escaped NUL (\u0000, legal JSON, kept by the API server) inside a value:
// C strings end there, so the value must be refused, not read as its prefix
// (a user "<role>\u0000evil" must not log in as <role>).
func TestBadInputAnnotationNUL(t *testing.T) {
	covers(t, "Bad input: annotations", "an escaped NUL (\\u0000) inside host, port, user, database or a template",
		"a Secret per field: InvalidConfig Warning Event and last-error naming the annotation, nothing written (the value is not cut at the NUL), the controller then rotates a good Secret")
	w := newWorld(t, stack.Options{})
	const ns = "badnul"
	if err := w.k.EnsureNamespace(ns); err != nil {
		t.Fatal(err)
	}
	w.runBadCases(ns, []badCase{
		{"nul-user", []string{"pgtoken.io/user", stack.ControllerRole + "\x00evil"}, nil, "InvalidConfig", "pgtoken.io/user"},
		{"nul-database", []string{"pgtoken.io/database", "app\x00x"}, nil, "InvalidConfig", "pgtoken.io/database"},
		{"nul-host", []string{"pgtoken.io/host", "localhost\x00.evil"}, nil, "InvalidConfig", "pgtoken.io/host"},
		{"nul-port", []string{"pgtoken.io/port", fmt.Sprint(w.s.PGPort) + "\x00"}, nil, "InvalidConfig", "pgtoken.io/port"},
		{"nul-template", []string{"pgtoken.io/template.pw", "{password}\x00{user}"}, nil, "InvalidConfig", "pgtoken.io/template.pw"},
	})
}
