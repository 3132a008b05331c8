package stack

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Kube is a small Kubernetes REST client for tests, authenticated as admin
// by client certificate.
type Kube struct {
	URL    string
	c      *http.Client
	bearer string // when set, sent instead of the client certificate
	noCert bool
}

// Kube returns a client for the stack's API server.
func (s *Stack) Kube() (*Kube, error) {
	return NewKube(s.KubeURL, s.PKI)
}

// NewKube makes a client trusting pkiDir/ca.crt and presenting admin.crt.
func NewKube(url, pkiDir string) (*Kube, error) {
	ca, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "admin.crt"), filepath.Join(pkiDir, "admin.key"))
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}
	return &Kube{URL: url, c: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// Do sends a request and returns the status and body.
func (k *Kube) Do(method, path, contentType string, body any) (int, []byte, error) {
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
	req, err := http.NewRequest(method, k.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if k.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+k.bearer)
	}
	c := k.c
	if k.noCert {
		tr := k.c.Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = nil
		c = &http.Client{Transport: tr, Timeout: k.c.Timeout}
	}
	resp, err := c.Do(req)
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
