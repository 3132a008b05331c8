// Command pgtr-bench drives the real pgtoken-rotator binary against the local
// stack (token-validating PostgreSQL, fake Entra ID, fake API server) with N
// managed and M unmanaged Secrets, and reports for each N: time to every
// Secret holding a token, controller CPU and peak RSS, requests made, login
// checks, idle CPU, steady-state CPU per rotation; beside it the floor (the
// same work by a bare client) and the baseline (the bash loop a user would
// write). See bench/README.md.
//
//	pgtr-bench            run (settings from BENCH_* variables)
//	pgtr-bench floor CFG  the floor client (run by the bench itself)
package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"pgtoken-rotator/tests/stack"
)

// Config comes from BENCH_* variables.
type Config struct {
	N            []int    `json:"n"`                         // BENCH_N: managed Secrets per run
	M            int      `json:"m"`                         // BENCH_M: unmanaged Secrets present
	Namespaces   int      `json:"namespaces"`                // BENCH_NAMESPACES
	Roles        int      `json:"roles"`                     // BENCH_ROLES: roles of the controller's identity
	SAIdentities int      `json:"sa_identities"`             // BENCH_SA: namespaces whose Secrets use their own ServiceAccount identity
	Workers      int      `json:"workers"`                   // BENCH_WORKERS: controller --workers (and floor workers)
	IdleS        float64  `json:"idle_s"`                    // BENCH_IDLE_S
	PeriodS      float64  `json:"period_s"`                  // BENCH_PERIOD_S: steady-state rotation period (0: auto)
	Rounds       int      `json:"rounds"`                    // BENCH_ROUNDS: steady-state rounds measured (0: auto)
	Sample       int      `json:"psql_sample"`               // BENCH_SAMPLE: Secrets verified with a real psql login
	BaselineN    int      `json:"baseline_n"`                // BENCH_BASELINE_N: Secrets the script baseline runs on
	Flat         bool     `json:"flat"`                      // BENCH_FLAT: also a cold run with M=0 at the first N
	Timeout      float64  `json:"timeout_scale"`             // BENCH_TIMEOUT_SCALE: multiplies every phase timeout
	Metrics      bool     `json:"metrics_endpoint"`          // BENCH_METRICS: run with --metrics-addr, as the chart does
	Repeat       int      `json:"repeat"`                    // BENCH_REPEAT: cold-start/floor pairs per N
	Phases       []string `json:"phases,omitempty"`          // BENCH_PHASES: of flat,idle,steady,floor,baseline,real (cold always runs)
	CtrlEnv      []string `json:"controller_env,omitempty"`  // BENCH_CTRL_ENV: extra environment for the controller
	Wrap         string   `json:"controller_wrap,omitempty"` // BENCH_WRAP: a profiler in front of the controller
	FailS        float64  `json:"fail_s"`                    // BENCH_FAIL_S: length of each half of the failing-Secrets case
	FailN        int      `json:"fail_n"`                    // BENCH_FAIL_N: its Secrets (0: the largest N)
	FailCause    string   `json:"fail_cause"`                // BENCH_FAIL_CAUSE: role (refused) or down (unreachable)
	Out          string   `json:"-"`                         // BENCH_OUT
	Readme       string   `json:"-"`                         // BENCH_README: READMEs to update with the table (space-separated; default "-": none)
}

func envInt(k string, def int) int {
	if v := os.Getenv(k); v != "" {
		if n, err := strconv.Atoi(strings.ReplaceAll(v, ",", "")); err == nil {
			return n
		}
		fatalf("%s=%q is not a number", k, v)
	}
	return def
}

func envFloat(k string, def float64) float64 {
	if v := os.Getenv(k); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			return n
		}
		fatalf("%s=%q is not a number", k, v)
	}
	return def
}

func loadConfig(root string) Config {
	c := Config{M: envInt("BENCH_M", 100000), Namespaces: envInt("BENCH_NAMESPACES", 20),
		Roles: envInt("BENCH_ROLES", 8), SAIdentities: envInt("BENCH_SA", 2),
		Workers: envInt("BENCH_WORKERS", 4), IdleS: envFloat("BENCH_IDLE_S", 30),
		PeriodS: envFloat("BENCH_PERIOD_S", 0), Rounds: envInt("BENCH_ROUNDS", 0),
		Sample: envInt("BENCH_SAMPLE", 10), BaselineN: envInt("BENCH_BASELINE_N", 100),
		Repeat: envInt("BENCH_REPEAT", 3), Metrics: os.Getenv("BENCH_METRICS") != "0",
		Flat: os.Getenv("BENCH_FLAT") != "0", Timeout: envFloat("BENCH_TIMEOUT_SCALE", 1),
		FailS: envFloat("BENCH_FAIL_S", 600), FailN: envInt("BENCH_FAIL_N", 0), FailCause: envOr("BENCH_FAIL_CAUSE", "role"),
		Out:    envOr("BENCH_OUT", filepath.Join(root, "bench/results/latest.json")),
		Readme: readmes()}
	c.Phases = strings.FieldsFunc(os.Getenv("BENCH_PHASES"), func(r rune) bool { return r == ' ' || r == ',' })
	// The image's environment first (what users run), then BENCH_CTRL_ENV, whose
	// entries win.
	c.CtrlEnv = append(imageEnv(filepath.Join(root, "Dockerfile")), strings.Fields(os.Getenv("BENCH_CTRL_ENV"))...)
	c.Wrap = os.Getenv("BENCH_WRAP")
	ns := envOr("BENCH_N", "100 1000 10000")
	for _, f := range strings.FieldsFunc(ns, func(r rune) bool { return r == ' ' || r == ',' }) {
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n < 1 {
			fatalf("BENCH_N: %q is not a positive number", f)
		}
		c.N = append(c.N, n)
	}
	sort.Ints(c.N)
	if _, ok := failCauses[c.FailCause]; !ok || c.FailS < 1 || c.FailN < 0 {
		fatalf("need BENCH_FAIL_CAUSE role or down, BENCH_FAIL_S >= 1, BENCH_FAIL_N >= 0")
	}
	if c.Namespaces < 1 || c.Roles < 1 || c.SAIdentities < 0 || c.SAIdentities >= c.Namespaces || c.Workers < 1 {
		fatalf("need BENCH_NAMESPACES >= 1, BENCH_ROLES >= 1, 0 <= BENCH_SA < BENCH_NAMESPACES, BENCH_WORKERS >= 1")
	}
	return c
}

// readmes are the files BENCH_README names to put the table in: none by default
// ("-"); `make bench-readme` names the two READMEs.
func readmes() string {
	if r := os.Getenv("BENCH_README"); r != "-" {
		return r
	}
	return ""
}

// imageEnv returns the KEY=VALUE pairs of the ENV instructions of the Dockerfile's
// last stage (the runtime image), so that the controller runs here with the
// environment it has in a pod. Only the ENV KEY=VALUE ... form, without quotes.
func imageEnv(dockerfile string) []string {
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		fatalf("reading the image's environment: %v", err)
	}
	var env []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			env = nil
		case "ENV":
			for _, kv := range f[1:] {
				if !strings.Contains(kv, "=") || strings.ContainsAny(kv, "\"'\\$") {
					fatalf("%s: %q: only ENV KEY=VALUE without quotes is understood", dockerfile, line)
				}
				env = append(env, kv)
			}
		}
	}
	return env
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

var logStart = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %6.1fs] %s\n", time.Since(logStart).Seconds(), fmt.Sprintf(format, args...))
}

