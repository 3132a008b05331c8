package stack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
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

// Kube is a small REST client for the stack's API server (and, with NoAuth, for
// the fake Entra endpoint): one transport, made once, so that connections are
// kept and reused (a TLS handshake per connection, not per request).
type Kube struct {
	URL    string
	c      *http.Client
	bearer string // when set, sent instead of the client certificate
}

// KubeOptions shape a Kube. The zero value is the admin client of the tests:
// client certificate, HTTP/1.1, Go's default connection pool, 30 s per request.
type KubeOptions struct {
	Bearer  string        // authenticate with this token only (no client certificate)
	NoAuth  bool          // neither certificate nor token (the fake Entra endpoint)
	HTTP2   bool          // offer HTTP/2 (a TLS config of our own turns Go's default off)
	Conns   int           // connections kept and opened at most to the server (0: Go's defaults)
	Timeout time.Duration // per request, streams excluded (0: 30 s)
}

// Kube returns a client for the stack's API server.
func (s *Stack) Kube() (*Kube, error) {
	return NewKube(s.KubeURL, s.PKI)
}

// NewKube makes a client trusting pkiDir/ca.crt and presenting admin.crt.
func NewKube(url, pkiDir string) (*Kube, error) {
	return NewKubeWith(url, pkiDir, KubeOptions{})
}

// NewKubeWith makes a client of base (https://host:port) trusting pkiDir/ca.crt,
// authenticated as o says.
func NewKubeWith(base, pkiDir string, o KubeOptions) (*Kube, error) {
	ca, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tc := &tls.Config{RootCAs: pool}
	if o.Bearer == "" && !o.NoAuth {
		cert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "admin.crt"), filepath.Join(pkiDir, "admin.key"))
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: o.HTTP2, IdleConnTimeout: 90 * time.Second}
	if o.Conns > 0 {
		tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = o.Conns, o.Conns
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	return &Kube{URL: strings.TrimRight(base, "/"), c: &http.Client{Transport: tr, Timeout: o.Timeout},
		bearer: o.Bearer}, nil
}

// Close drops the kept connections.
func (k *Kube) Close() { k.c.CloseIdleConnections() }

func (k *Kube) request(ctx context.Context, method, path, contentType string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return nil, err
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, k.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if k.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+k.bearer)
	}
	return req, nil
}

// Do sends a request and returns the status and body. A body that is not
// []byte is sent as JSON.
func (k *Kube) Do(method, path, contentType string, body any) (int, []byte, error) {
	req, err := k.request(context.Background(), method, path, contentType, body)
	if err != nil {
		return 0, nil, err
	}
	resp, err := k.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// JSON sends a request and decodes a 2xx answer into out (may be nil).
func (k *Kube) JSON(method, path, contentType string, body, out any) error {
	st, b, err := k.Do(method, path, contentType, body)
	if err != nil {
		return err
	}
	if st < 200 || st > 299 {
		return &APIError{Status: st, Body: string(b), Method: method, Path: path}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// APIError is a non-2xx answer.
type APIError struct {
	Status       int
	Body         string
	Method, Path string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Body)
}

// Secret is what tests read of a Secret.
type Secret struct {
	Metadata struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
		Annotations     map[string]string `json:"annotations"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
}

// Value returns the decoded data value of key ("" if absent).
func (s *Secret) Value(key string) string {
	b, _ := base64.StdEncoding.DecodeString(s.Data[key])
	return string(b)
}

// ListSecrets lists the Secrets of every namespace matching selector ("" for
// all), page Secrets a request, and returns them with the list's resourceVersion.
func (k *Kube) ListSecrets(selector string, page int) ([]Secret, string, error) {
	var all []Secret
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
		var l struct {
			Metadata struct{ ResourceVersion, Continue string }
			Items    []Secret
		}
		if err := k.JSON("GET", "/api/v1/secrets?"+q.Encode(), "", nil, &l); err != nil {
			return nil, "", err
		}
		all = append(all, l.Items...)
		if l.Metadata.Continue == "" {
			return all, l.Metadata.ResourceVersion, nil
		}
		cont = l.Metadata.Continue
	}
}

// WatchSecrets streams the Secrets matching selector from resourceVersion rv
// until ctx ends, calling fn for each ADDED or MODIFIED one; when the server
// ends the stream it watches again from the last resourceVersion seen. An
// ERROR event (410 Gone, ...) or a refused watch ends it with an error.
func (k *Kube) WatchSecrets(ctx context.Context, selector, rv string, fn func(*Secret)) error {
	stream := &http.Client{Transport: k.c.Transport} // no overall timeout on a stream
	for ctx.Err() == nil {
		q := url.Values{}
		q.Set("labelSelector", selector)
		q.Set("watch", "1")
		q.Set("allowWatchBookmarks", "true")
		q.Set("resourceVersion", rv)
		q.Set("timeoutSeconds", "3600")
		req, err := k.request(ctx, "GET", "/api/v1/secrets?"+q.Encode(), "", nil)
		if err != nil {
			return err
		}
		resp, err := stream.Do(req)
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
			return &APIError{Status: resp.StatusCode, Body: string(b), Method: "WATCH", Path: "/api/v1/secrets"}
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var ev struct {
				Type   string
				Object json.RawMessage
			}
			var s Secret
			if json.Unmarshal(sc.Bytes(), &ev) != nil || json.Unmarshal(ev.Object, &s) != nil {
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

// EnsureNamespace creates ns if it does not exist.
func (k *Kube) EnsureNamespace(ns string) error {
	err := k.JSON("POST", "/api/v1/namespaces", "application/json", map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}, nil)
	if e, ok := err.(*APIError); ok && e.Status == 409 {
		return nil
	}
	return err
}

// CreateSecret creates a Secret with labels, annotations and string data.
func (k *Kube) CreateSecret(ns, name string, labels, annotations, data map[string]string) error {
	d := map[string]string{}
	for key, v := range data {
		d[key] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	return k.JSON("POST", "/api/v1/namespaces/"+ns+"/secrets", "application/json", map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
		"type":     "Opaque", "data": d,
	}, nil)
}

// GetSecret reads a Secret.
func (k *Kube) GetSecret(ns, name string) (*Secret, error) {
	var s Secret
	if err := k.JSON("GET", "/api/v1/namespaces/"+ns+"/secrets/"+name, "", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// MergePatchSecret applies a JSON merge patch.
func (k *Kube) MergePatchSecret(ns, name string, patch any) error {
	return k.JSON("PATCH", "/api/v1/namespaces/"+ns+"/secrets/"+name, "application/merge-patch+json", patch, nil)
}

// DeleteSecret deletes a Secret.
func (k *Kube) DeleteSecret(ns, name string) error {
	return k.JSON("DELETE", "/api/v1/namespaces/"+ns+"/secrets/"+name, "", nil, nil)
}

// Event is what tests read of an Event.
type Event struct {
	Reason, Message, Type string
	Count                 int
	InvolvedObject        struct{ Kind, Name, Namespace string }
}

// Events lists the Events in ns.
func (k *Kube) Events(ns string) ([]Event, error) {
	var l struct{ Items []Event }
	err := k.JSON("GET", "/api/v1/namespaces/"+ns+"/events", "", nil, &l)
	return l.Items, err
}

// Fake sends a control request to the fake API server (/_fake/...).
func (k *Kube) Fake(method, path string, body any) error {
	return k.JSON(method, "/_fake/"+path, "application/json", body, nil)
}

func tokenFromKubeconfig(kc string) string {
	for _, line := range strings.Split(kc, "\n") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(line), "token: "); ok {
			return t
		}
	}
	return ""
}
