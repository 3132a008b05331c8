package e2e

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

// proxy is a running `pgtoken-rotator proxy` in front of the stack's PostgreSQL.
type proxy struct {
	w    *world
	p    *stack.Proc
	port int
	ops  string // http://host:port of /metrics and /healthz
}

// startProxy starts the proxy as the controller's identity (its role) for database app, with
// the stack's CA for the server and Entra, on a free loopback port; extra flags are added.
func (w *world) startProxy(name string, extra ...string) *proxy {
	w.t.Helper()
	ca := w.s.PKI + "/ca.crt"
	px := &proxy{w: w, port: opsFreePort(w.t)}
	ops := fmt.Sprintf("127.0.0.1:%d", opsFreePort(w.t))
	px.ops = "http://" + ops
	args := append([]string{"proxy", "--listen", fmt.Sprintf("127.0.0.1:%d", px.port),
		"--host", "localhost", "--port", fmt.Sprint(w.s.PGPort), "--user", stack.ControllerRole,
		"--database", "app", "--db-ca-file", ca, "--identity-ca-file", ca, "--metrics-addr", ops,
		"--log-level", "debug", "--drain-timeout", "5"}, extra...)
	var err error
	if px.p, err = w.s.Spawn(name, w.s.ControllerEnv(), w.s.Bin, args...); err != nil {
		w.t.Fatalf("proxy: %v", err)
	}
	w.t.Cleanup(func() { px.stop() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", px.port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || px.p.Exited() {
			w.t.Fatalf("the proxy does not listen: %v\n%s", err, tail(px.p.Output(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return px
}

// stop ends the proxy with SIGTERM: it must exit 0 (no sanitizer report, no leak), and its
// log must hold no token.
func (px *proxy) stop() {
	if px.p == nil {
		return
	}
	err := px.p.Stop(20 * time.Second)
	out := px.p.Output()
	sanitized.add(err == nil, sanitizerRe.FindString(out))
	if err != nil {
		px.w.t.Errorf("proxy exit: %v\n%s", err, tail(out, 40))
	}
	px.w.checkNoLeak(out, "proxy log")
	px.p = nil
}

// url is what an app puts in DATABASE_URL: no token, never changes.
func (px *proxy) url(user, db string) string {
	return fmt.Sprintf("postgresql://%s@127.0.0.1:%d/%s?sslmode=disable", user, px.port, db)
}

// query runs one psql command through the proxy and returns its output.
func (px *proxy) query(uri, sql string) (string, error) {
	cmd := exec.Command("psql", uri, "-Atqc", sql)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	s := string(out)
	px.w.checkNoLeak(s, "psql through the proxy")
	if err != nil {
		return s, fmt.Errorf("psql: %v: %s", err, redact(s))
	}
	return strings.TrimSpace(s), nil
}

// session is one long-lived psql through the proxy, fed statements on stdin.
type session struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func (px *proxy) openSession(uri string) *session {
	px.w.t.Helper()
	cmd := exec.Command("psql", uri, "-Atq", "-v", "ON_ERROR_STOP=0")
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	in, _ := cmd.StdinPipe()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		px.w.t.Fatal(err)
	}
	s := &session{cmd: cmd, in: in, out: bufio.NewReader(pr)}
	// Closing the reading end first: psql's last words (after a lost connection) must not block
	// the copy into the pipe, which cmd.Wait waits for.
	px.w.t.Cleanup(func() {
		in.Close()
		pr.Close()
		kill := time.AfterFunc(5*time.Second, func() { cmd.Process.Kill() })
		cmd.Wait()
		kill.Stop()
		pw.Close()
	})
	return s
}

// ask runs sql and returns its one line of output.
func (s *session) ask(sql string) (string, error) {
	lines, err := s.askLines(sql, 1)
	if len(lines) == 0 {
		return "", err
	}
	return lines[0], err
}

// askLines runs sql and returns the next n lines of output.
func (s *session) askLines(sql string, n int) ([]string, error) {
	if _, err := fmt.Fprintf(s.in, "%s;\n", sql); err != nil {
		return nil, err
	}
	type result struct {
		lines []string
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		for len(r.lines) < n && r.err == nil {
			var l string
			l, r.err = s.out.ReadString('\n')
			r.lines = append(r.lines, strings.TrimSpace(l))
		}
		ch <- r
	}()
	select {
	case r := <-ch:
		return r.lines, r.err
	case <-time.After(15 * time.Second):
		return nil, fmt.Errorf("no answer to %q in 15 s", sql)
	}
}

// The proxy's core promise: with tokens that live 30 s, new connections made every second
// for 80 s (more than two token lifetimes) all log in through one constant URL, and a
// connection opened at the start keeps working the whole time. The control: the same loop
// with the URL holding the first token fails once that token has expired.
func TestProxyFreshTokenPerConnection(t *testing.T) {
	apiNeutral(t)
	w := newWorld(t, stack.Options{TokenLifetime: 30 * time.Second})
	px := w.startProxy("proxy")
	uri := px.url(stack.ControllerRole, "app")
	if user, err := px.query(uri, "select current_user"); err != nil || user != stack.ControllerRole {
		t.Fatalf("first login through the proxy: %q %v\n%s", user, err, tail(px.p.Output(), 30))
	}
	long := px.openSession(uri)
	if got, err := long.ask("select 41 + 1"); err != nil || got != "42" {
		t.Fatalf("long session: %q %v", got, err)
	}
	// the control: a URL holding the token the first login used
	out, _, code := w.cli("token", "--identity-ca-file", w.s.PKI+"/ca.crt")
	first := strings.TrimSpace(out)
	if code != 0 {
		t.Fatalf("token: exit %d", code)
	}
	w.seen[first] = true
	direct := fmt.Sprintf("postgresql://%s:%s@localhost:%d/app?sslmode=verify-full&sslrootcert=%s",
		stack.ControllerRole, first, w.s.PGPort, w.s.PKI+"/ca.crt")
	start := time.Now()
	logins, controlFailed := 0, false
	for time.Since(start) < 80*time.Second {
		if user, err := px.query(uri, "select current_user"); err != nil || user != stack.ControllerRole {
			t.Fatalf("login %d through the proxy after %v: %q %v\n%s", logins+1,
				time.Since(start).Round(time.Second), user, err, tail(px.p.Output(), 30))
		}
		logins++
		if got, err := long.ask(fmt.Sprintf("select %d", logins)); err != nil || got != fmt.Sprint(logins) {
			t.Fatalf("the long session stopped answering after %v: %q %v", time.Since(start), got, err)
		}
		if !controlFailed {
			if _, err := w.psql(direct); err != nil {
				controlFailed = true
				t.Logf("control: the first token stopped logging in after %v", time.Since(start).Round(time.Second))
			}
		}
		time.Sleep(time.Second)
	}
	if !controlFailed {
		t.Errorf("control: the URL holding the first token still logs in after 80 s: the test proves nothing")
	}
	minted := strings.Count(px.p.Output(), `"msg":"proxy_token_minted"`)
	if minted < 3 {
		t.Errorf("the proxy minted %d tokens in 80 s of 30 s tokens; want at least 3", minted)
	}
	t.Logf("%d logins through the proxy, %d tokens minted", logins, minted)
	text, err := scrape(px.ops + "/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	px.w.checkNoLeak(text, "proxy /metrics")
	for _, c := range []struct {
		name, labels string
		min          float64
	}{
		{"pgtoken_rotator_proxy_connections_total", `result="ok"`, float64(logins + 1)},
		{"pgtoken_rotator_proxy_connections_open", "", 1},
		{"pgtoken_rotator_proxy_token_requests_total", `result="ok"`, float64(minted)},
		{"pgtoken_rotator_proxy_token_expiry_timestamp_seconds", "", float64(time.Now().Unix())},
		{"pgtoken_rotator_proxy_bytes_total", `direction="client"`, 1000},
		{"pgtoken_rotator_proxy_login_duration_seconds_count", "", float64(logins + 1)},
	} {
		if v, ok := metricValue(text, c.name, c.labels); !ok || v < c.min {
			t.Errorf("%s{%s} = %v (found %v), want at least %v", c.name, c.labels, v, ok, c.min)
		}
	}
	if v, _ := metricValue(text, "pgtoken_rotator_proxy_connections_total", `result="refused"`); v != 0 {
		t.Errorf("refused logins counted: %v", v)
	}
	if body, err := scrape(px.ops + "/healthz"); err != nil || !strings.Contains(body, "ok") {
		t.Errorf("/healthz: %q %v", body, err)
	}
}

// What a client is told when it asks for what is not served, and when there is no token.
func TestProxyRefusals(t *testing.T) {
	apiNeutral(t)
	w := newWorld(t, stack.Options{})
	px := w.startProxy("proxy")
	if _, err := px.query(px.url("someone-else", "app"), "select 1"); err == nil ||
		!strings.Contains(err.Error(), `role "someone-else" is not served here`) {
		t.Errorf("wrong role: %v", err)
	}
	if _, err := px.query(px.url(stack.ControllerRole, "otherdb"), "select 1"); err == nil ||
		!strings.Contains(err.Error(), `database "otherdb" is not served here`) {
		t.Errorf("wrong database: %v", err)
	}
	if user, err := px.query(px.url(stack.ControllerRole, "app"), "select current_user"); err != nil || user != stack.ControllerRole {
		t.Fatalf("after refusals: %q %v", user, err)
	}
	if text, err := scrape(px.ops + "/metrics"); err != nil {
		t.Errorf("/metrics: %v", err)
	} else if v, _ := metricValue(text, "pgtoken_rotator_proxy_connections_total", `result="refused"`); v != 2 {
		t.Errorf("refused logins counted %v, want 2", v)
	}
	// no token: a proxy whose identity endpoint always fails
	w.entra("POST", "faults", map[string]any{"endpoint": "token", "status": 400, "count": 1000})
	bad := w.startProxy("proxy-no-token")
	if _, err := bad.query(bad.url(stack.ControllerRole, "app"), "select 1"); err == nil ||
		!strings.Contains(err.Error(), "could not get a token to log in to localhost") {
		t.Errorf("no token: %v", err)
	}
}

// A wrong CA for the server: the login is refused with the TLS reason, never sent in the clear.
func TestProxyUpstreamTLS(t *testing.T) {
	apiNeutral(t)
	w := newWorld(t, stack.Options{})
	px := w.startProxy("proxy", "--db-ca-file", w.s.PKI+"/wrong-ca.crt")
	_, err := px.query(px.url(stack.ControllerRole, "app"), "select 1")
	if err == nil || !strings.Contains(err.Error(), "the certificate is not trusted") {
		t.Errorf("untrusted server: %v", err)
	}
}

// Protocol edges through the proxy, with psql: a CancelRequest reaches the server session
// that runs the query; COPY out of a large result and COPY in pass byte for byte; TLS to the
// client when it asks; the server ending a session mid-query reaches the client as its error.
func TestProxyProtocolEdges(t *testing.T) {
	apiNeutral(t)
	w := newWorld(t, stack.Options{})
	pki := w.s.PKI
	px := w.startProxy("proxy", "--client-tls-cert", pki+"/server.crt", "--client-tls-key", pki+"/server.key")
	uri := px.url(stack.ControllerRole, "app")

	// cancel: psql sends a CancelRequest on SIGINT
	cmd := exec.Command("psql", uri, "-Atqc", "select pg_sleep(60)")
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.untilAdmin("select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'",
		"1", func() string { return "the query never ran upstream: " + out.String() })
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if err == nil || !strings.Contains(out.String(), "canceling statement due to user request") ||
		time.Since(start) > 10*time.Second {
		t.Errorf("cancel: %v after %v: %s\n%s", err, time.Since(start), out.String(), tail(px.p.Output(), 20))
	}

	// COPY out: 200,000 rows (a large result), every one
	cmd = exec.Command("psql", uri, "-Atqc", "copy (select g, md5(g::text) from generate_series(1, 200000) g) to stdout")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("copy out: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) != 200000 || lines[199999] != "200000\t"+md5hex("200000") {
		t.Errorf("copy out: %d rows, last %q", len(lines), lines[len(lines)-1])
	}
	// COPY in: the same rows into a temporary table, counted and summed upstream
	script := "create temp table cp(g int, h text);\n\\copy cp from stdin\n" + string(b) + "\\.\n" +
		"select count(*), sum(g), count(distinct h) from cp;\n"
	cmd = exec.Command("psql", uri, "-Atq", "-v", "ON_ERROR_STOP=1")
	cmd.Stdin = strings.NewReader(script)
	if got, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(got)) != "200000|20000100000|200000" {
		t.Errorf("copy in: %v %q", err, got)
	}

	// TLS to the client when it asks (sslmode=verify-full against the stack's CA)
	tlsURI := fmt.Sprintf("postgresql://%s@localhost:%d/app?sslmode=verify-full&sslrootcert=%s",
		stack.ControllerRole, px.port, pki+"/ca.crt")
	cmd = exec.Command("psql", tlsURI, "-c", "\\conninfo")
	if got, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(got), "SSL connection (protocol: TLSv1.3") {
		t.Errorf("TLS to the client: %v %s", err, got)
	}

	// the server ends the session mid-query: the client gets the server's error
	cmd = exec.Command("psql", uri, "-Atqc", "select pg_sleep(60)")
	out.Reset()
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.untilAdmin("select pg_terminate_backend(pid) from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'",
		"t", func() string { return "no backend to end: " + out.String() })
	if err := cmd.Wait(); err == nil || !strings.Contains(out.String(), "terminating connection due to administrator command") {
		t.Errorf("server went away: %v %s", err, out.String())
	}
	// LISTEN in one session, NOTIFY from another: the notification crosses the proxy
	listener := px.openSession(uri)
	if got, err := listener.ask("listen pgtr_ch; select 'listening'"); err != nil || got != "listening" {
		t.Fatalf("listen: %q %v", got, err)
	}
	if _, err := px.query(uri, "notify pgtr_ch, 'hello through the proxy'"); err != nil {
		t.Fatalf("notify: %v", err)
	}
	if got, err := listener.askLines("select 'after'", 2); err != nil ||
		!strings.Contains(strings.Join(got, "\n"), `Asynchronous notification "pgtr_ch" with payload "hello through the proxy" received`) {
		t.Errorf("notification: %q %v", got, err)
	}
	if user, err := px.query(uri, "select current_user"); err != nil || user != stack.ControllerRole {
		t.Errorf("after the edges: %q %v", user, err)
	}
}

// untilAdmin runs sql as the database's admin until it prints want, for up to 15 s; else the
// test fails with why().
func (w *world) untilAdmin(sql, want string, why func() string) {
	w.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if n, _ := w.s.PSQLAdmin(sql); strings.TrimSpace(n) == want {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatal(why())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Clients that misbehave: one that sends a byte a second, one that announces an oversized
// startup packet, one that sends garbage and one that connects and says nothing. None of them
// delays a real login, and each is refused or timed out on its own.
func TestProxyBadClients(t *testing.T) {
	apiNeutral(t)
	w := newWorld(t, stack.Options{})
	px := w.startProxy("proxy", "--login-timeout", "3")
	addr := fmt.Sprintf("127.0.0.1:%d", px.port)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	slow, silent, huge, junk := dial(), dial(), dial(), dial()
	stopSlow := make(chan struct{})
	go func() { // a startup packet, one byte a second
		pkt := []byte{0, 0, 0, 9, 0, 3, 0, 0, 0}
		for _, b := range pkt {
			select {
			case <-stopSlow:
				return
			case <-time.After(time.Second):
			}
			if _, err := slow.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	defer close(stopSlow)
	huge.Write([]byte{0, 1, 0x86, 0xa0, 0, 3, 0, 0}) // 100,000 bytes announced
	// cancel requests for sessions that do not exist (one beyond every slot): ignored
	for _, pid := range []uint32{0x0001ffff, 0x7fff0000, 1} {
		c := dial()
		c.Write([]byte{0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, byte(pid >> 24), byte(pid >> 16),
			byte(pid >> 8), byte(pid), 1, 2, 3, 4})
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
			t.Errorf("a cancel for pid %#x got %q %v; want a close without a word", pid, b, err)
		}
	}
	junk.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	// real logins meanwhile, each quick
	for i := 0; i < 5; i++ {
		start := time.Now()
		if user, err := px.query(px.url(stack.ControllerRole, "app"), "select current_user"); err != nil || user != stack.ControllerRole {
			t.Fatalf("login %d beside bad clients: %q %v", i, user, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("login %d took %v beside bad clients", i, d)
		}
	}
	reply := func(c net.Conn, within time.Duration) string {
		c.SetReadDeadline(time.Now().Add(within))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if r := reply(huge, 5*time.Second); !strings.Contains(r, "08P01") || !strings.Contains(r, "over the 10000 allowed") {
		t.Errorf("oversized startup: %q", r)
	}
	if r := reply(junk, 5*time.Second); !strings.Contains(r, "08P01") {
		t.Errorf("garbage: %q", r)
	}
	if r := reply(silent, 8*time.Second); !strings.Contains(r, "did not finish its login in time") {
		t.Errorf("silent client: %q", r)
	}
	if r := reply(slow, 8*time.Second); !strings.Contains(r, "did not finish its login in time") {
		t.Errorf("slow client: %q", r)
	}
	text, err := scrape(px.ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	// the four, and startProxy's probe that connects and closes
	if v, _ := metricValue(text, "pgtoken_rotator_proxy_connections_total", `result="client"`); v != 5 {
		t.Errorf("bad clients counted %v, want 5", v)
	}
}

// SIGTERM: the listener closes at once, an open session keeps working until the drain time
// has passed, then it is told why it is cut off (57P01) and the proxy exits 0.
func TestProxyDrain(t *testing.T) {
	apiNeutral(t)
	w := newWorld(t, stack.Options{})
	px := w.startProxy("proxy", "--drain-timeout", "4")
	uri := px.url(stack.ControllerRole, "app")
	long := px.openSession(uri)
	if got, err := long.ask("select 1"); err != nil || got != "1" {
		t.Fatalf("session: %q %v", got, err)
	}
	p := px.p
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(p.Output(), `"msg":"proxy_draining"`) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", px.port), time.Second); err == nil {
		c.Close()
		t.Errorf("the proxy still accepts connections while draining")
	}
	if got, err := long.ask("select 2"); err != nil || got != "2" {
		t.Errorf("an open session during the drain: %q %v", got, err)
	}
	for i := 0; i < 100 && !p.Exited(); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if !p.Exited() {
		t.Fatalf("the proxy did not exit after its 4 s drain")
	}
	got, _ := long.ask("select 3")
	if !strings.Contains(got, "terminating connection because the proxy is shutting down") {
		t.Errorf("after the drain the session got %q; want the shutdown FATAL", got)
	}
	px.stop()
}