var cleanup func()

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pgtr-bench: "+format+"\n", args...)
	if cleanup != nil {
		cleanup()
	}
	os.Exit(1)
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "floor" {
		if err := runFloor(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 3 && os.Args[1] == "report" {
		// Re-render the table (and the README) from a saved results file.
		if err := report(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: pgtr-bench            run (settings in BENCH_* variables; see bench/README.md)\n"+
			"       pgtr-bench report FILE  print the table of a results file again (and put it in the READMEs BENCH_README names)")
		os.Exit(2)
	}
	root, err := stack.RepoRoot()
	if err != nil {
		fatalf("%v", err)
	}
	os.Setenv("PGTR_BIN", envOr("PGTR_BIN", filepath.Join(root, "build/bin/pgtoken-rotator")))
	os.Setenv("FAKES", envOr("FAKES", filepath.Join(root, "build/tests/fakes")))
	b := &bench{cfg: loadConfig(root), root: root}
	b.res.Machine = machine(root)
	b.res.Config = b.cfg
	b.res.Controller = os.Getenv("PGTR_BIN")
	if out, err := exec.Command(b.res.Controller, "version").Output(); err == nil {
		b.res.ControllerVersion = strings.TrimSpace(string(out))
	}
	if bin, err := os.ReadFile(b.res.Controller); err == nil {
		b.res.ControllerSHA256 = fmt.Sprintf("%x", sha256.Sum256(bin))
	}
	if err := b.setup(); err != nil {
		b.close()
		fatalf("setup: %v", err)
	}
	cleanup = b.close
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		logf("%v: stopping everything", s)
		b.close()
		os.Exit(130)
	}()
	func() {
		defer func() {
			if e := recover(); e != nil {
				b.close()
				panic(e)
			}
		}()
		b.run()
	}()
	b.close()
	b.res.Machine.LoadAvgEnd = loadavg()
	b.evaluate()
	table := b.table()
	fmt.Print(table)
	if err := b.write(table); err != nil {
		fatalf("%v", err)
	}
	if failed := b.failures(); len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "pgtr-bench: FAILED: %s\n", strings.Join(failed, "; "))
		os.Exit(1)
	}
}

// ---- the world ----------------------------------------------------------------------------

type bench struct {
	cfg         Config
	root        string
	s           *stack.Stack
	k           *stack.Kube // admin
	ctrlToken   string
	real        bool // the real kube-apiserver tier (tests/realkube) instead of the fake
	kubePID     int
	entraPID    int
	pgPID       int
	ctrl        *stack.Proc
	ctrlSeq     int
	metricsAddr string
	withMetrics bool // --metrics-addr even with BENCH_METRICS=0 (a phase reads /metrics)
	unmanaged   int
	closeOnce   sync.Once
	res         Results
}

// apiClient is the bench's client of the API server: HTTP/2 when the server
// offers it, keep-alive, at most conns connections (a floor worker owns one, as
// the controller's workers do); the admin certificate when bearer is empty, else
// that token only; two minutes per request (pages of large lists).
func apiClient(url, pkiDir, bearer string, conns int) (*stack.Kube, error) {
	return stack.NewKubeWith(url, pkiDir, stack.KubeOptions{Bearer: bearer, HTTP2: true, Conns: conns,
		Timeout: 2 * time.Minute})
}

func (b *bench) close() {
	b.closeOnce.Do(func() {
		if b.ctrl != nil && !b.ctrl.Exited() {
			b.ctrl.Stop(10 * time.Second)
		}
		if b.s != nil {
			b.s.Close()
		}
	})
}

const (
	managedLabel = "pgtoken.io/managed"
	selector     = "pgtoken.io/managed=true"
	benchDB      = "bench"
	saName       = "app-db"
)

func saClient(i int) string { return fmt.Sprintf("b0000000-0000-4000-8000-%012d", i) }
func saOID(i int) string    { return fmt.Sprintf("b1000000-0000-4000-8000-%012d", i) }
func nsName(i int) string   { return fmt.Sprintf("bench-%02d", i) }

