package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// client is a small REST client for the API server (and the fakes' control
// APIs): HTTP/2 when the server offers it, keep-alive, one transport per
// client so a worker owns its connection as the controller's workers do.
type client struct {
	base   string
	hc     *http.Client
	bearer string
}

func tlsConfig(pkiDir string, withAdminCert bool) (*tls.Config, error) {
	ca, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: pool}
	if withAdminCert {
		cert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "admin.crt"), filepath.Join(pkiDir, "admin.key"))
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// newClient: admin (client certificate) when bearer is empty, else that token.
func newClient(base, pkiDir, bearer string, maxConns int) (*client, error) {
	tc, err := tlsConfig(pkiDir, bearer == "")
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, MaxConnsPerHost: maxConns,
		MaxIdleConnsPerHost: maxConns, IdleConnTimeout: 90 * time.Second}
	return &client{base: strings.TrimRight(base, "/"), hc: &http.Client{Transport: tr, Timeout: 120 * time.Second}, bearer: bearer}, nil
}

func (c *client) close() { c.hc.CloseIdleConnections() }

type apiError struct {
	Status       int
	Body         string
	Method, Path string
}

func (e *apiError) Error() string {
	b := e.Body
	if len(b) > 300 {
		b = b[:300] + "..."
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, b)
}

func (c *client) do(method, path, contentType string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return 0, nil, err
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// json sends a request and decodes a 2xx answer into out (may be nil).
func (c *client) json(method, path, contentType string, body, out any) error {
	st, b, err := c.do(method, path, contentType, body)
	if err != nil {
		return err
	}
	if st < 200 || st > 299 {
		return &apiError{st, string(b), method, path}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// form posts an x-www-form-urlencoded body.
func (c *client) form(path string, v url.Values, out any) error {
	return c.json("POST", path, "application/x-www-form-urlencoded", []byte(v.Encode()), out)
}

// secretObj is what the bench reads of a Secret.
type secretObj struct {
	Metadata struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		ResourceVersion string            `json:"resourceVersion"`
		Annotations     map[string]string `json:"annotations"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
}

type secretList struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
		Continue        string `json:"continue"`
	} `json:"metadata"`
	Items []secretObj `json:"items"`
}

// listSecrets lists every Secret matching selector (all namespaces), in pages.
func (c *client) listSecrets(selector string, page int) ([]secretObj, string, error) {
	var all []secretObj
	rv, err := c.listPages(selector, page, func(items []secretObj) { all = append(all, items...) })
	return all, rv, err
}

// listPages lists in pages, handing each page to fn as it arrives.
func (c *client) listPages(selector string, page int, fn func([]secretObj)) (string, error) {
	cont := ""
	for {
		q := url.Values{}
		if selector != "" {
			q.Set("labelSelector", selector)
		}
		q.Set("limit", fmt.Sprint(page))
		if cont != "" {
			q.Set("continue", cont)
		}
		var l secretList
		if err := c.json("GET", "/api/v1/secrets?"+q.Encode(), "", nil, &l); err != nil {
			return "", err
		}
		fn(l.Items)
		if l.Metadata.Continue == "" {
			return l.Metadata.ResourceVersion, nil
		}
		cont = l.Metadata.Continue
	}
}

type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// watchSecrets streams Secret events matching selector from rv until ctx ends,
// calling fn for ADDED/MODIFIED objects; it reconnects from the last rv when
// the server ends the stream.
func (c *client) watchSecrets(ctx context.Context, selector, rv string, fn func(*secretObj)) error {
	for ctx.Err() == nil {
		q := url.Values{}
		q.Set("labelSelector", selector)
		q.Set("watch", "1")
		q.Set("allowWatchBookmarks", "true")
		q.Set("resourceVersion", rv)
		q.Set("timeoutSeconds", "3600")
		req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/api/v1/secrets?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		if c.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+c.bearer)
		}
		hc := &http.Client{Transport: c.hc.Transport} // no overall timeout on a stream
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return fmt.Errorf("watch: %d %s", resp.StatusCode, b)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var ev watchEvent
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			var s secretObj
			if json.Unmarshal(ev.Object, &s) != nil {
				continue
			}
			if s.Metadata.ResourceVersion != "" {
				rv = s.Metadata.ResourceVersion
			}
			switch ev.Type {
			case "ADDED", "MODIFIED":
				fn(&s)
			case "ERROR":
				resp.Body.Close()
				return fmt.Errorf("watch ERROR event: %s", ev.Object)
			}
		}
		resp.Body.Close()
	}
	return nil
}
