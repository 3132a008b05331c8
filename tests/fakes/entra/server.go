package entra

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configures a Server.
type Options struct {
	IDPKey     *rsa.PrivateKey  // signs the access tokens (pki idp.key)
	Config     *Config          // the directory
	HTTPClient *http.Client     // fetches issuers' keys (must trust the pki CA)
	Log        *log.Logger      // request log; nil: none
	Now        func() time.Time // clock; nil: time.Now
}

// Server is the fake Entra ID token service and IMDS. Its two handlers are
// served on separate listeners: EntraHandler over HTTPS, IMDSHandler over
// plain HTTP, as the real services are.
type Server struct {
	idpKey *rsa.PrivateKey
	log    *log.Logger
	now    func() time.Time
	keys   *keyCache
	done   chan struct{} // closed by Close: releases hanging requests
	once   sync.Once

	mu       sync.Mutex
	cfg      *Config
	faults   []*Fault
	faultSeq int
	records  []Record
	seq      int64
	stats    map[string]map[string]int
	minted   []MintedToken
}

// MintedToken is an access token the fake handed out (GET /_fake/minted):
// tests search logs, Events, annotations and metrics for these.
type MintedToken struct {
	Time        string `json:"time"`
	Endpoint    string `json:"endpoint"` // token, imds or app-service
	SHA256      string `json:"sha256"`   // as in the records' issued.sha256
	AccessToken string `json:"access_token"`
}

// remember keeps a copy of every access token issued (also one a truncate
// fault cut short: the client may have seen part of it).
func (s *Server) remember(endpoint, tok string) {
	s.mu.Lock()
	s.minted = append(s.minted, MintedToken{Time: s.now().UTC().Format(time.RFC3339Nano),
		Endpoint: endpoint, SHA256: TokenSHA256(tok), AccessToken: tok})
	s.mu.Unlock()
}

// Minted returns every access token issued since the fake started, oldest
// first. Reset does not forget them.
func (s *Server) Minted() []MintedToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]MintedToken{}, s.minted...)
}