func (b *bench) setup() error {
	var err error
	api := "fake API server"
	if b.real {
		api = "real kube-apiserver and etcd (tests/realkube; the first build takes 10 to 20 minutes)"
	}
	logf("starting the stack (PostgreSQL, fake Entra, %s)", api)
	b.s, err = stack.Start(stack.Options{TokenLifetime: time.Hour, Log: logf})
	if err != nil {
		return err
	}
	if b.real {
		err = b.s.StartRealKube()
	} else {
		err = b.s.StartFakeKube()
	}
	if err != nil {
		return err
	}
	if b.k, err = apiClient(b.s.KubeURL, b.s.PKI, "", 8); err != nil {
		return err
	}
	if b.ctrlToken, err = b.s.ControllerToken(); err != nil {
		return err
	}
	if b.real {
		b.kubePID = pidFile(filepath.Join(b.s.Dir, "kube-apiserver.pid"))
	} else {
		b.kubePID = findPID(filepath.Join(b.s.Dir, "kube.addr"))
	}
	b.entraPID = findPID(filepath.Join(b.s.Dir, "entra.addr"))
	if pm, err := os.ReadFile(filepath.Join(b.s.Dir, "pg/pgdata/postmaster.pid")); err == nil {
		b.pgPID, _ = strconv.Atoi(strings.SplitN(string(pm), "\n", 2)[0])
	}
	if b.real {
		// ServiceAccount identities: TokenRequest for the namespace's ServiceAccount, as the
		// chart grants it (serviceAccountIdentities).
		if err := b.grantTokenRequests(); err != nil {
			return err
		}
	} else if err := b.k.JSON("POST", "/_fake/config", "application/json", map[string]any{"bookmark_interval_ms": 60000}, nil); err != nil {
		// Bookmarks about once a minute, as a real API server sends them (the test stack
		// asks for 2 s); applies to watches started from now on.
		return err
	}
	// Count logins the way the server sees them.
	for _, q := range []string{"ALTER SYSTEM SET log_connections = on", "SELECT pg_reload_conf()"} {
		if out, err := b.s.PSQLAdmin(q); err != nil {
			return fmt.Errorf("%s: %v %s", q, err, out)
		}
	}
	logf("roles: %d for the controller's identity, %d ServiceAccount identities", b.cfg.Roles, b.cfg.SAIdentities)
	for r := 0; r < b.cfg.Roles; r++ {
		db := ""
		if r == 0 {
			db = benchDB
		}
		if err := b.s.AddRole(fmt.Sprintf("bench-role-%d", r), stack.ControllerOID, db); err != nil {
			return err
		}
	}
	cfg := b.s.EntraConfig()
	apps := cfg["apps"].([]any)
	for i := 0; i < b.cfg.SAIdentities; i++ {
		if err := b.s.AddRole(fmt.Sprintf("bench-sa-%d", i), saOID(i), ""); err != nil {
			return err
		}
		apps = append(apps, map[string]any{"client_id": saClient(i), "object_id": saOID(i),
			"display_name": fmt.Sprintf("bench-sa-%d", i),
			"federated_credentials": []any{map[string]any{"issuer": stack.Issuer,
				"subject": "system:serviceaccount:" + nsName(i) + ":" + saName, "audiences": []string{stack.Audience}}}})
	}
	cfg["apps"] = apps
	if err := b.s.EntraControl("PUT", "config", cfg, nil); err != nil {
		return err
	}
	for i := 0; i < b.cfg.Namespaces; i++ {
		if err := b.k.JSON("POST", "/api/v1/namespaces", "application/json", map[string]any{
			"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": nsName(i)}}, nil); err != nil {
			return err
		}
		if i < b.cfg.SAIdentities {
			if err := b.k.JSON("POST", "/api/v1/namespaces/"+nsName(i)+"/serviceaccounts", "application/json",
				map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{
					"name": saName, "namespace": nsName(i),
					"annotations": map[string]string{"azure.workload.identity/client-id": saClient(i)}}}, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// managedSecret is one Secret of the layout.
type managedSecret struct {
	NS, Name, User string
	SA             bool
	Port           int // 0: the stack's PostgreSQL
}

// layout spreads n Secrets over the namespaces; Secrets in the first SAIdentities
// namespaces use that namespace's ServiceAccount identity (and its role), the
// others the controller's identity with one of Roles roles.
func (b *bench) layout(n int) []managedSecret {
	out := make([]managedSecret, n)
	for i := range out {
		nsi := i % b.cfg.Namespaces
		s := managedSecret{NS: nsName(nsi), Name: fmt.Sprintf("db-%05d", i)}
		if nsi < b.cfg.SAIdentities {
			s.User, s.SA = fmt.Sprintf("bench-sa-%d", nsi), true
		} else {
			s.User = fmt.Sprintf("bench-role-%d", (i/b.cfg.Namespaces)%b.cfg.Roles)
		}
		out[i] = s
	}
	return out
}

// identities and distinct (user, identity) pairs the layout needs: the expected
// token requests and login checks for one full rotation.
func expected(l []managedSecret) (idents, logins int) {
	id, pairs := map[string]bool{}, map[string]bool{}
	for _, s := range l {
		k := "wi"
		if s.SA {
			k = "sa:" + s.NS
		}
		id[k] = true
		pairs[k+"|"+s.User] = true
	}
	return len(id), len(pairs)
}

func (b *bench) annotations(s managedSecret) map[string]string {
	a := map[string]string{
		"pgtoken.io/host":     "localhost",
		"pgtoken.io/port":     strconv.Itoa(b.s.PGPort),
		"pgtoken.io/user":     s.User,
		"pgtoken.io/database": benchDB,
	}
	if s.SA {
		a["pgtoken.io/service-account"] = saName
	}
	if s.Port != 0 {
		a["pgtoken.io/port"] = strconv.Itoa(s.Port)
	}
	return a
}

// parallel runs fn(i) for i < n on w goroutines; the first error wins.
func parallel(n, w int, fn func(i int) error) error {
	var mu sync.Mutex
	var first error
	var next int
	var wg sync.WaitGroup
	for g := 0; g < w; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func (b *bench) createManaged(l []managedSecret) error {
	t := time.Now()
	err := parallel(len(l), 16, func(i int) error {
		s := l[i]
		return b.k.JSON("POST", "/api/v1/namespaces/"+s.NS+"/secrets", "application/json", map[string]any{
			"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
			"metadata": map[string]any{"name": s.Name, "namespace": s.NS,
				"labels": map[string]string{managedLabel: "true"}, "annotations": b.annotations(s)},
			"data": map[string]string{"unrelated": base64.StdEncoding.EncodeToString([]byte("keep-me"))}}, nil)
	})
	logf("created %d managed Secrets in %.1fs", len(l), time.Since(t).Seconds())
	return err
}

// deleteManaged removes every managed Secret and the Events about them.
func (b *bench) deleteManaged() error {
	for i := 0; i < b.cfg.Namespaces; i++ {
		if err := b.k.JSON("DELETE", "/api/v1/namespaces/"+nsName(i)+"/secrets?labelSelector="+url.QueryEscape(selector), "", nil, nil); err != nil {
			return err
		}
		if err := b.k.JSON("DELETE", "/api/v1/namespaces/"+nsName(i)+"/events", "", nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// createUnmanaged adds Secrets (up to m in all) the controller must not pay for:
// other labels, a certificate-sized value, in the same namespaces.
func (b *bench) createUnmanaged(m int) error {
	if m <= b.unmanaged {
		return nil
	}
	t := time.Now()
	blob := make([]byte, 1200)
	rand.New(rand.NewSource(1)).Read(blob)
	val := base64.StdEncoding.EncodeToString(blob)
	from := b.unmanaged
	err := parallel(m-from, 32, func(i int) error {
		i += from
		ns := nsName(i % b.cfg.Namespaces)
		return b.k.JSON("POST", "/api/v1/namespaces/"+ns+"/secrets", "application/json", map[string]any{
			"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
			"metadata": map[string]any{"name": fmt.Sprintf("other-%06d", i), "namespace": ns,
				"labels":      map[string]string{"app.kubernetes.io/name": "other", "pgtoken.io/managed": "false"},
				"annotations": map[string]string{"owner": "someone-else"}},
			"data": map[string]string{"tls.crt": val, "tls.key": val[:400]}}, nil)
	})
	if err == nil {
		b.unmanaged = m
	}
	logf("created %d unmanaged Secrets in %.1fs", m-from, time.Since(t).Seconds())
	return err
}

// ---- tracking Secrets through the API ------------------------------------------------------

type secState struct {
	hasValue bool
	issuedAt int64
	expires  string
}

// tracker follows the managed Secrets through one watch and tells when every
// one satisfies the current predicate.
type tracker struct {
	mu     sync.Mutex
	st     map[string]secState
	pred   func(secState) bool
	target int
	count  int
	done   chan time.Time
	cancel context.CancelFunc
}

func stateOf(s *stack.Secret) secState {
	st := secState{hasValue: s.Data["password"] != "" && s.Data["DATABASE_URL"] != "",
		expires: s.Metadata.Annotations["pgtoken.io/status.expires-at"]}
	if t, err := time.Parse(time.RFC3339, s.Metadata.Annotations["pgtoken.io/status.issued-at"]); err == nil {
		st.issuedAt = t.Unix()
	}
	return st
}

func (b *bench) startTracker(n int) (*tracker, error) {
	tr := &tracker{st: map[string]secState{}, pred: func(secState) bool { return false }}
	items, rv, err := b.k.ListSecrets(selector, 500)
	if err != nil {
		return nil, err
	}
	for i := range items {
		tr.st[items[i].Metadata.Namespace+"/"+items[i].Metadata.Name] = stateOf(&items[i])
	}
	wc, err := apiClient(b.s.KubeURL, b.s.PKI, "", 1)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.cancel = func() { cancel(); wc.Close() }
	watches := b.snap().api["watch\x00secrets\x00200"]
	go func() {
		err := wc.WatchSecrets(ctx, selector, rv, func(s *stack.Secret) {
			tr.update(s.Metadata.Namespace+"/"+s.Metadata.Name, stateOf(s))
		})
		if err != nil && ctx.Err() == nil {
			logf("tracking watch ended: %v", err)
		}
	}()
	// Wait until the API server has counted this watch, so that it is not
	// counted as the controller's (the fake counts requests; a real one is not asked).
	for i := 0; i < 100 && !b.real && b.snap().api["watch\x00secrets\x00200"] == watches; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	return tr, nil
}

func (tr *tracker) update(key string, s secState) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	old, had := tr.st[key]
	tr.st[key] = s
	if had && tr.pred(old) {
		tr.count--
	}
	if tr.pred(s) {
		tr.count++
	}
	if tr.done != nil && tr.count >= tr.target {
		tr.done <- time.Now()
		tr.done = nil
	}
}

// expect sets the predicate and returns a channel that gets the time when
// target Secrets satisfy it (at once if they already do).
func (tr *tracker) expect(target int, pred func(secState) bool) <-chan time.Time {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	ch := make(chan time.Time, 1)
	tr.pred, tr.target, tr.count = pred, target, 0
	for _, s := range tr.st {
		if pred(s) {
			tr.count++
		}
	}
	if tr.count >= target {
		ch <- time.Now()
	} else {
		tr.done = ch
	}
	return ch
}

func (tr *tracker) satisfied() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.count
}

// ---- counters -------------------------------------------------------------------------------

// snapshot holds every counter a phase is measured with.
type snapshot struct {
	at       time.Time
	api      map[string]int // "verb resource code" -> count (fake API server)
	tokens   int            // fake Entra token endpoint requests
	logins   int            // PostgreSQL "connection authorized" lines for bench roles
	badLogin int
	pgConns  int // PostgreSQL "connection received" lines over TCP: every login attempt that reached it
	pgFatal  int // PostgreSQL FATAL lines: connections it refused (a login rejected, ...)
	kube     cpuTimes
	entra    cpuTimes
	pg       cpuTimes
}

type statsRow struct {
	Verb, Resource string
	Code, Count    int
}

func (b *bench) snap() snapshot {
	s := snapshot{at: time.Now(), api: map[string]int{}}
	var st struct{ Requests []statsRow }
	if err := b.k.JSON("GET", "/_fake/stats", "", nil, &st); err == nil {
		for _, r := range st.Requests {
			s.api[fmt.Sprintf("%s\x00%s\x00%d", r.Verb, r.Resource, r.Code)] += r.Count
		}
	}
	var es struct {
		Endpoints map[string]map[string]int `json:"endpoints"`
	}
	if err := b.s.EntraControl("GET", "stats", nil, &es); err == nil {
		s.tokens = es.Endpoints["token"]["total"]
	}
	if log, err := os.ReadFile(filepath.Join(b.s.Dir, "pg/postgres.log")); err == nil {
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, "connection authorized: user=bench-") {
				s.logins++
			} else if strings.Contains(l, "authentication failed for user \"bench-") {
				s.badLogin++
			}
			if strings.Contains(l, "connection received: host=") && !strings.Contains(l, "host=[local]") {
				s.pgConns++
			}
			if strings.Contains(l, "FATAL:") {
				s.pgFatal++
			}
		}
	}
	s.kube, _ = readCPU(b.kubePID)
	s.entra, _ = readCPU(b.entraPID)
	s.pg, _ = readCPU(b.pgPID)
	return s
}

// apiDelta is what happened on the API server between two snapshots.
func apiDelta(a, z snapshot) (map[string]int, int) {
	d := map[string]int{}
	total := 0
	for k, v := range z.api {
		if n := v - a.api[k]; n > 0 {
			f := strings.Split(k, "\x00") // verb, resource, code
			if f[1] == "" {
				f[1] = "(non-resource)"
			}
			key := f[0] + " " + f[1]
			if f[2] != "200" && f[2] != "201" {
				key += " " + f[2]
			}
			d[key] += n
			total += n
		}
	}
	return d, total
}

func patchesOK(s snapshot) int { return s.api["patch\x00secrets\x00200"] }

// sampler records the successful Secret patches every interval (a timeline
// of the write rate) until stopped.
type sampler struct {
	stop chan struct{}
	done chan []float64
}

func (b *bench) startSampler(interval time.Duration) *sampler {
	sm := &sampler{make(chan struct{}), make(chan []float64, 1)}
	go func() {
		var out []float64
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			var st struct{ Requests []statsRow }
			n := 0
			if err := b.k.JSON("GET", "/_fake/stats", "", nil, &st); err == nil {
				for _, r := range st.Requests {
					if r.Verb == "patch" && r.Resource == "secrets" && r.Code == 200 {
						n += r.Count
					}
				}
			}
			out = append(out, float64(n))
			select {
			case <-sm.stop:
				sm.done <- out
				return
			case <-t.C:
			}
		}
	}()
	return sm
}

// finish returns the patches made in each interval since the start.
func (sm *sampler) finish() []int {
	close(sm.stop)
	v := <-sm.done
	var d []int
	for i := 1; i < len(v); i++ {
		d = append(d, int(v[i]-v[0])-sumInts(d))
	}
	return d
}

func sumInts(v []int) int {
	t := 0
	for _, x := range v {
		t += x
	}
	return t
}

// ---- the controller --------------------------------------------------------------------------

func (b *bench) startController(extra ...string) (*stack.Proc, error) {
	args := []string{}
	base := b.s.ControllerArgs()
	for i := 0; i < len(base); i++ {
		if base[i] == "--log-level" { // the stack asks for debug; users run info
			i++
			continue
		}
		args = append(args, base[i])
	}
	args = append(args, "--log-level", "info", "--workers", strconv.Itoa(b.cfg.Workers))
	if b.cfg.Metrics || b.withMetrics {
		// As the chart runs it: /metrics, /healthz and /readyz on a port.
		if p := freePort(); p != 0 {
			b.metricsAddr = fmt.Sprintf("127.0.0.1:%d", p)
			args = append(args, "--metrics-addr", b.metricsAddr)
		}
	}
	args = append(args, extra...)
	b.ctrlSeq++
	bin := b.s.Bin
	if w := strings.Fields(b.cfg.Wrap); len(w) > 0 {
		// A profiler in front (valgrind --tool=callgrind ..., massif): timings are then meaningless.
		for i := range w {
			w[i] = strings.ReplaceAll(w[i], "%n", strconv.Itoa(b.ctrlSeq))
		}
		args = append(append(w[1:], bin), args...)
		bin = w[0]
	}
	p, err := b.s.Spawn(fmt.Sprintf("controller-%d", b.ctrlSeq), append(b.s.ControllerEnv(), b.cfg.CtrlEnv...), bin, args...)
	if err == nil {
		b.ctrl = p
	}
	return p, err
}

// stopController stops it with SIGTERM and reports how long that took.
func (b *bench) stopController() (float64, error) {
	if b.ctrl == nil {
		return 0, nil
	}
	t := time.Now()
	err := b.ctrl.Stop(15 * time.Second)
	b.ctrl = nil
	return time.Since(t).Seconds(), err
}

func ctxSwitches(pid int) int64 {
	var total int64
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "voluntary_ctxt_switches:") || strings.HasPrefix(l, "nonvoluntary_ctxt_switches:") {
				f := strings.Fields(l)
				n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
				total += n
			}
		}
	}
	return total
}

