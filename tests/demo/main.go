// Command demo shows pgtoken-rotator end to end on this machine: it starts
// the local stack (token-validating PostgreSQL, fake Entra ID, fake API
// server), runs the controller, creates an annotated Secret, shows it being
// filled in and rotated, and logs in to PostgreSQL with what it received.
// It stops everything when done or on Ctrl-C.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"pgtoken-rotator/tests/stack"
)

const lifetime = 40 * time.Second

var tokenRe = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)

func say(format string, a ...any) { fmt.Printf("\n\033[1m==> "+format+"\033[0m\n", a...) }

func main() {
	os.Exit(run())
}

func run() int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	say("Starting the local stack: PostgreSQL 15 that only accepts valid Entra-style tokens, a fake Entra ID, a fake Kubernetes API server")
	s, err := stack.Start(stack.Options{TokenLifetime: lifetime})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	defer func() { say("Stopping everything"); s.Close() }()
	if err := s.StartFakeKube(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	fmt.Printf("    PostgreSQL   localhost:%d (role %q mapped to the controller's managed identity)\n", s.PGPort, stack.ControllerRole)
	fmt.Printf("    Entra ID     %s (tokens live %v here, about an hour on Azure)\n", s.EntraURL, lifetime)
	fmt.Printf("    Kubernetes   %s\n", s.KubeURL)

	say("Starting pgtoken-rotator with a workload-identity environment (as the AKS webhook injects it)")
	ctrl, err := s.StartController("controller", "--log-level", "info")
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	fmt.Printf("    %s %s\n    log: %s\n", s.Bin, strings.Join(s.ControllerArgs(), " "), ctrl.Log)
	k, err := s.Kube()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}

	say("Creating a Secret that opts in")
	ann := map[string]string{
		"pgtoken.io/host":     "localhost",
		"pgtoken.io/port":     fmt.Sprint(s.PGPort),
		"pgtoken.io/user":     stack.ControllerRole,
		"pgtoken.io/database": "app",
	}
	fmt.Println("    apiVersion: v1\n    kind: Secret\n    metadata:\n      name: app-db\n      namespace: demo\n      labels:\n        pgtoken.io/managed: \"true\"\n      annotations:")
	for _, key := range []string{"pgtoken.io/host", "pgtoken.io/port", "pgtoken.io/user", "pgtoken.io/database"} {
		fmt.Printf("        %s: %q\n", key, ann[key])
	}
	if err := k.EnsureNamespace("demo"); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	if err := k.CreateSecret("demo", "app-db", map[string]string{"pgtoken.io/managed": "true"}, ann, nil); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}

	var last string
	for round := 1; round <= 2; round++ {
		if round == 1 {
			say("Waiting for the controller to fill it in")
		} else {
			say("Waiting for the next rotation (due at half the token's lifetime)")
		}
		sec, err := waitNew(k, last, lifetime+20*time.Second, sigs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			fmt.Fprintln(os.Stderr, tailLog(ctrl.Output(), 15))
			return 1
		}
		last = sec.Data["password"]
		a := sec.Metadata.Annotations
		fmt.Printf("    password      <token, %d bytes>\n", len(sec.Value("password")))
		fmt.Printf("    DATABASE_URL  %s\n", tokenRe.ReplaceAllString(sec.Value("DATABASE_URL"), "<token>"))
		for _, key := range []string{"expires-at", "rotated-at", "rotate-at"} {
			fmt.Printf("    pgtoken.io/status.%-11s %s\n", key, a["pgtoken.io/status."+key])
		}
		say("Logging in with DATABASE_URL from the Secret: psql \"$DATABASE_URL\"")
		cmd := exec.Command("psql", sec.Value("DATABASE_URL"), "-c",
			"select current_user, inet_server_port() as port, ssl.version as tls from pg_stat_ssl ssl where ssl.pid = pg_backend_pid()")
		cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
		out, err := cmd.CombinedOutput()
		fmt.Print(indent(tokenRe.ReplaceAllString(string(out), "<token>")))
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo: login failed:", err)
			return 1
		}
	}

	say("Events on the Secret (kubectl describe secret app-db -n demo)")
	evs, _ := k.Events("demo")
	for _, e := range evs {
		fmt.Printf("    %-8s %-10s %s\n", e.Type, e.Reason, e.Message)
	}
	say("The controller's log (JSON, one event per line; no token ever appears)")
	fmt.Print(indent(tailLog(ctrl.Output(), 8)))
	if err := ctrl.Stop(10 * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "demo: controller:", err)
		return 1
	}
	say("Done: the Secret was filled, rotated, and each value logged in")
	return 0
}

func waitNew(k *stack.Kube, old string, timeout time.Duration, sigs chan os.Signal) (*stack.Secret, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-sigs:
			return nil, fmt.Errorf("interrupted")
		default:
		}
		if sec, err := k.GetSecret("demo", "app-db"); err == nil {
			if p := sec.Data["password"]; p != "" && p != old {
				return sec, nil
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return nil, fmt.Errorf("the Secret was not written within %v", timeout)
}

func indent(s string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if len(line) > 160 {
			line = line[:157] + "..."
		}
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

func tailLog(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
