// Package stack starts the local test world on loopback, in a temporary
// directory: the token-validating PostgreSQL (tests/pg/pgstack), the fake
// Entra ID endpoint and IMDS, a Kubernetes API server (the fake, or a real
// kube-apiserver), and the controller binary with a workload-identity
// environment. Everything it starts, Close stops.
package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"pgtoken-rotator/tests/fakes/pki"
)

// The test world's identities.
const (
	TenantID       = "7e5a1d2c-0b6f-4c55-9a1e-3d2b8f4c6a11"
	ControllerApp  = "c0ffee00-1111-4222-8333-444455556666" // client id of the controller's managed identity
	ControllerOID  = "0b1ec700-aaaa-4bbb-8ccc-ddddeeeeffff" // its object id
	ControllerRole = "pgtoken-rotator-mi"                   // the Postgres role mapped to it
	ControllerNS   = "pgtoken-system"
	ControllerSA   = "pgtoken-rotator"
	Issuer         = "https://kube.test" // the fake API server's ServiceAccount issuer
	Audience       = "api://AzureADTokenExchange"
	DBAudience     = "https://ossrdbms-aad.database.windows.net"
)

// Options shape a stack.
type Options struct {
	TokenLifetime time.Duration // Entra access tokens; default 1h
	Backdate      time.Duration // iat in the past, as Entra does; default 0 in tests
	Log           func(format string, args ...any)
}

// Stack is a running test world.
type Stack struct {
	Root, Dir, PKI       string
	Fakes                string // the fakes binary
	Bin                  string // the controller binary
	PGPort               int
	EntraURL             string
	IMDSURL              string
	KubeURL              string
	AdminKubeconfig      string
	ControllerKubeconfig string
	FederatedTokenFile   string
	opts                 Options
	mu                   sync.Mutex
	procs                []*Proc
	pgStarted            bool
	realKube             bool
	entra                *Kube  // Entra's client, made by the first call of Entra
	Kubectl              string // kubectl for the real API server
}

// Proc is a started process whose output goes to a log file.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
	err  error
}

// RepoRoot finds the repository root from the working directory.
func RepoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "tests", "pg", "pgstack")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("cannot find the repository root (tests/pg/pgstack)")
		}
		d = p
	}
}

// Start makes the PKI and starts PostgreSQL and the fake Entra endpoint.
// Call StartFakeKube (or use a real API server) and StartController after.
func Start(opts Options) (*Stack, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = time.Hour
	}
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	dir, err := os.MkdirTemp("", "pgtr-stack-")
	if err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	s := &Stack{Root: root, Dir: dir, PKI: filepath.Join(dir, "pki"), opts: opts,
		Fakes: EnvOr("FAKES", filepath.Join(root, "build/tests/fakes")),
		Bin:   EnvOr("PGTR_BIN", filepath.Join(root, "build/san/bin/pgtoken-rotator"))}
	if err := s.start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// EnvOr returns the environment variable k, or def when it is unset or empty.
func EnvOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (s *Stack) start() error {
	if err := pki.Init(s.PKI); err != nil {
		return err
	}
	if err := s.startPG(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := s.AddRole(ControllerRole, ControllerOID, "app"); err != nil {
		return err
	}
	if err := s.startEntra(); err != nil {
		return fmt.Errorf("entra: %w", err)
	}
	return s.writeFederatedToken()
}

func (s *Stack) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "FAKES="+s.Fakes)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (s *Stack) startPG() error {
	pgdir := filepath.Join(s.Dir, "pg")
	if err := os.MkdirAll(pgdir, 0o755); err != nil {
		return err
	}
	if err := os.Symlink(s.PKI, filepath.Join(pgdir, "pki")); err != nil {
		return err
	}
	s.pgStarted = true
	if _, err := s.run(filepath.Join(s.Root, "tests/pg/pgstack"), "start", pgdir); err != nil {
		return err
	}
	env, err := readEnvFile(filepath.Join(pgdir, "pg.env"))
	if err != nil {
		return err
	}
	s.PGPort, err = strconv.Atoi(env["PGSTACK_PORT"])
	return err
}