// taskStats is per thread: voluntary+involuntary context switches and CPU seconds.
func taskStats(pid int) map[int][2]float64 {
	out := map[int][2]float64{}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, t := range tasks {
		tid, _ := strconv.Atoi(filepath.Base(t))
		var sw float64
		if b, err := os.ReadFile(t + "/status"); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "voluntary_ctxt_switches:") || strings.HasPrefix(l, "nonvoluntary_ctxt_switches:") {
					f := strings.Fields(l)
					n, _ := strconv.ParseFloat(f[len(f)-1], 64)
					sw += n
				}
			}
		}
		c, _ := readCPU2(t + "/stat")
		out[tid] = [2]float64{sw, c.Own()}
	}
	return out
}

func threads(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	return len(tasks)
}

// ---- results ---------------------------------------------------------------------------------

// Phase is one measured stretch of a run.
type Phase struct {
	Name          string         `json:"name"`
	N             int            `json:"n"`
	M             int            `json:"m"`
	Completed     int            `json:"completed"`
	TimedOut      bool           `json:"timed_out,omitempty"`
	WallS         float64        `json:"wall_s"`
	CPUS          float64        `json:"cpu_s"` // controller utime+stime over the phase
	UserS         float64        `json:"user_s"`
	SysS          float64        `json:"sys_s"`
	PeakRSSKB     int64          `json:"peak_rss_kb,omitempty"` // VmHWM at the end of the phase
	RSSKB         int64          `json:"rss_kb,omitempty"`
	RssAnonKB     int64          `json:"rss_anon_kb,omitempty"` // heap and stacks (RssAnon at the end of the phase)
	RssFileKB     int64          `json:"rss_file_kb,omitempty"` // mapped binary and shared libraries
	Threads       int            `json:"threads,omitempty"`
	CtxSwitches   int64          `json:"ctx_switches,omitempty"`
	API           map[string]int `json:"api_requests"`
	APITotal      int            `json:"api_requests_total"`
	TokenRequests int            `json:"token_requests"`
	LoginChecks   int            `json:"login_checks"`
	FailedLogins  int            `json:"failed_logins,omitempty"`
	Rotations     int            `json:"rotations"` // successful Secret patches
	KubeCPUS      float64        `json:"apiserver_cpu_s"`
	EntraCPUS     float64        `json:"entra_cpu_s"`
	PGCPUS        float64        `json:"postgres_cpu_s"`
	Expected      map[string]int `json:"expected,omitempty"`
	Notes         []string       `json:"notes,omitempty"`
	Extra         map[string]any `json:"extra,omitempty"`
}

