package entra

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"
)

// Fault changes how the next matching requests are answered. Faults are
// kept in the order they were added; each request takes the first fault
// whose endpoint matches it. A fault with Count N applies to N requests and
// is then dropped; Count 0 applies until DELETE /_fake/faults.
//
// What a fault does, in this order: wait DelayMS; if Hang, answer nothing
// until the client gives up (or the fake stops); otherwise answer with Body
// (verbatim), or a malformed JSON body (Malformed), or the real answer cut
// in half and the connection dropped (Truncate), or an error of the service's
// own shape with Status, or, with only a delay, the real answer.
// RetryAfterS sets a Retry-After header on what is sent.
type Fault struct {
	ID          int    `json:"id"`
	Endpoint    string `json:"endpoint"` // token, imds, discovery, any, or an endpoint name
	Status      int    `json:"status,omitempty"`
	RetryAfterS int    `json:"retry_after_s,omitempty"`
	Count       int    `json:"count"`
	DelayMS     int    `json:"delay_ms,omitempty"`
	Hang        bool   `json:"hang,omitempty"`
	Malformed   bool   `json:"malformed,omitempty"`
	Truncate    bool   `json:"truncate,omitempty"`
	Body        string `json:"body,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	// EnormousBytes: a 200 token answer of exactly this many bytes (a valid
	// JSON object whose access_token fills it), streamed; with Chunked it is
	// sent without Content-Length, so a client learns the size only by
	// reading.
	EnormousBytes int64 `json:"enormous_bytes,omitempty"`
	Chunked       bool  `json:"chunked,omitempty"`
	// NestingDepth: a 200 token answer whose access_token is this many
	// nested arrays ([[[...]]]): valid JSON of 2*N bytes and a few more.
	NestingDepth int `json:"nesting_depth,omitempty"`
	Used         int `json:"used"` // requests it has been applied to
}

// Endpoint names, and the classes a fault's endpoint may name.
var faultClasses = map[string][]string{
	"token":                {"token"},
	"imds":                 {"imds", "app-service"},
	"discovery":            {"openid-configuration", "instance-discovery", "keys"},
	"openid-configuration": {"openid-configuration"},
	"instance-discovery":   {"instance-discovery"},
	"keys":                 {"keys"},
	"app-service":          {"app-service"},
}

func (f *Fault) matches(endpoint string) bool {
	if f.Endpoint == "any" {
		return true
	}
	for _, e := range faultClasses[f.Endpoint] {
		if e == endpoint {
			return true
		}
	}
	return false
}

func (f *Fault) check() error {
	if f.Endpoint == "" {
		f.Endpoint = "any"
	}
	if _, ok := faultClasses[f.Endpoint]; !ok && f.Endpoint != "any" {
		return fmt.Errorf("endpoint %q: want token, imds, discovery, any, openid-configuration, instance-discovery, keys or app-service", f.Endpoint)
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		return fmt.Errorf("status %d is not an HTTP status", f.Status)
	}
	if f.Count < 0 || f.DelayMS < 0 || f.RetryAfterS < 0 {
		return fmt.Errorf("count, delay_ms and retry_after_s must not be negative")
	}
	n := 0
	for _, b := range []bool{f.Hang, f.Malformed, f.Truncate, f.Body != "", f.EnormousBytes != 0, f.NestingDepth != 0} {
		if b {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("hang, malformed, truncate, body, enormous_bytes and nesting_depth exclude each other")
	}
	if f.EnormousBytes < 0 || f.NestingDepth < 0 {
		return fmt.Errorf("enormous_bytes and nesting_depth must not be negative")
	}
	if f.EnormousBytes != 0 && f.EnormousBytes < int64(len(enormousHead)+len(enormousTail)) {
		return fmt.Errorf("enormous_bytes must be at least %d", len(enormousHead)+len(enormousTail))
	}
	if f.Chunked && f.EnormousBytes == 0 {
		return fmt.Errorf("chunked goes with enormous_bytes")
	}
	if f.Truncate && f.Status != 0 {
		return fmt.Errorf("truncate cuts the real answer: it takes no status")
	}
	f.Used = 0
	return nil
}

func (f *Fault) describe() string {
	var parts []string
	if f.DelayMS > 0 {
		parts = append(parts, fmt.Sprintf("delay %dms", f.DelayMS))
	}
	switch {
	case f.Hang:
		parts = append(parts, "hang")
	case f.Malformed:
		parts = append(parts, "malformed")
	case f.Truncate:
		parts = append(parts, "truncate")
	case f.Body != "":
		parts = append(parts, "body")
	case f.EnormousBytes != 0:
		parts = append(parts, fmt.Sprintf("enormous %d bytes", f.EnormousBytes))
		if f.Chunked {
			parts = append(parts, "chunked")
		}
	case f.NestingDepth != 0:
		parts = append(parts, fmt.Sprintf("nesting %d", f.NestingDepth))
	}
	if f.Status != 0 {
		parts = append(parts, strconv.Itoa(f.Status))
	}
	if f.RetryAfterS > 0 {
		parts = append(parts, fmt.Sprintf("retry-after %ds", f.RetryAfterS))
	}
	return fmt.Sprintf("#%d(%s)", f.ID, strings.Join(parts, ","))
}

// AddFaults appends faults (after checking them) and returns them with ids.
func (s *Server) AddFaults(fs []Fault) ([]Fault, error) {
	for i := range fs {
		if err := fs[i].check(); err != nil {
			return nil, fmt.Errorf("fault %d: %v", i, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range fs {
		s.faultSeq++
		fs[i].ID = s.faultSeq
		f := fs[i]
		s.faults = append(s.faults, &f)
	}
	return fs, nil
}

// Faults lists the pending faults.
func (s *Server) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Fault{}
	for _, f := range s.faults {
		out = append(out, *f)
	}
	return out
}

// ClearFaults drops every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// takeFault returns (a copy of) the fault for this request, if any, and
// uses it up.
func (s *Server) takeFault(endpoint string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if !f.matches(endpoint) {
			continue
		}
		f.Used++
		if f.Count > 0 && f.Used >= f.Count {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		c := *f
		return &c
	}
	return nil
}

const malformedBody = `{"token_type":"Bearer","access_token":"this is not JSON`

const (
	enormousHead = `{"token_type":"Bearer","expires_in":3600,"ext_expires_in":3600,"access_token":"`
	enormousTail = `"}`
	nestingHead  = `{"token_type":"Bearer","expires_in":3600,"access_token":`
)

// streamRepeat writes head, n copies of c, then tail, in 64 KiB pieces, and
// stops when the client goes away. It returns the bytes written.
func streamRepeat(w http.ResponseWriter, head string, c byte, n int64, tail string) int64 {
	total, _ := w.Write([]byte(head))
	sent := int64(total)
	chunk := bytes.Repeat([]byte{c}, 64<<10)
	for n > 0 {
		k := min(n, int64(len(chunk)))
		m, err := w.Write(chunk[:k])
		sent += int64(m)
		if err != nil {
			return sent
		}
		n -= k
	}
	m, _ := w.Write([]byte(tail))
	return sent + int64(m)
}

func (s *Server) applyFault(f *Fault, w http.ResponseWriter, r *http.Request, rec *Record, h endpointFunc) {
	if f.DelayMS > 0 {
		t := time.NewTimer(time.Duration(f.DelayMS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			rec.Detail = "client went away during the delay"
			return
		case <-s.done:
			return
		}
	}
	if f.Hang {
		select {
		case <-r.Context().Done():
			rec.Detail = "hung until the client went away"
		case <-s.done:
			rec.Detail = "hung until the fake stopped"
		}
		return
	}
	if f.RetryAfterS > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfterS))
	}
	if !f.Truncate && (f.Body != "" || f.Malformed || f.EnormousBytes != 0 || f.NestingDepth != 0 || f.Status != 0) {
		// Read the request first, as the real service does: an HTTP/2 answer sent
		// before the request body has arrived ends with RST_STREAM, which clients
		// (libcurl) may report as a stream error instead of the answer.
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	}
	switch {
	case f.Body != "":
		ct := f.ContentType
		if ct == "" {
			ct = "application/json; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(orDefault(f.Status, http.StatusOK))
		w.Write([]byte(f.Body))
	case f.EnormousBytes != 0:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if !f.Chunked {
			w.Header().Set("Content-Length", strconv.FormatInt(f.EnormousBytes, 10))
		}
		w.WriteHeader(orDefault(f.Status, http.StatusOK))
		fill := f.EnormousBytes - int64(len(enormousHead)+len(enormousTail))
		sent := streamRepeat(w, enormousHead, 'A', fill, enormousTail)
		rec.Detail = fmt.Sprintf("sent %d of %d bytes", sent, f.EnormousBytes)
	case f.NestingDepth != 0:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(orDefault(f.Status, http.StatusOK))
		w.Write([]byte(nestingHead))
		n := int64(f.NestingDepth)
		streamRepeat(w, "", '[', n, "")
		streamRepeat(w, "", ']', n, "}")
	case f.Malformed:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(orDefault(f.Status, http.StatusOK))
		w.Write([]byte(malformedBody))
	case f.Truncate:
		full := httptest.NewRecorder()
		h(full, r, rec)
		body := full.Body.Bytes()
		for k, v := range full.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(full.Code)
		w.Write(body[:len(body)/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		rec.Detail = fmt.Sprintf("answer cut after %d of %d bytes", len(body)/2, len(body))
		panic(http.ErrAbortHandler) // drops the connection
	case f.Status != 0:
		s.writeFaultError(w, r, rec, f.Status)
	default:
		h(w, r, rec)
	}
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// writeFaultError answers with an error shaped like the service's own.
func (s *Server) writeFaultError(w http.ResponseWriter, r *http.Request, rec *Record, status int) {
	if rec.Listener == "imds" {
		e := map[string]string{"error": "unknown", "error_description": "Failed to retrieve token from the Active directory."}
		if status < 500 {
			text := http.StatusText(status)
			e = map[string]string{"error": strings.ReplaceAll(strings.ToLower(text), " ", "_"), "error_description": text}
		}
		rec.Error = e["error"]
		writeIMDSJSON(w, status, e)
		return
	}
	var e *aadError
	switch {
	case status == http.StatusTooManyRequests:
		e = &aadError{status, "temporarily_unavailable", 90055, "There are too many incoming requests. Please try again later."}
	case status == http.StatusServiceUnavailable:
		e = &aadError{status, "temporarily_unavailable", 90006, "The service is temporarily unavailable. Please try again later."}
	case status >= 500:
		e = &aadError{status, "server_error", 50000, "There was an error issuing a token or an issue with our sign-in service."}
	default:
		e = &aadError{status, "invalid_request", 90023, "The authentication service request is not valid."}
	}
	s.writeAADError(w, r, rec, e)
}
