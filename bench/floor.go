package main

// The floor: the work a rotation of these Secrets needs, done by the
// simplest client that can do it, so the report shows how far the
// controller is from the cost of the work itself (mostly the API server's).
// It runs as its own process (pgtr-bench floor CONFIG) so its CPU is its own.

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"pgtoken-rotator/tests/stack"
)

type floorSA struct {
	NS, Name, ClientID string
}

type floorCfg struct {
	KubeURL, PKI, Bearer string
	Selector             string
	Page                 int
	Workers              int
	TokenURL             string // Entra token endpoint of the tenant
	FederatedTokenFile   string
	ClientID             string // the controller's identity
	Scope                string
	SAs                  []floorSA
	PGLogin              string
	PGHost, PGPort, PGDB string
	CA                   string
	Events               bool
}

type floorResult struct {
	ListS, TokensS, LoginsS, WritesS, WallS float64
	Listed, Patches, Events, Tokens, Logins int
	Errors                                  []string
}

func runFloor(cfgPath string) error {
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	var cfg floorCfg
	if err := json.Unmarshal(b, &cfg); err != nil {
		return err
	}
	res, err := floor(&cfg)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

type flight struct {
	done chan struct{}
	v    any
	err  error
}

// pgLogin is one pglogin process: a line in, a login, "ok" or "fail" out.
type pgLogin struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startPGLogin(cfg *floorCfg) (*pgLogin, error) {
	cmd := exec.Command(cfg.PGLogin, cfg.PGHost, cfg.PGPort, cfg.PGDB, cfg.CA)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &pgLogin{cmd, in, bufio.NewReader(out)}, nil
}

func (p *pgLogin) login(user, token string) error {
	if _, err := io.WriteString(p.in, user+" "+token+"\n"); err != nil {
		return err
	}
	ans, err := p.out.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(ans) != "ok" {
		return fmt.Errorf("login as %s failed", user)
	}
	return nil
}

func (p *pgLogin) close() {
	p.in.Close()
	p.cmd.Wait()
}

type mintedTok struct {
	tok      string
	iat, exp time.Time
	id       string
}

func floor(cfg *floorCfg) (*floorResult, error) {
	res := &floorResult{}
	var errMu sync.Mutex
	addErr := func(e error) {
		errMu.Lock()
		if len(res.Errors) < 20 {
			res.Errors = append(res.Errors, e.Error())
		}
		errMu.Unlock()
	}
	workers := make([]*stack.Kube, cfg.Workers)
	for i := range workers {
		c, err := apiClient(cfg.KubeURL, cfg.PKI, cfg.Bearer, 1)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		workers[i] = c
	}
	tu, err := url.Parse(cfg.TokenURL)
	if err != nil {
		return nil, err
	}
	entra, err := stack.NewKubeWith(tu.Scheme+"://"+tu.Host, cfg.PKI, stack.KubeOptions{NoAuth: true, HTTP2: true, Conns: 1})
	if err != nil {
		return nil, err
	}
	defer entra.Close()
	lister, err := apiClient(cfg.KubeURL, cfg.PKI, cfg.Bearer, 1)
	if err != nil {
		return nil, err
	}
	defer lister.Close()
	helpers := make([]*pgLogin, cfg.Workers)
	for i := range helpers {
		pl, err := startPGLogin(cfg)
		if err != nil {
			return nil, err
		}
		defer pl.close()
		helpers[i] = pl
	}
	start := time.Now()
	nonce := strconv.FormatInt(start.UnixNano(), 36) // Event names unique across floor runs

	// 1. list (the controller's start-up list: same selector and page size, on its
	// own connection as the controller's watch does). The writes start when it is
	// complete: the fake API server keeps 1000 events of history, so a list that
	// writes race would lose its continue token (410) half way.
	items, _, err := lister.ListSecrets(cfg.Selector, cfg.Page)
	if err != nil {
		return nil, err
	}
	res.Listed = len(items)
	res.ListS = time.Since(start).Seconds()
	work := make(chan *stack.Secret, len(items))
	for i := range items {
		work <- &items[i]
	}
	close(work)
	var listErr error
	t := time.Now()

	// 2-4. W workers, one API connection and one libpq login helper each, take the
	// Secrets in turn, as the controller's workers do: the identity's token (minted
	// once, the others wait for it), a login per distinct (user, token) (once, the
	// others wait), then one conditional merge patch with the controller's body
	// (owned keys and status annotations) and the Rotated Event.
	var mu sync.Mutex
	var tokenTime, loginTime time.Duration
	tokens := map[string]*flight{}
	logins := map[string]*flight{}
	once := func(m map[string]*flight, key string, do func() (any, error)) (any, error) {
		mu.Lock()
		f := m[key]
		if f == nil {
			f = &flight{done: make(chan struct{})}
			m[key] = f
			mu.Unlock()
			f.v, f.err = do()
			close(f.done)
		} else {
			mu.Unlock()
			<-f.done
		}
		return f.v, f.err
	}
	exchange := func(id, clientID, assertion string) (*mintedTok, error) {
		v := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "scope": {cfg.Scope},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion}}
		var tr struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int64  `json:"expires_in"`
		}
		if err := entra.JSON("POST", tu.Path, "application/x-www-form-urlencoded", []byte(v.Encode()), &tr); err != nil {
			return nil, err
		}
		now := time.Now()
		return &mintedTok{tr.AccessToken, now, now.Add(time.Duration(tr.ExpiresIn) * time.Second), id}, nil
	}
	tokFor := func(c *stack.Kube, s *stack.Secret) (*mintedTok, error) {
		t0 := time.Now()
		defer func() { mu.Lock(); tokenTime += time.Since(t0); mu.Unlock() }()
		sa := s.Metadata.Annotations["pgtoken.io/service-account"]
		if sa == "" {
			v, err := once(tokens, "wi", func() (any, error) {
				a, err := os.ReadFile(cfg.FederatedTokenFile)
				if err != nil {
					return nil, err
				}
				return exchange("wi:"+cfg.ClientID, cfg.ClientID, strings.TrimSpace(string(a)))
			})
			if err != nil {
				return nil, err
			}
			return v.(*mintedTok), nil
		}
		var x *floorSA
		for i := range cfg.SAs {
			if cfg.SAs[i].NS == s.Metadata.Namespace && cfg.SAs[i].Name == sa {
				x = &cfg.SAs[i]
			}
		}
		if x == nil {
			return nil, fmt.Errorf("%s/%s: unknown ServiceAccount %s", s.Metadata.Namespace, s.Metadata.Name, sa)
		}
		v, err := once(tokens, "sa:"+x.NS+"/"+x.Name, func() (any, error) {
			var tr struct {
				Status struct{ Token string } `json:"status"`
			}
			body := map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
				"spec": map[string]any{"audiences": []string{"api://AzureADTokenExchange"}, "expirationSeconds": 600}}
			if err := c.JSON("POST", "/api/v1/namespaces/"+x.NS+"/serviceaccounts/"+x.Name+"/token",
				"application/json", body, &tr); err != nil {
				return nil, err
			}
			return exchange("sa:"+x.NS+"/"+x.Name+":"+x.ClientID, x.ClientID, tr.Status.Token)
		})
		if err != nil {
			return nil, err
		}
		return v.(*mintedTok), nil
	}
	var next int
	var wg sync.WaitGroup
	for w := 0; w < cfg.Workers; w++ {
		wg.Add(1)
		go func(c *stack.Kube, pl *pgLogin) {
			defer wg.Done()
			for s := range work {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				a := s.Metadata.Annotations
				tk, err := tokFor(c, s)
				if err != nil {
					addErr(err)
					continue
				}
				t0 := time.Now()
				_, err = once(logins, a["pgtoken.io/user"]+"|"+tk.id, func() (any, error) {
					return nil, pl.login(a["pgtoken.io/user"], tk.tok)
				})
				mu.Lock()
				loginTime += time.Since(t0)
				mu.Unlock()
				if err != nil {
					addErr(err)
					continue
				}
				u := fmt.Sprintf("postgresql://%s:%s@%s:%s/%s?sslmode=require", url.PathEscape(a["pgtoken.io/user"]),
					tk.tok, a["pgtoken.io/host"], a["pgtoken.io/port"], a["pgtoken.io/database"])
				now := time.Now().UTC()
				patch := map[string]any{
					"metadata": map[string]any{
						"resourceVersion": s.Metadata.ResourceVersion,
						"annotations": map[string]any{
							"pgtoken.io/status.issued-at":     tk.iat.UTC().Format(time.RFC3339),
							"pgtoken.io/status.expires-at":    tk.exp.UTC().Format(time.RFC3339),
							"pgtoken.io/status.rotate-at":     tk.iat.Add(tk.exp.Sub(tk.iat) / 2).UTC().Format(time.RFC3339),
							"pgtoken.io/status.rotated-at":    now.Format(time.RFC3339),
							"pgtoken.io/status.spec-hash":     "floorfloorfloor0",
							"pgtoken.io/status.identity":      tk.id,
							"pgtoken.io/status.last-error":    nil,
							"pgtoken.io/status.last-error-at": nil,
						},
					},
					"data": map[string]string{
						"password":     base64.StdEncoding.EncodeToString([]byte(tk.tok)),
						"DATABASE_URL": base64.StdEncoding.EncodeToString([]byte(u)),
					},
				}
				var fresh stack.Secret
				if err := c.JSON("PATCH", "/api/v1/namespaces/"+s.Metadata.Namespace+"/secrets/"+s.Metadata.Name,
					"application/merge-patch+json", patch, &fresh); err != nil {
					addErr(err)
					continue
				}
				mu.Lock()
				res.Patches++
				mu.Unlock()
				if !cfg.Events {
					continue
				}
				ts := now.Format(time.RFC3339)
				ev := map[string]any{"apiVersion": "v1", "kind": "Event",
					"metadata": map[string]any{"name": fmt.Sprintf("%s.%s%05x", s.Metadata.Name, nonce, i), "namespace": s.Metadata.Namespace},
					"involvedObject": map[string]any{"apiVersion": "v1", "kind": "Secret", "namespace": s.Metadata.Namespace,
						"name": s.Metadata.Name, "resourceVersion": fresh.Metadata.ResourceVersion},
					"reason": "Rotated", "type": "Normal",
					"message": fmt.Sprintf("wrote a new token for role %s on %s:%s/%s (new); it expires at %s",
						a["pgtoken.io/user"], a["pgtoken.io/host"], a["pgtoken.io/port"], a["pgtoken.io/database"],
						tk.exp.UTC().Format(time.RFC3339)),
					"source": map[string]any{"component": "pgtoken-rotator"}, "firstTimestamp": ts, "lastTimestamp": ts,
					"count": 1, "reportingComponent": "pgtoken-rotator", "reportingInstance": "floor"}
				if err := c.JSON("POST", "/api/v1/namespaces/"+s.Metadata.Namespace+"/events", "application/json", ev, nil); err != nil {
					addErr(err)
					continue
				}
				mu.Lock()
				res.Events++
				mu.Unlock()
			}
		}(workers[w], helpers[w])
	}
	wg.Wait()
	if listErr != nil {
		return nil, listErr
	}
	res.Tokens, res.Logins = len(tokens), len(logins)
	res.TokensS, res.LoginsS = tokenTime.Seconds(), loginTime.Seconds()
	res.WritesS = time.Since(t).Seconds()
	res.WallS = time.Since(start).Seconds()
	return res, nil
}