// AddRole creates a Postgres role mapped to an Entra object id (and a database it owns).
func (s *Stack) AddRole(role, oid, db string) error {
	args := []string{"role", filepath.Join(s.Dir, "pg"), role, oid}
	if db != "" {
		args = append(args, db)
	}
	_, err := s.run(filepath.Join(s.Root, "tests/pg/pgstack"), args...)
	return err
}

// PSQLAdmin runs SQL as the superuser over the socket.
func (s *Stack) PSQLAdmin(sql string) (string, error) {
	return s.run(filepath.Join(s.Root, "tests/pg/pgstack"), "psql", filepath.Join(s.Dir, "pg"),
		"-Atqc", sql)
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if ok {
			m[k] = strings.Trim(v, `"'`)
		}
	}
	return m, sc.Err()
}

// EntraConfig is the fake Entra configuration the stack writes.
func (s *Stack) EntraConfig() map[string]any {
	return map[string]any{
		"tenant_id":        TenantID,
		"token_lifetime_s": int(s.opts.TokenLifetime / time.Second),
		"backdate_s":       int(s.opts.Backdate / time.Second),
		"issuers": []any{map[string]any{"issuer": Issuer,
			"public_key_file": filepath.Join(s.PKI, "sa.pub")}},
		"apps": []any{map[string]any{
			"client_id": ControllerApp, "object_id": ControllerOID, "display_name": ControllerRole,
			"federated_credentials": []any{map[string]any{"issuer": Issuer,
				"subject":   "system:serviceaccount:" + ControllerNS + ":" + ControllerSA,
				"audiences": []string{Audience}}},
		}},
	}
}

func (s *Stack) startEntra() error {
	cfg := filepath.Join(s.Dir, "entra.json")
	b, _ := json.MarshalIndent(s.EntraConfig(), "", "  ")
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		return err
	}
	addr := filepath.Join(s.Dir, "entra.addr")
	if _, err := s.Spawn("entra", nil, s.Fakes, "entra", "--pki", s.PKI, "--config", cfg,
		"--addr", "127.0.0.1:0", "--imds-addr", "127.0.0.1:0", "--addr-file", addr); err != nil {
		return err
	}
	var a struct{ Entra, IMDS string }
	if err := waitJSON(addr, &a); err != nil {
		return err
	}
	s.EntraURL, s.IMDSURL = a.Entra, a.IMDS
	return nil
}

// EntraControl calls the fake Entra's control API (PATH under /_fake/) over TLS
// verified with the stack's CA, sending body as JSON (unless nil) and decoding
// the answer into out (unless nil).
func (s *Stack) EntraControl(method, path string, body, out any) error {
	c, err := s.Entra()
	if err != nil {
		return err
	}
	if err := c.JSON(method, "/_fake/"+path, "application/json", body, out); err != nil {
		return fmt.Errorf("fake Entra control: %w", err)
	}
	return nil
}

// Entra returns the stack's client for the fake Entra endpoint (no client
// authentication: its token endpoint takes a form, its control API JSON).
func (s *Stack) Entra() (*Kube, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entra == nil {
		c, err := NewKubeWith(s.EntraURL, s.PKI, KubeOptions{NoAuth: true})
		if err != nil {
			return nil, err
		}
		s.entra = c
	}
	return s.entra, nil
}

// writeFederatedToken writes what the kubelet projects for the controller's
// ServiceAccount: a token from the cluster's issuer for Entra's audience.
func (s *Stack) writeFederatedToken() error {
	key, err := pki.LoadKey(filepath.Join(s.PKI, "sa.key"))
	if err != nil {
		return err
	}
	now := time.Now().Unix()
	tok, err := pki.Sign(key, map[string]any{
		"iss": Issuer, "aud": []string{Audience}, "iat": now, "nbf": now, "exp": now + 24*3600,
		"sub": "system:serviceaccount:" + ControllerNS + ":" + ControllerSA,
	})
	if err != nil {
		return err
	}
	s.FederatedTokenFile = filepath.Join(s.Dir, "azure-identity-token")
	return os.WriteFile(s.FederatedTokenFile, []byte(tok), 0o600)
}