func (p *Phase) mem(pid int) {
	m, _ := memStatus(pid)
	p.PeakRSSKB, p.RSSKB, p.RssAnonKB, p.RssFileKB = m["VmHWM"], m["VmRSS"], m["RssAnon"], m["RssFile"]
}

func (p *Phase) fill(a, z snapshot) {
	p.API, p.APITotal = apiDelta(a, z)
	p.TokenRequests = z.tokens - a.tokens
	p.LoginChecks = z.logins - a.logins
	p.FailedLogins = z.badLogin - a.badLogin
	p.Rotations = patchesOK(z) - patchesOK(a)
	p.KubeCPUS = round3(z.kube.Total() - a.kube.Total())
	p.EntraCPUS = round3(z.entra.Total() - a.entra.Total())
	p.PGCPUS = round3(z.pg.Total() - a.pg.Total())
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// Run is everything measured for one N.
type Run struct {
	N         int     `json:"n"`
	M         int     `json:"m"`
	Completed bool    `json:"completed"`
	Error     string  `json:"error,omitempty"`
	ColdM0    *Phase  `json:"cold_m0,omitempty"`
	Cold      *Phase  `json:"cold,omitempty"`
	Verify    *Verify `json:"verify,omitempty"`
	Idle      *Phase  `json:"idle,omitempty"`
	Steady    *Phase  `json:"steady,omitempty"`
	Floor     *Phase  `json:"floor,omitempty"`
	// every cold start and floor of this N (the first ones are Cold and Floor)
	ColdSamplesS    []float64 `json:"cold_wall_samples_s"`
	ColdCPUSamplesS []float64 `json:"cold_cpu_samples_s"`
	FloorSamplesS   []float64 `json:"floor_wall_samples_s"`
	// derived
	ColdMedianS            float64 `json:"cold_wall_median_s"`
	FloorMedianS           float64 `json:"floor_wall_median_s"`
	CPUPerSecretColdMs     float64 `json:"cpu_per_secret_cold_ms"`
	CPUPerRotationSteadyMs float64 `json:"cpu_per_rotation_steady_ms"`
	ColdVsFloor            float64 `json:"cold_time_vs_floor"`
	ScriptVsSteadyCPU      float64 `json:"script_cpu_vs_controller_steady"`
	ScriptVsColdCPU        float64 `json:"script_cpu_vs_controller_cold"`
	ScriptWallExtrapolS    float64 `json:"script_wall_extrapolated_s"`
	ScriptCPUExtrapolS     float64 `json:"script_cpu_extrapolated_s"`
	Identities             int     `json:"identities"`
	LoginPairs             int     `json:"distinct_user_identity_pairs"`
}

// Verify is the check that the values are there and log in.
type Verify struct {
	Listed, WithValues, Fresh int
	PsqlTried, PsqlOK         int
	PsqlFailures              []string `json:",omitempty"`
}

// Baseline is the script, run on a subset.
type Baseline struct {
	Secrets         int            `json:"secrets"`
	WallS           float64        `json:"wall_s"`
	CPUS            float64        `json:"cpu_s"` // user+sys of the whole process tree
	UserS           float64        `json:"user_s"`
	SysS            float64        `json:"sys_s"`
	MaxRSSKB        int64          `json:"max_rss_kb"` // largest single process
	WallPerSecretMs float64        `json:"wall_per_secret_ms"`
	CPUPerSecretMs  float64        `json:"cpu_per_secret_ms"`
	API             map[string]int `json:"api_requests"`
	APITotal        int            `json:"api_requests_total"`
	TokenRequests   int            `json:"token_requests"`
	LoginChecks     int            `json:"login_checks"`
	KubeCPUS        float64        `json:"apiserver_cpu_s"`
	Kubectl         string         `json:"kubectl"`
	Error           string         `json:"error,omitempty"`
}

// Target is one goal of the issue, met or not, with the figure behind it.
type Target struct {
	Name   string `json:"name"`
	Met    bool   `json:"met"`
	Figure string `json:"figure"`
}

// Results is bench/results/latest.json.
type Results struct {
	Machine           Machine   `json:"machine"`
	Config            Config    `json:"config"`
	Controller        string    `json:"controller_binary"`
	ControllerVersion string    `json:"controller_version"`
	ControllerSHA256  string    `json:"controller_sha256"`
	Runs              []*Run    `json:"runs"`
	Real              *RealRun  `json:"real_kube,omitempty"`
	Fail              *FailCase `json:"failing_secrets,omitempty"`
	Baseline          *Baseline `json:"baseline,omitempty"`
	Targets           []Target  `json:"targets"`
	DurationS         float64   `json:"bench_duration_s"`
}

// ---- the run ---------------------------------------------------------------------------------

func (b *bench) run() {
	for i, n := range b.cfg.N {
		r := &Run{N: n}
		b.res.Runs = append(b.res.Runs, r)
		if err := b.runN(r, i == 0); err != nil {
			r.Error = err.Error()
			logf("N=%d: %v", n, err)
			if b.ctrl != nil {
				b.stopController()
			}
			logf("stopping here: larger N are not attempted after a failure")
			break
		}
		r.Completed = true
	}
	if b.phase("fail") && len(b.cfg.N) > 0 {
		n := b.cfg.FailN
		if n == 0 {
			n = b.cfg.N[len(b.cfg.N)-1]
		}
		b.failCase(n)
	}
	if b.phase("real") && len(b.cfg.N) > 0 {
		b.realTier(b.cfg.N[len(b.cfg.N)-1])
	}
	b.res.DurationS = round3(time.Since(logStart).Seconds())
}

// phase tells whether BENCH_PHASES (default: all) includes name.
func (b *bench) phase(name string) bool {
	if len(b.cfg.Phases) == 0 {
		return name != "flat" || b.cfg.Flat
	}
	for _, p := range b.cfg.Phases {
		if p == name {
			return true
		}
	}
	return false
}

func (b *bench) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * b.cfg.Timeout)
}

