package kube

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/fakes/pki"
)

var pkiDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "fakekube-pki-")
	if err != nil {
		panic(err)
	}
	pkiDir = filepath.Join(d, "pki")
	if err := pki.Init(pkiDir); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

const testToken = "tok-alice"

// fake is one running server plus clients.
type fake struct {
	t    *testing.T
	in   *Instance
	url  string
	http *http.Client // HTTP/1.1, no client certificate
	h2   *http.Client // with the admin client certificate
}

func startFake(t *testing.T, mod ...func(*Config)) *fake {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	os.WriteFile(tokens, []byte(testToken+",alice,uid-alice,\"devs,ops\"\ntok-bob,bob,uid-bob\n"), 0o600)
	cfg := Config{PKIDir: pkiDir, TokensFile: tokens, Namespaces: []string{"ns1", "ns2"},
		Log: log.New(io.Discard, "", 0)}
	for _, m := range mod {
		m(&cfg)
	}
	in, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	caPEM, _ := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	h1 := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	cert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "admin.crt"), filepath.Join(pkiDir, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	h2 := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}, ForceAttemptHTTP2: true}}
	return &fake{t: t, in: in, url: in.URL, http: h1, h2: h2}
}

type resp struct {
	code int
	hdr  http.Header
	raw  []byte
	obj  Obj
}

func (r *resp) str(keys ...string) string { return getStr(r.obj, keys...) }

// req sends a request with the bearer token (token "" = none).
func (f *fake) reqTok(token, method, path, ct string, body any) *resp {
	f.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		jb, _ := json.Marshal(b)
		rd = bytes.NewReader(jb)
	}
	req, err := http.NewRequest(method, f.url+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if ct == "" && body != nil {
		ct = "application/json"
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := f.http.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := &resp{code: res.StatusCode, hdr: res.Header, raw: raw}
	r.obj, _ = decodeObj(raw)
	return r
}

func (f *fake) req(method, path, ct string, body any) *resp {
	f.t.Helper()
	return f.reqTok(testToken, method, path, ct, body)
}

func (f *fake) get(path string) *resp { f.t.Helper(); return f.req("GET", path, "", nil) }

func (f *fake) mustCode(r *resp, code int) {
	f.t.Helper()
	if r.code != code {
		f.t.Fatalf("want HTTP %d, got %d: %s", code, r.code, r.raw)
	}
}

func (f *fake) control(method, path string, body any) Obj {
	f.t.Helper()
	r := f.reqTok("", method, "/_fake/"+path, "application/json", body)
	if r.code != 200 {
		f.t.Fatalf("control %s %s: %d %s", method, path, r.code, r.raw)
	}
	return r.obj
}

func (f *fake) controlList(path string) []any {
	f.t.Helper()
	r := f.reqTok("", "GET", "/_fake/"+path, "", nil)
	v, _ := decodeJSON(r.raw)
	l, _ := v.([]any)
	return l
}

func secretBody(name string, labels map[string]string, data map[string]string) Obj {
	o := Obj{"apiVersion": "v1", "kind": "Secret", "metadata": Obj{"name": name}}
	if labels != nil {
		l := Obj{}
		for k, v := range labels {
			l[k] = v
		}
		meta(o)["labels"] = l
	}
	if data != nil {
		d := Obj{}
		for k, v := range data {
			d[k] = v
		}
		o["stringData"] = d
	}
	return o
}

func (f *fake) createSecret(ns, name string, labels map[string]string, data map[string]string) *resp {
	f.t.Helper()
	r := f.req("POST", "/api/v1/namespaces/"+ns+"/secrets", "", secretBody(name, labels, data))
	f.mustCode(r, 201)
	return r
}

// watchStream reads watch events line by line.
type watchStream struct {
	t      *testing.T
	res    *http.Response
	events chan wev
}

type wev struct {
	Type   string `json:"type"`
	Object Obj    `json:"object"`
	err    error
}

func (f *fake) watch(path string) *watchStream {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	cl := &http.Client{Transport: f.http.Transport}
	res, err := cl.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		f.t.Fatalf("watch %s: %d %s", path, res.StatusCode, b)
	}
	ws := &watchStream{t: f.t, res: res, events: make(chan wev, 1000)}
	go func() {
		defer close(ws.events)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			d.UseNumber()
			var e wev
			if err := d.Decode(&e); err != nil {
				ws.events <- wev{err: fmt.Errorf("bad event line %q: %v", sc.Text(), err)}
				return
			}
			ws.events <- e
		}
		if err := sc.Err(); err != nil {
			ws.events <- wev{err: err}
		}
	}()
	f.t.Cleanup(func() { res.Body.Close() })
	return ws
}

// next returns the next event, failing after a timeout.
func (ws *watchStream) next() wev {
	ws.t.Helper()
	select {
	case e, ok := <-ws.events:
		if !ok {
			ws.t.Fatal("watch ended, want an event")
		}
		if e.err != nil {
			ws.t.Fatalf("watch: %v", e.err)
		}
		return e
	case <-time.After(5 * time.Second):
		ws.t.Fatal("no watch event within 5s")
	}
	return wev{}
}

// nextSkipBookmarks returns the next non-BOOKMARK event.
func (ws *watchStream) nextSkipBookmarks() wev {
	ws.t.Helper()
	for {
		if e := ws.next(); e.Type != "BOOKMARK" {
			return e
		}
	}
}

// end waits for the stream to end and returns its error (nil: clean end).
func (ws *watchStream) end(d time.Duration) (extra []wev, err error) {
	ws.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case e, ok := <-ws.events:
			if !ok {
				return extra, nil
			}
			if e.err != nil {
				return extra, e.err
			}
			extra = append(extra, e)
		case <-timeout:
			ws.t.Fatalf("watch did not end within %v", d)
		}
	}
}

// none asserts no event (other than bookmarks) arrives for d.
func (ws *watchStream) none(d time.Duration) {
	ws.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case e, ok := <-ws.events:
			if !ok {
				return
			}
			if e.Type != "BOOKMARK" {
				ws.t.Fatalf("unexpected event %s %v", e.Type, e.Object)
			}
		case <-timeout:
			return
		}
	}
}

func evName(e wev) string { return getStr(e.Object, "metadata", "name") }
func evRV(e wev) string   { return getStr(e.Object, "metadata", "resourceVersion") }

func wantStatus(t *testing.T, r *resp, code int, reason, message string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want HTTP %d, got %d: %s", code, r.code, r.raw)
	}
	o := r.obj
	if o["kind"] != "Status" || o["apiVersion"] != "v1" || o["status"] != "Failure" || o["reason"] != reason {
		t.Fatalf("want Status Failure %s, got %s", reason, r.raw)
	}
	if c, _ := getInt(o, "code"); int(c) != code {
		t.Fatalf("status code field %v, want %d", o["code"], code)
	}
	if _, ok := o["metadata"].(Obj); !ok {
		t.Fatalf("Status without metadata: %s", r.raw)
	}
	if message != "" && o["message"] != message {
		t.Fatalf("message:\n got %q\nwant %q", o["message"], message)
	}
}