// StartFakeKube starts the fake API server and writes kubeconfigs: admin
// (client certificate) and one for the controller (a bearer token).
func (s *Stack) StartFakeKube() error {
	tokens := filepath.Join(s.Dir, "kube-tokens.csv")
	ctrlToken := "controller-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	line := fmt.Sprintf("%s,system:serviceaccount:%s:%s,uid-ctrl,\"system:serviceaccounts\"\n",
		ctrlToken, ControllerNS, ControllerSA)
	if err := os.WriteFile(tokens, []byte(line), 0o600); err != nil {
		return err
	}
	addr := filepath.Join(s.Dir, "kube.addr")
	if _, err := s.Spawn("kube", nil, s.Fakes, "kube", "--pki", s.PKI, "--addr", "127.0.0.1:0",
		"--addr-file", addr, "--tokens", tokens, "--issuer", Issuer,
		"--bookmark-interval", "2s", "--namespaces", ControllerNS+",default"); err != nil {
		return err
	}
	var a struct{ URL string }
	if err := waitJSON(addr, &a); err != nil {
		return err
	}
	s.KubeURL = a.URL
	s.AdminKubeconfig = filepath.Join(s.Dir, "admin.kubeconfig")
	s.ControllerKubeconfig = filepath.Join(s.Dir, "controller.kubeconfig")
	return os.WriteFile(s.ControllerKubeconfig, []byte(tokenKubeconfig(s.KubeURL,
		filepath.Join(s.PKI, "ca.crt"), ctrlToken)), 0o600)
}

func tokenKubeconfig(url, ca, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: controller
  user:
    token: %s
contexts:
- name: local
  context: {cluster: local, user: controller}
current-context: local
`, url, ca, token)
}

// ControllerEnv is the environment the AKS webhook would inject, pointed at the fakes.
func (s *Stack) ControllerEnv() []string {
	return []string{
		"AZURE_CLIENT_ID=" + ControllerApp,
		"AZURE_TENANT_ID=" + TenantID,
		"AZURE_FEDERATED_TOKEN_FILE=" + s.FederatedTokenFile,
		"AZURE_AUTHORITY_HOST=" + s.EntraURL + "/",
	}
}

// ControllerArgs are the flags that point the controller at the stack.
func (s *Stack) ControllerArgs() []string {
	ca := filepath.Join(s.PKI, "ca.crt")
	return []string{"run", "--kubeconfig", s.ControllerKubeconfig, "--identity-ca-file", ca,
		"--db-ca-file", ca, "--log-level", "debug"}
}

// StartController starts the controller binary with extra flags.
func (s *Stack) StartController(name string, extra ...string) (*Proc, error) {
	return s.Spawn(name, s.ControllerEnv(), s.Bin, append(s.ControllerArgs(), extra...)...)
}

// Spawn starts a process logging to DIR/NAME.log; Close stops it.
func (s *Stack) Spawn(name string, env []string, bin string, args ...string) (*Proc, error) {
	logPath := filepath.Join(s.Dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	s.opts.Log("started %s (pid %d), log %s", name, cmd.Process.Pid, logPath)
	return p, nil
}

// Stop sends SIGTERM and waits up to timeout; then SIGKILL. It returns the
// exit error (nil for status 0).
func (p *Proc) Stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %v after SIGTERM", p.Name, timeout)
	}
}

// Kill sends SIGKILL (a crash) and waits.
func (p *Proc) Kill() {
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output returns the process log so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// Close stops every process, the PostgreSQL server, and removes the
// directory (kept when PGTR_KEEP=1, for debugging).
func (s *Stack) Close() {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(10 * time.Second)
	}
	if s.entra != nil {
		s.entra.Close()
	}
	if s.realKube {
		exec.Command(filepath.Join(s.Root, "tests/realkube/stop.sh"), s.Dir).Run()
	}
	if s.pgStarted {
		s.run(filepath.Join(s.Root, "tests/pg/pgstack"), "stop", filepath.Join(s.Dir, "pg"))
	}
	if os.Getenv("PGTR_KEEP") == "" {
		os.RemoveAll(s.Dir)
	}
}

func waitJSON(path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return json.Unmarshal(b, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not appear within 30s", path)
}