// New makes a Server.
func New(o Options) (*Server, error) {
	if o.IDPKey == nil || o.Config == nil {
		return nil, errors.New("entra: IDPKey and Config are required")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Log == nil {
		o.Log = log.New(io.Discard, "", 0)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Server{
		idpKey: o.IDPKey,
		log:    o.Log,
		now:    o.Now,
		keys:   newKeyCache(o.HTTPClient),
		done:   make(chan struct{}),
		cfg:    o.Config,
		stats:  map[string]map[string]int{},
	}, nil
}

// Close releases requests held by a "hang" fault.
func (s *Server) Close() { s.once.Do(func() { close(s.done) }) }

func (s *Server) config() *Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// SetConfig replaces the directory (and forgets cached issuer keys).
func (s *Server) SetConfig(c *Config) {
	s.mu.Lock()
	s.cfg = c
	s.mu.Unlock()
	s.keys.reset()
}

// Record is what GET /_fake/requests returns for one request. It never holds
// a token or a secret: a client assertion appears decoded (header and
// claims), an issued access token as its claims and SHA-256.
type Record struct {
	Seq        int64             `json:"seq"`
	Time       string            `json:"time"`
	Listener   string            `json:"listener"` // "entra" or "imds"
	Endpoint   string            `json:"endpoint"` // token, imds, app-service, openid-configuration, instance-discovery, keys, unknown
	Method     string            `json:"method"`
	Path       string            `json:"path"`
	Query      map[string]string `json:"query,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	FormFields []string          `json:"form_fields,omitempty"` // names of every form field sent
	Form       map[string]string `json:"form,omitempty"`        // values of the non-secret ones
	Assertion  *DecodedJWT       `json:"client_assertion,omitempty"`
	Fault      *Fault            `json:"fault,omitempty"`      // the fault applied, if any
	Status     int               `json:"status"`               // 0: no response (hang, or client gone)
	Error      string            `json:"error,omitempty"`      // OAuth error string
	ErrorCode  int               `json:"error_code,omitempty"` // AADSTS code
	Detail     string            `json:"detail,omitempty"`     // why, for the fake's user
	Issued     *IssuedToken      `json:"issued,omitempty"`
	DurationMS int64             `json:"duration_ms"`
}

// DecodedJWT is a JWT's header and claims, decoded without verification.
type DecodedJWT struct {
	Header map[string]any `json:"header,omitempty"`
	Claims map[string]any `json:"claims,omitempty"`
	Error  string         `json:"error,omitempty"`
}

// IssuedToken describes an access token the fake handed out.
type IssuedToken struct {
	SHA256 string         `json:"sha256"` // hex SHA-256 of the token string
	Claims map[string]any `json:"claims"`
}

// TokenSHA256 is how records name an issued token: hex SHA-256 of its text.
func TokenSHA256(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func decodeJWT(tok string) *DecodedJWT {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return &DecodedJWT{Error: "not a JWT"}
	}
	d := &DecodedJWT{}
	for i, dst := range []*map[string]any{&d.Header, &d.Claims} {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[i], "="))
		if err == nil {
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.UseNumber()
			err = dec.Decode(dst)
		}
		if err != nil {
			return &DecodedJWT{Error: "not a JWT: " + err.Error()}
		}
	}
	return d
}

// Headers worth recording. Authorization and X-IDENTITY-HEADER are secrets:
// only their presence is recorded.
var recordedHeaders = []string{
	"Content-Type", "Accept", "User-Agent", "Metadata",
	"client-request-id", "return-client-request-id",
	"x-client-SKU", "x-client-Ver", "x-client-OS", "x-client-CPU",
	"x-ms-client-request-id", "x-ms-lib-capability",
	"x-client-current-telemetry", "x-client-last-telemetry",
}

var secretHeaders = []string{"Authorization", "X-IDENTITY-HEADER", "Secret"}

// Form fields whose values are never recorded.
var secretFields = map[string]bool{
	"client_assertion": true, "client_secret": true, "assertion": true,
	"refresh_token": true, "password": true, "code": true, "code_verifier": true,
}

func newRecord(listener, endpoint string, r *http.Request, t time.Time) *Record {
	rec := &Record{
		Time:     t.UTC().Format(time.RFC3339Nano),
		Listener: listener,
		Endpoint: endpoint,
		Method:   r.Method,
		Path:     r.URL.Path,
		Headers:  map[string]string{},
	}
	if q := r.URL.Query(); len(q) > 0 {
		rec.Query = map[string]string{}
		for k, v := range q {
			rec.Query[k] = strings.Join(v, ",")
		}
	}
	for _, h := range recordedHeaders {
		if v := r.Header.Values(h); len(v) > 0 {
			rec.Headers[h] = strings.Join(v, ",")
		}
	}
	for _, h := range secretHeaders {
		if r.Header.Get(h) != "" {
			rec.Headers[h] = "<present>"
		}
	}
	return rec
}

// recordForm notes the form's field names and non-secret values, and the
// decoded client assertion.
func recordForm(rec *Record, r *http.Request) {
	if len(r.PostForm) == 0 {
		return
	}
	rec.Form = map[string]string{}
	for k, v := range r.PostForm {
		rec.FormFields = append(rec.FormFields, k)
		switch {
		case k == "client_assertion":
			rec.Assertion = decodeJWT(strings.Join(v, ""))
		case !secretFields[k]:
			rec.Form[k] = strings.Join(v, ",")
		}
	}
	sort.Strings(rec.FormFields)
}

// finish stores a record and counts it.
func (s *Server) finish(rec *Record) {
	s.mu.Lock()
	s.seq++
	rec.Seq = s.seq
	s.records = append(s.records, *rec)
	byStatus := s.stats[rec.Endpoint]
	if byStatus == nil {
		byStatus = map[string]int{}
		s.stats[rec.Endpoint] = byStatus
	}
	byStatus[fmt.Sprint(rec.Status)]++
	byStatus["total"]++
	s.mu.Unlock()

	line := fmt.Sprintf("%s %s %s -> %d", rec.Listener, rec.Method, rec.Path, rec.Status)
	if rec.ErrorCode != 0 {
		line += fmt.Sprintf(" %s AADSTS%d", rec.Error, rec.ErrorCode)
	} else if rec.Error != "" {
		line += " " + rec.Error
	}
	if id := rec.Form["client_id"]; id != "" {
		line += " client_id=" + id
	}
	if rec.Fault != nil {
		line += " fault=" + rec.Fault.describe()
	}
	if rec.Detail != "" {
		line += " (" + rec.Detail + ")"
	}
	s.log.Printf("%s %dms", line, rec.DurationMS)
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type endpointFunc func(w http.ResponseWriter, r *http.Request, rec *Record)

// serve runs one recorded request: applies the next matching fault, then the
// endpoint, and records the outcome (also when a fault aborts the
// connection, which panics with http.ErrAbortHandler).
func (s *Server) serve(listener, endpoint string, w http.ResponseWriter, r *http.Request, h endpointFunc) {
	start := s.now()
	rec := newRecord(listener, endpoint, r, start)
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		p := recover()
		rec.Status = sw.status
		if rec.Status == 0 && p == nil && r.Context().Err() == nil {
			rec.Status = http.StatusOK
		}
		rec.DurationMS = time.Since(start).Milliseconds()
		s.finish(rec)
		if p != nil {
			panic(p)
		}
	}()
	f := s.takeFault(endpoint)
	if f == nil {
		h(sw, r, rec)
		return
	}
	rec.Fault = f
	s.applyFault(f, sw, r, rec, h)
}

func randomB64(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}
