package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

// TLS is verified everywhere: a CA that did not sign the peer's certificate
// makes the controller refuse to talk to the token endpoint or to PostgreSQL
// (nothing is written), unless the loudly named insecure option is set.
func TestTLSVerifiedEverywhere(t *testing.T) {
	covers(t, "Security", "Wrong CA for the token endpoint, PostgreSQL and the API server", "a CA that did not sign the peer: the controller refuses to talk and writes nothing, unless the loudly named insecure flag is set")
	w := newWorld(t, stack.Options{})
	w.stopController()
	wrong := w.s.PKI + "/wrong-ca.crt"
	ca := w.s.PKI + "/ca.crt"

	// The token endpoint's certificate is not trusted.
	p, err := w.s.StartController("ctrl-idp-ca", "--identity-ca-file", wrong)
	if err != nil {
		t.Fatal(err)
	}
	w.ctrl = p
	w.managed("tls", "idp", w.pgAnn())
	sec := w.waitSecret("tls", "idp", 30*time.Second, "TokenFailed (TLS)", lastErrorIs("TokenFailed"))
	if !strings.Contains(strings.ToLower(sec.Metadata.Annotations["pgtoken.io/status.last-error"]), "tls") {
		t.Errorf("the error does not say TLS: %s", sec.Metadata.Annotations["pgtoken.io/status.last-error"])
	}
	if sec.Data["password"] != "" {
		t.Fatalf("written although the token endpoint was not trusted")
	}
	w.stopController()

	// PostgreSQL's certificate is not trusted: the token is never sent to it.
	p, err = w.s.StartController("ctrl-db-ca", "--db-ca-file", wrong)
	if err != nil {
		t.Fatal(err)
	}
	w.ctrl = p
	w.managed("tls", "db", w.pgAnn())
	sec = w.waitSecret("tls", "db", 30*time.Second, "LoginFailed (tls)", lastErrorIs("LoginFailed"))
	if !strings.Contains(sec.Metadata.Annotations["pgtoken.io/status.last-error"], "(tls)") || sec.Data["password"] != "" {
		t.Fatalf("want a tls LoginFailed and nothing written: %s", sec.Metadata.Annotations["pgtoken.io/status.last-error"])
	}
	w.stopController()

	// The explicitly insecure option writes anyway (and says so in the log).
	p, err = w.s.StartController("ctrl-db-insecure", "--db-ca-file", wrong, "--insecure-skip-db-tls-verify")
	if err != nil {
		t.Fatal(err)
	}
	w.ctrl = p
	w.waitSecret("tls", "db", 30*time.Second, "written with verification off", hasKeys("password"))
	if !strings.Contains(w.ctrl.Output(), "insecure_database_tls") {
		t.Errorf("the insecure option was not logged as such")
	}
	w.stopController()

	// The API server's certificate is not trusted: no request carries our credential.
	kc := strings.Replace(readFile(t, w.s.ControllerKubeconfig), ca, wrong, 1)
	bad := w.s.Dir + "/wrong-ca.kubeconfig"
	if err := os.WriteFile(bad, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err = w.s.Spawn("ctrl-kube-ca", w.s.ControllerEnv(), w.s.Bin, "run", "--kubeconfig", bad,
		"--identity-ca-file", ca, "--db-ca-file", ca)
	if err != nil {
		t.Fatal(err)
	}
	w.ctrl = p
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(p.Output(), `"msg":"list_failed"`) {
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(p.Output(), `"error":"tls"`) {
		t.Fatalf("no TLS failure logged for the API server:\n%s", tail(p.Output(), 10))
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// consistent reports whether a Secret holds one complete set of values:
// DATABASE_URL carries the same token as password, and status.expires-at is
// that token's exp.
func consistent(s *stack.Secret) error {
	p := s.Value("password")
	if p == "" && s.Data["DATABASE_URL"] == "" {
		return nil // not written yet
	}
	u, err := url.Parse(s.Value("DATABASE_URL"))
	if err != nil {
		return fmt.Errorf("DATABASE_URL does not parse: %v", err)
	}
	if pw, _ := u.User.Password(); pw != p {
		return fmt.Errorf("DATABASE_URL and password hold different tokens")
	}
	parts := strings.Split(p, ".")
	if len(parts) != 3 {
		return fmt.Errorf("password is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var c struct{ Exp int64 }
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	exp, err := time.Parse(time.RFC3339, s.Metadata.Annotations["pgtoken.io/status.expires-at"])
	if err != nil || exp.Unix() != c.Exp {
		return fmt.Errorf("status.expires-at does not match the token's exp")
	}
	return nil
}

// The controller killed with SIGKILL at random moments during rotation, many
// times: every Secret is always the old complete set or the new complete set,
// never a mix; after a clean restart everything converges and logs in.
func TestKilledMidRotationNeverMixes(t *testing.T) {
	covers(t, "Process", "SIGKILL at random moments during rotation, 10 times", "8 Secrets with 20 s tokens; after every kill each Secret holds one complete set of values that log in, and all converge after restart")
	w := newWorld(t, stack.Options{TokenLifetime: 20 * time.Second})
	const n = 8
	for i := 0; i < n; i++ {
		w.managed("kill", fmt.Sprintf("db-%d", i), w.pgAnn())
	}
	var mu sync.Mutex
	var problems []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a reader that checks every state it sees
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := 0; i < n; i++ {
				if s, err := w.k.GetSecret("kill", fmt.Sprintf("db-%d", i)); err == nil {
					w.remember(s)
					if err := consistent(s); err != nil {
						mu.Lock()
						problems = append(problems, fmt.Sprintf("db-%d: %v", i, err))
						mu.Unlock()
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	kills := 0
	for round := 0; round < 10; round++ {
		time.Sleep(time.Duration(300+rng.Intn(2500)) * time.Millisecond)
		w.ctrl.Kill()
		kills++
		w.startController(fmt.Sprintf("controller-%d", round+1))
	}
	time.Sleep(12 * time.Second) // let the last one converge
	close(stop)
	wg.Wait()
	if len(problems) > 0 {
		t.Fatalf("%d inconsistent states seen across %d kills, e.g. %s", len(problems), kills, problems[0])
	}
	for i := 0; i < n; i++ {
		sec := w.waitSecret("kill", fmt.Sprintf("db-%d", i), 30*time.Second, "converged", hasKeys("DATABASE_URL"))
		exp, _ := time.Parse(time.RFC3339, sec.Metadata.Annotations["pgtoken.io/status.expires-at"])
		if time.Now().After(exp) {
			t.Errorf("db-%d: holds an expired token after convergence", i)
			continue
		}
		if _, err := w.psql(sec.Value("DATABASE_URL")); err != nil {
			t.Errorf("db-%d: %v", i, err)
		}
	}
	t.Logf("%d kills, no mixed state", kills)
}