func (b *bench) runN(r *Run, first bool) error {
	n := r.N
	l := b.layout(n)
	r.Identities, r.LoginPairs = expected(l)
	logf("==== N=%d managed Secrets (%d identities, %d user/identity pairs)", n, r.Identities, r.LoginPairs)
	if err := b.deleteManaged(); err != nil {
		return err
	}
	coldTimeout := b.scale(60*time.Second + time.Duration(n)*30*time.Millisecond)

	if first && b.phase("flat") && b.cfg.M > 0 && b.unmanaged == 0 {
		// Memory flatness: the same cold start with no unmanaged Secrets first.
		if err := b.createManaged(l); err != nil {
			return err
		}
		p, err := b.cold(n, 0, coldTimeout, "cold (M=0)")
		r.ColdM0 = p
		if err != nil {
			return err
		}
		if _, err := b.stopController(); err != nil {
			return fmt.Errorf("controller did not stop cleanly: %v", err)
		}
		if err := b.deleteManaged(); err != nil {
			return err
		}
	}
	if err := b.createUnmanaged(b.cfg.M); err != nil {
		return err
	}
	r.M = b.unmanaged
	if err := b.createManaged(l); err != nil {
		return err
	}
	tr, err := b.startTracker(n)
	if err != nil {
		return err
	}
	defer tr.cancel()

	// Cold start.
	p, err := b.coldTracked(tr, n, b.unmanaged, coldTimeout, "cold")
	r.Cold = p
	if err != nil {
		return err
	}
	if r.Verify, err = b.verify(l); err != nil {
		return err
	}

	// Idle: nothing is due for half an hour.
	if b.phase("idle") {
		r.Idle = b.idle(n)
	}
	stopS, err := b.stopController()
	if err != nil {
		return fmt.Errorf("controller did not stop cleanly: %v", err)
	}
	if r.Idle != nil {
		r.Idle.Extra["sigterm_to_exit_s"] = round3(stopS)
	}

	// Steady state: restart with a short refresh period and measure whole rounds.
	if b.phase("steady") {
		if r.Steady, err = b.steady(tr, n, r.Cold.WallS); err != nil {
			return err
		}
		if _, err := b.stopController(); err != nil {
			return fmt.Errorf("controller did not stop cleanly: %v", err)
		}
	}

	// The floor: the same work by a bare client.
	if b.phase("floor") {
		if r.Floor, err = b.floor(n, r.Cold); err != nil {
			return err
		}
	}
	if first && b.phase("baseline") {
		b.res.Baseline = b.baseline(l)
	}

	// More cold-start/floor pairs (order alternating) so that the ratio is a
	// ratio of medians, not of two samples on a noisy machine.
	if r.Cold != nil {
		r.ColdSamplesS = append(r.ColdSamplesS, r.Cold.WallS)
		r.ColdCPUSamplesS = append(r.ColdCPUSamplesS, r.Cold.CPUS)
	}
	if r.Floor != nil {
		r.FloorSamplesS = append(r.FloorSamplesS, r.Floor.WallS)
	}
	for i := 1; i < b.cfg.Repeat; i++ {
		floorFirst := i%2 == 1
		if floorFirst && b.phase("floor") {
			f, err := b.floor(n, r.Cold)
			if err != nil {
				return err
			}
			r.FloorSamplesS = append(r.FloorSamplesS, f.WallS)
		}
		if err := b.deleteManaged(); err != nil {
			return err
		}
		if err := b.createManaged(l); err != nil {
			return err
		}
		c, err := b.cold(n, b.unmanaged, coldTimeout, fmt.Sprintf("cold #%d", i+1))
		if err != nil {
			return err
		}
		if _, err := b.stopController(); err != nil {
			return fmt.Errorf("controller did not stop cleanly: %v", err)
		}
		r.ColdSamplesS = append(r.ColdSamplesS, c.WallS)
		r.ColdCPUSamplesS = append(r.ColdCPUSamplesS, c.CPUS)
		if c.PeakRSSKB > r.Cold.PeakRSSKB {
			r.Cold.Notes = append(r.Cold.Notes, fmt.Sprintf("cold #%d peaked higher: %d kB", i+1, c.PeakRSSKB))
		}
		if !floorFirst && b.phase("floor") {
			f, err := b.floor(n, r.Cold)
			if err != nil {
				return err
			}
			r.FloorSamplesS = append(r.FloorSamplesS, f.WallS)
		}
	}
	return nil
}

func (b *bench) cold(n, m int, timeout time.Duration, name string) (*Phase, error) {
	tr, err := b.startTracker(n)
	if err != nil {
		return nil, err
	}
	defer tr.cancel()
	return b.coldTracked(tr, n, m, timeout, name)
}

// coldTracked starts the controller with no Secret filled and waits for all n.
func (b *bench) coldTracked(tr *tracker, n, m int, timeout time.Duration, name string) (*Phase, error) {
	p := &Phase{Name: name, N: n, M: m}
	done := tr.expect(n, func(s secState) bool { return s.hasValue && s.expires != "" })
	a := b.snap()
	logf("%s: starting the controller with %d managed and %d unmanaged Secrets", name, n, m)
	sm := b.startSampler(time.Second)
	start := time.Now()
	ctrl, err := b.startController()
	if err != nil {
		return p, err
	}
	pid := ctrl.Cmd.Process.Pid
	var end time.Time
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
wait:
	for {
		select {
		case end = <-done:
			break wait
		case <-deadline:
			p.TimedOut = true
			end = time.Now()
			break wait
		case <-tick.C:
			if ctrl.Exited() {
				return p, fmt.Errorf("%s: the controller exited:\n%s", name, tailLines(ctrl.Output(), 20))
			}
		}
	}
	cpu, _ := readCPU(pid)
	p.Extra = map[string]any{"patches_per_second": sm.finish()}
	out := ctrl.Output()
	if i := strings.Index(out, `"msg":"secrets_listed"`); i >= 0 {
		p.Extra["log_secrets_listed"] = lineAround(out, i)
	}
	for _, ev := range []string{"list_failed", "watch_failed", "watch_expired_relisting", "rotation_failed", "write_conflict_rereading"} {
		if c := strings.Count(out, `"msg":"`+ev+`"`); c > 0 {
			p.Notes = append(p.Notes, fmt.Sprintf("controller log: %d x %s", c, ev))
			if i := strings.Index(out, `"msg":"`+ev+`"`); i >= 0 {
				p.Notes = append(p.Notes, "first: "+redact(lineAround(out, i)))
			}
		}
	}
	p.WallS = round3(end.Sub(start).Seconds())
	p.CPUS, p.UserS, p.SysS = round3(cpu.Own()), round3(cpu.User), round3(cpu.Sys)
	p.mem(pid)
	p.Threads = threads(pid)
	p.Completed = tr.satisfied()
	time.Sleep(2 * time.Second) // let the trailing Event writes land before counting requests
	z := b.snap()
	p.fill(a, z)
	p.Notes = append(p.Notes, fmt.Sprintf("cpu %.3fs at completion, %.3fs 2 s later", cpu.Own(), func() float64 { c, _ := readCPU(pid); return c.Own() }()))
	logf("%s: %d/%d Secrets in %.2fs, cpu %.2fs, peak RSS %d kB, %d API requests, %d token requests, %d logins",
		name, p.Completed, n, p.WallS, p.CPUS, p.PeakRSSKB, p.APITotal, p.TokenRequests, p.LoginChecks)
	if p.TimedOut {
		return p, fmt.Errorf("%s: only %d of %d Secrets were filled within %v", name, p.Completed, n, timeout)
	}
	return p, nil
}

// lineAround returns the line of s holding byte i (a log line, with its time).
func lineAround(s string, i int) string {
	a := strings.LastIndexByte(s[:i], '\n') + 1
	z := strings.IndexByte(s[i:], '\n')
	if z < 0 {
		return s[a:]
	}
	return s[a : i+z]
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// verify checks every value's presence through the API and logs in with a sample.
func (b *bench) verify(l []managedSecret) (*Verify, error) {
	v := &Verify{}
	items, _, err := b.k.ListSecrets(selector, 500)
	if err != nil {
		return nil, err
	}
	v.Listed = len(items)
	now := time.Now()
	byKey := map[string]*stack.Secret{}
	for i := range items {
		s := &items[i]
		byKey[s.Metadata.Namespace+"/"+s.Metadata.Name] = s
		if s.Data["password"] != "" && s.Data["DATABASE_URL"] != "" {
			v.WithValues++
		}
		if exp, err := time.Parse(time.RFC3339, s.Metadata.Annotations["pgtoken.io/status.expires-at"]); err == nil && exp.After(now) {
			v.Fresh++
		}
	}
	// One Secret per (identity, user) pair, then random ones, up to Sample (at least the pairs).
	seen := map[string]bool{}
	var pick []managedSecret
	for _, s := range l {
		k := s.User
		if !seen[k] {
			seen[k] = true
			pick = append(pick, s)
		}
	}
	rng := rand.New(rand.NewSource(int64(len(l))))
	for len(pick) < b.cfg.Sample && len(pick) < len(l) {
		pick = append(pick, l[rng.Intn(len(l))])
	}
	for _, s := range pick {
		sec := byKey[s.NS+"/"+s.Name]
		v.PsqlTried++
		if sec == nil {
			v.PsqlFailures = append(v.PsqlFailures, s.NS+"/"+s.Name+": not listed")
			continue
		}
		u, _ := base64.StdEncoding.DecodeString(sec.Data["DATABASE_URL"])
		cmd := exec.Command("psql", "-X", string(u), "-Atqc", "select current_user")
		cmd.Env = append(os.Environ(), "PGSSLROOTCERT="+filepath.Join(b.s.PKI, "ca.crt"), "PGCONNECT_TIMEOUT=10")
		out, err := cmd.CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != s.User {
			v.PsqlFailures = append(v.PsqlFailures, fmt.Sprintf("%s/%s: %v (logged in as %q)", s.NS, s.Name, err, redact(got)))
			continue
		}
		v.PsqlOK++
	}
	logf("verify: %d listed, %d with values, %d unexpired; psql logins %d/%d", v.Listed, v.WithValues, v.Fresh, v.PsqlOK, v.PsqlTried)
	if v.WithValues != len(l) || v.PsqlOK != v.PsqlTried {
		return v, fmt.Errorf("verify: %d of %d Secrets hold values, %d of %d psql logins worked: %v",
			v.WithValues, len(l), v.PsqlOK, v.PsqlTried, v.PsqlFailures)
	}
	return v, nil
}

func redact(s string) string {
	if strings.Contains(s, "eyJ") {
		return "[redacted]"
	}
	return s
}

// idle measures the controller with nothing due.
func (b *bench) idle(n int) *Phase {
	p := &Phase{Name: "idle", N: n, M: b.unmanaged}
	pid := b.ctrl.Cmd.Process.Pid
	a := b.snap()
	c0, _ := readCPU(pid)
	x0 := ctxSwitches(pid)
	t0 := taskStats(pid)
	logf("idle: %.0fs with nothing due", b.cfg.IdleS)
	time.Sleep(time.Duration(b.cfg.IdleS * float64(time.Second)))
	c1, _ := readCPU(pid)
	z := b.snap()
	d := c1.sub(c0)
	p.WallS = round3(z.at.Sub(a.at).Seconds())
	p.CPUS, p.UserS, p.SysS = round3(d.Own()), round3(d.User), round3(d.Sys)
	p.CtxSwitches = ctxSwitches(pid) - x0
	var per []string
	t1 := taskStats(pid)
	tids := make([]int, 0, len(t1))
	for tid := range t1 {
		tids = append(tids, tid)
	}
	sort.Ints(tids)
	for _, tid := range tids {
		role := "thread"
		if tid == pid {
			role = "main"
		}
		per = append(per, fmt.Sprintf("%s %d: %.0f switches, %.3fs cpu", role, tid, t1[tid][0]-t0[tid][0], t1[tid][1]-t0[tid][1]))
	}
	p.Extra = map[string]any{"per_thread": per}
	if b.metricsAddr != "" {
		// One Prometheus scrape, measured on its own after the idle window.
		c0, _ := readCPU(pid)
		t := time.Now()
		resp, err := http.Get("http://" + b.metricsAddr + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c1, _ := readCPU(pid)
			lines := strings.Count(string(body), "\n")
			p.Extra["metrics_scrape"] = map[string]any{"status": resp.StatusCode, "bytes": len(body), "lines": lines,
				"wall_ms": round3(float64(time.Since(t).Microseconds()) / 1000), "controller_cpu_ms": round3(1000 * (c1.Own() - c0.Own()))}
			logf("idle: one /metrics scrape: %d bytes, %d lines, %.1f ms, controller cpu %.1f ms", len(body), lines,
				float64(time.Since(t).Microseconds())/1000, 1000*(c1.Own()-c0.Own()))
		}
	}
	p.mem(pid)
	p.Threads = threads(pid)
	p.fill(a, z)
	logf("idle: cpu %.3fs over %.1fs (%.4f%% of a core), %d context switches, %d API requests",
		p.CPUS, p.WallS, 100*p.CPUS/p.WallS, p.CtxSwitches, p.APITotal)
	return p
}

// steady restarts the controller with a refresh period P (the refresh ratio
// P/lifetime on the same one-hour tokens) and measures CPU over whole rounds
// of rotations, after the first round that the restart itself triggers.
func (b *bench) steady(tr *tracker, n int, coldS float64) (*Phase, error) {
	const lifetimeS = 3600.0
	period := b.cfg.PeriodS
	if period <= 0 {
		// Over a minute, so that each rotation's Event is written as in
		// production: the recorder sends a repeat at most once a minute
		// (lib/kube/event.c) and counts the others into the next one.
		period = math.Max(65, math.Ceil(3*coldS))
	}
	rounds := b.cfg.Rounds
	if rounds <= 0 {
		rounds = 2
		if n >= 10000 {
			rounds = 1
		}
	}
	ratio := period / lifetimeS
	p := &Phase{Name: "steady", N: n, M: b.unmanaged, Extra: map[string]any{"period_s": period,
		"refresh_ratio": ratio, "rounds": rounds, "token_lifetime_s": lifetimeS}}
	restart := time.Now().Unix()
	first := tr.expect(n, func(s secState) bool { return s.issuedAt >= restart })
	logf("steady: restarting with --refresh-ratio %.5f (a rotation every %.0fs), then %d round(s)", ratio, period, rounds)
	ctrl, err := b.startController("--refresh-ratio", strconv.FormatFloat(ratio, 'f', 6, 64))
	if err != nil {
		return p, err
	}
	pid := ctrl.Cmd.Process.Pid
	select {
	case <-first:
	case <-time.After(b.scale(time.Duration(period+3*coldS+60) * time.Second)):
		p.TimedOut = true
		return p, fmt.Errorf("steady: the restart round did not finish (%d of %d)", tr.satisfied(), n)
	}
	burstCPU, _ := readCPU(pid)
	p.Extra["restart_round_cpu_s"] = round3(burstCPU.Own())
	a := b.snap()
	c0 := burstCPU
	target := patchesOK(a) + rounds*n
	deadline := time.Now().Add(b.scale(time.Duration(float64(rounds)*period*2+3*coldS+60) * time.Second))
	var z snapshot
	var rssTimeline [][2]float64 // seconds into the window, RssAnon MB
	for {
		time.Sleep(500 * time.Millisecond)
		if m, err := memStatus(pid); err == nil && (len(rssTimeline) == 0 || time.Since(a.at).Seconds()-rssTimeline[len(rssTimeline)-1][0] >= 5) {
			rssTimeline = append(rssTimeline, [2]float64{round3(time.Since(a.at).Seconds()), round3(float64(m["RssAnon"]) / 1024)})
		}
		z = b.snap()
		if patchesOK(z) >= target {
			break
		}
		if ctrl.Exited() {
			return p, fmt.Errorf("steady: the controller exited:\n%s", tailLines(ctrl.Output(), 20))
		}
		if time.Now().After(deadline) {
			p.TimedOut = true
			break
		}
	}
	c1, _ := readCPU(pid)
	d := c1.sub(c0)
	p.WallS = round3(z.at.Sub(a.at).Seconds())
	p.CPUS, p.UserS, p.SysS = round3(d.Own()), round3(d.User), round3(d.Sys)
	p.mem(pid)
	p.Threads = threads(pid)
	p.fill(a, z)
	p.Completed = p.Rotations
	p.Extra["rss_anon_mb_timeline"] = rssTimeline
	logf("steady: %d rotations in %.1fs, cpu %.3fs = %.3f ms per rotation, %d token requests, %d logins, peak RSS %d kB",
		p.Rotations, p.WallS, p.CPUS, 1000*p.CPUS/math.Max(1, float64(p.Rotations)), p.TokenRequests, p.LoginChecks, p.PeakRSSKB)
	if p.TimedOut {
		return p, fmt.Errorf("steady: %d of %d rotations within the deadline", p.Rotations, rounds*n)
	}
	return p, nil
}

// floor runs the floor client as its own process and measures it like the controller.
func (b *bench) floor(n int, cold *Phase) (*Phase, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var sas []floorSA
	for i := 0; i < b.cfg.SAIdentities; i++ {
		sas = append(sas, floorSA{nsName(i), saName, saClient(i)})
	}
	cfg := floorCfg{KubeURL: b.s.KubeURL, PKI: b.s.PKI, Bearer: b.ctrlToken, Selector: selector, Page: 100,
		Workers: b.cfg.Workers, TokenURL: strings.TrimRight(b.s.EntraURL, "/") + "/" + stack.TenantID + "/oauth2/v2.0/token",
		FederatedTokenFile: b.s.FederatedTokenFile, ClientID: stack.ControllerApp,
		Scope: "https://ossrdbms-aad.database.windows.net/.default", SAs: sas,
		PGLogin: envOr("BENCH_PGLOGIN", filepath.Join(b.root, "build/bench/pglogin")), PGHost: "localhost",
		PGPort: strconv.Itoa(b.s.PGPort), PGDB: benchDB, CA: filepath.Join(b.s.PKI, "ca.crt"),
		Events: cold.API["create events"] > 0}
	cfgPath := filepath.Join(b.s.Dir, "floor.json")
	js, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, js, 0o600); err != nil {
		return nil, err
	}
	p := &Phase{Name: "floor", N: n, M: b.unmanaged}
	logf("floor: list, %d token requests, logins, %d patches%s by a bare client with %d connections",
		1+len(sas), n, map[bool]string{true: " and Events", false: ""}[cfg.Events], cfg.Workers)
	a := b.snap()
	cmd := exec.Command(self, "floor", cfgPath)
	cmd.Stderr = os.Stderr
	sm := b.startSampler(time.Second)
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	timeline := sm.finish()
	if err != nil {
		return p, fmt.Errorf("floor: %v", err)
	}
	z := b.snap()
	var fr floorResult
	if err := json.Unmarshal(out, &fr); err != nil {
		return p, fmt.Errorf("floor output: %v", err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	p.WallS = round3(fr.WallS)
	p.UserS = round3(time.Duration(ru.Utime.Nano()).Seconds())
	p.SysS = round3(time.Duration(ru.Stime.Nano()).Seconds())
	p.CPUS = round3(p.UserS + p.SysS)
	p.PeakRSSKB = ru.Maxrss
	p.fill(a, z)
	p.Completed = fr.Patches
	p.Extra = map[string]any{"list_s": round3(fr.ListS), "tokens_s": round3(fr.TokensS), "logins_s": round3(fr.LoginsS),
		"writes_s": round3(fr.WritesS), "process_wall_s": round3(wall.Seconds()), "events": fr.Events, "errors": fr.Errors,
		"patches_per_second": timeline}
	logf("floor: %.2fs (list %.2f, then %.2f), client cpu %.2fs, API server cpu %.2fs",
		fr.WallS, fr.ListS, fr.WritesS, p.CPUS, p.KubeCPUS)
	if len(fr.Errors) > 0 || fr.Patches != n {
		return p, fmt.Errorf("floor: %d of %d patches; errors: %v", fr.Patches, n, fr.Errors)
	}
	return p, nil
}

// baseline runs bench/baseline.sh on a subset of the Secrets that use the
// controller's identity, and times its whole process tree.
func (b *bench) baseline(l []managedSecret) *Baseline {
	bl := &Baseline{}
	var lines []string
	for _, s := range l {
		if !s.SA && len(lines) < b.cfg.BaselineN {
			lines = append(lines, fmt.Sprintf("%s %s %s", s.NS, s.Name, s.User))
		}
	}
	bl.Secrets = len(lines)
	if len(lines) == 0 {
		bl.Error = "no Secret to run on"
		return bl
	}
	kubectl := "/usr/bin/kubectl"
	if m, _ := filepath.Glob(filepath.Join(b.root, ".cache/realkube/*/bin/kubectl")); len(m) > 0 {
		kubectl = m[0]
	}
	bl.Kubectl = kubectl
	list := filepath.Join(b.s.Dir, "baseline.list")
	os.WriteFile(list, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	home := filepath.Join(b.s.Dir, "baseline-home")
	os.MkdirAll(home, 0o700)
	cmd := exec.Command(filepath.Join(b.root, "bench/baseline.sh"), list)
	cmd.Env = append(os.Environ(), "HOME="+home, "KUBECTL="+kubectl,
		"KUBECONFIG="+filepath.Join(b.s.Dir, "admin.kubeconfig"),
		"TOKEN_URL="+strings.TrimRight(b.s.EntraURL, "/")+"/"+stack.TenantID+"/oauth2/v2.0/token",
		"CLIENT_ID="+stack.ControllerApp, "FEDERATED_TOKEN_FILE="+b.s.FederatedTokenFile,
		"CA="+filepath.Join(b.s.PKI, "ca.crt"), "PGHOST=localhost", "PGPORT="+strconv.Itoa(b.s.PGPort),
		"PGDATABASE="+benchDB)
	logf("baseline: the bash loop (curl, psql, kubectl patch) on %d Secrets", len(lines))
	a := b.snap()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	bl.WallS = round3(time.Since(start).Seconds())
	z := b.snap()
	if err != nil {
		bl.Error = fmt.Sprintf("%v: %s", err, redact(tailLines(string(out), 5)))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	bl.UserS = round3(time.Duration(ru.Utime.Nano()).Seconds())
	bl.SysS = round3(time.Duration(ru.Stime.Nano()).Seconds())
	bl.CPUS = round3(bl.UserS + bl.SysS)
	bl.MaxRSSKB = ru.Maxrss
	bl.WallPerSecretMs = round3(1000 * bl.WallS / float64(bl.Secrets))
	bl.CPUPerSecretMs = round3(1000 * bl.CPUS / float64(bl.Secrets))
	bl.API, bl.APITotal = apiDelta(a, z)
	bl.TokenRequests = z.tokens - a.tokens
	bl.LoginChecks = z.logins - a.logins
	bl.KubeCPUS = round3(z.kube.Total() - a.kube.Total())
	logf("baseline: %d Secrets in %.1fs, cpu %.2fs (%.1f ms per Secret)", bl.Secrets, bl.WallS, bl.CPUS, bl.CPUPerSecretMs)
	return bl
}
