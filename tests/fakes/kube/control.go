package kube

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// fault is one switch set with POST /_fake/faults.
type fault struct {
	ID    int `json:"id"`
	Match struct {
		Verb        string `json:"verb,omitempty"`
		Resource    string `json:"resource,omitempty"`
		Namespace   string `json:"namespace,omitempty"`
		Name        string `json:"name,omitempty"`
		User        string `json:"user,omitempty"`
		Subresource string `json:"subresource,omitempty"`
	} `json:"match"`
	Status      int    `json:"status,omitempty"`
	RetryAfterS int    `json:"retry_after_s,omitempty"`
	Count       int    `json:"count,omitempty"`
	DelayMs     int    `json:"delay_ms,omitempty"`
	Hang        bool   `json:"hang,omitempty"`
	// DropContinue answers a list as the server would but without its
	// continue token: a paged list that ends early, as a server that lost
	// the rest of the list would answer.
	DropContinue bool `json:"drop_continue,omitempty"`
	Message     string `json:"message,omitempty"`
	// Body: "status" forces a Status JSON body, "text" a plain-text one;
	// empty picks what the real server sends for that code (plain text for
	// 429, as priority-and-fairness does; a Status otherwise).
	Body string `json:"body,omitempty"`
	// A raw answer replaces the server's own (or the Status above) with
	// exactly these bytes, to test clients against broken or hostile
	// servers: RawPrefix, RawDeep "[", RawBody RawRepeat times (default
	// once), RawDeep "]", RawSuffix; status Status (default 200), content
	// type ContentType (default application/json), Content-Length set.
	// Raw (or any raw_ field) turns it on, so an empty body can be sent.
	// RawAbort sends no Content-Length and cuts the connection after the
	// body instead of ending the response (HTTP/1.1: no terminating chunk;
	// HTTP/2: RST_STREAM). A watch gets the bytes as its stream.
	Raw         bool   `json:"raw,omitempty"`
	RawBody     string `json:"raw_body,omitempty"`
	RawPrefix   string `json:"raw_prefix,omitempty"`
	RawSuffix   string `json:"raw_suffix,omitempty"`
	RawRepeat   int    `json:"raw_repeat,omitempty"`
	RawDeep     int    `json:"raw_deep,omitempty"`
	RawAbort    bool   `json:"raw_abort,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Hits        int    `json:"hits"`
	Remaining   int    `json:"remaining"`
}

// maxRawLen caps a raw answer (prefix, nesting, repeats, suffix): enough
// to overflow any sane client cap, small enough to stream in seconds.
const maxRawLen = 1 << 30

func (f *fault) raw() bool {
	return f.Raw || f.RawBody != "" || f.RawPrefix != "" || f.RawSuffix != "" || f.RawDeep > 0 ||
		f.RawRepeat > 0 || f.RawAbort
}

// rawLen is the length of the raw answer, or -1 if over maxRawLen.
func (f *fault) rawLen() int64 {
	n := int64(f.RawRepeat)
	if n <= 0 {
		n = 1
	}
	if f.RawBody != "" && n > maxRawLen/int64(len(f.RawBody)) {
		return -1
	}
	total := int64(len(f.RawPrefix)) + int64(len(f.RawSuffix)) + 2*int64(f.RawDeep) + n*int64(len(f.RawBody))
	if total > maxRawLen {
		return -1
	}
	return total
}

// writeRaw sends the raw answer, streaming the repeats in large writes so
// that a body of hundreds of MiB costs little memory here. It stops early
// when the client goes away.
func writeRaw(w http.ResponseWriter, f *fault) {
	code := f.Status
	if code == 0 {
		code = 200
	}
	ct := f.ContentType
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	if f.RetryAfterS > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(f.RetryAfterS))
	}
	if !f.RawAbort {
		w.Header().Set("Content-Length", fmt.Sprint(f.rawLen()))
	}
	w.WriteHeader(code)
	write := func(b []byte) bool { _, err := w.Write(b); return err == nil }
	repeat := func(unit string, n int) bool {
		if n <= 0 || unit == "" {
			return true
		}
		per := 1
		if len(unit) < 1<<16 {
			per = (1 << 16) / len(unit)
		}
		chunk := []byte(strings.Repeat(unit, min(per, n)))
		for n > 0 {
			k := min(per, n)
			if !write(chunk[:k*len(unit)]) {
				return false
			}
			n -= k
		}
		return true
	}
	times := f.RawRepeat
	if times <= 0 {
		times = 1
	}
	if write([]byte(f.RawPrefix)) && repeat("[", f.RawDeep) && repeat(f.RawBody, times) &&
		repeat("]", f.RawDeep) && write([]byte(f.RawSuffix)) && f.RawAbort {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		panic(http.ErrAbortHandler)
	}
}

func (f *fault) matches(ri *reqInfo, user string) bool {
	m := f.Match
	if m.Verb != "" && m.Verb != "*" && !strings.EqualFold(m.Verb, ri.verb) {
		return false
	}
	if m.Resource != "" && m.Resource != "*" {
		res := ri.resource
		if strings.Contains(m.Resource, "/") && ri.subresource != "" {
			res += "/" + ri.subresource
		}
		if m.Resource != res && m.Resource != qualified(ri.group, ri.resource) {
			return false
		}
	}
	if m.Subresource != "" && m.Subresource != "*" && m.Subresource != ri.subresource {
		return false
	}
	if m.Namespace != "" && m.Namespace != "*" && m.Namespace != ri.namespace {
		return false
	}
	if m.Name != "" && m.Name != "*" && m.Name != ri.name {
		return false
	}
	if m.User != "" && m.User != "*" && m.User != user {
		return false
	}
	return true
}

type recorded struct {
	Seq         int    `json:"seq"`
	Time        string `json:"time"` // when the request arrived (RFC 3339, nanoseconds)
	End         string `json:"end"`  // when its answer ended or the client went; "" while open
	User        string `json:"user"`
	Verb        string `json:"verb"`
	Method      string `json:"method"`
	Path        string `json:"path"`
	Query       string `json:"query"`
	ContentType string `json:"contentType"`
	Accept      string `json:"accept,omitempty"`
	UserAgent   string `json:"userAgent,omitempty"`
	Resource    string `json:"resource,omitempty"`
	Subresource string `json:"subresource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
	Code        int    `json:"code"`
	Fault       int    `json:"fault,omitempty"`
	Body        any    `json:"body,omitempty"`
}

type control struct {
	mu        sync.Mutex
	faults    []*fault
	nextID    int
	cleared   chan struct{} // closed when faults are cleared (ends hangs)
	requests  []*recorded
	seq       int
	stats     map[string]int
	hanging   map[int]bool // count-limited hang faults used up but not cleared
	bookmark  time.Duration
	tooLarge  time.Duration
	maxRecord int
}

func newControl() *control {
	return &control{cleared: make(chan struct{}), stats: map[string]int{}, hanging: map[int]bool{},
		bookmark: time.Minute, tooLarge: 3 * time.Second, maxRecord: 100000}
}

// pick returns the fault that fires for this request, counting it.
func (c *control) pick(ri *reqInfo, user string) *fault {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, f := range c.faults {
		if !f.matches(ri, user) {
			continue
		}
		f.Hits++
		cp := *f
		if f.Count > 0 {
			f.Remaining--
			if f.Remaining <= 0 {
				c.faults = append(c.faults[:i], c.faults[i+1:]...)
				if f.Hang {
					c.hanging[f.ID] = true
				}
			}
		}
		return &cp
	}
	return nil
}

// active reports whether fault id is still set (a count-limited fault that
// fired its last time is not, yet a hang it started holds until cleared).
func (c *control) active(id int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.faults {
		if f.ID == id {
			return true
		}
	}
	return c.hanging[id]
}

func (c *control) clearedCh() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cleared
}

func (c *control) record(rec *recorded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	rec.Seq = c.seq
	if len(c.requests) >= c.maxRecord {
		c.requests = c.requests[1:]
	}
	c.requests = append(c.requests, rec)
}

// finish stamps the end of a request.
func (c *control) finish(rec *recorded) {
	t := time.Now().UTC().Format(time.RFC3339Nano)
	c.mu.Lock()
	defer c.mu.Unlock()
	rec.End = t
}

func (c *control) setCode(rec *recorded, code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rec.Code != 0 {
		return
	}
	rec.Code = code
	res := rec.Resource
	if rec.Subresource != "" {
		res += "/" + rec.Subresource
	}
	c.stats[fmt.Sprintf("%s\x00%s\x00%d", rec.Verb, res, code)]++
}

// faultError is the failure a fault answers with.
func faultError(f *fault, ri *reqInfo, user string) *apiError {
	code := f.Status
	var e *apiError
	switch code {
	case 403:
		e = errForbidden(ri, user)
	case 401:
		e = errUnauthorized()
	case 404:
		e = errNotFound(ri.group, ri.resource, ri.name)
	case 409:
		e = errConflict(ri.group, ri.resource, ri.name, optimisticLockMsg)
	case 410:
		e = errExpired("The resourceVersion for the provided list is too old.")
	case 429:
		e = &apiError{code: 429, reason: "TooManyRequests", message: "Too many requests, please try again later.", plain: true}
	case 500:
		e = errInternal("injected fault")
	case 503:
		e = &apiError{code: 503, reason: "ServiceUnavailable", message: "the server is currently unable to handle the request"}
	case 504:
		e = &apiError{code: 504, reason: "Timeout", message: "Timeout: request did not complete within requested timeout - context deadline exceeded", details: Obj{}}
	default:
		e = &apiError{code: code, reason: reasonFor(code), message: http.StatusText(code)}
	}
	if f.Message != "" {
		e.message = f.Message
	}
	if f.RetryAfterS > 0 {
		e.retryAfter = f.RetryAfterS
		if !e.plain {
			if e.details == nil {
				e.details = Obj{}
			}
			e.details["retryAfterSeconds"] = f.RetryAfterS
		}
	}
	switch f.Body {
	case "status":
		e.plain = false
	case "text":
		e.plain = true
	}
	return e
}

// ---- secret redaction for the request log

func hashStr(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func hashData(v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		sum := sha256.Sum256(b)
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return hashStr(s)
}

func hashStringData(v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	return hashStr(s)
}

func redactMapValues(v any, h func(any) any) any {
	m, ok := v.(Obj)
	if !ok {
		return h(v)
	}
	out := Obj{}
	for k, x := range m {
		out[k] = h(x)
	}
	return out
}

// redactSecretBody replaces secret values in a request body by the SHA-256
// of their plain bytes ("sha256:<hex>"), keeping the keys.
func redactSecretBody(body []byte) any {
	v, err := decodeJSON(body)
	if err != nil {
		return fmt.Sprintf("<%d bytes, not JSON, %s>", len(body), hashStr(string(body)))
	}
	redactObj := func(o Obj) {
		if d, ok := o["data"]; ok {
			o["data"] = redactMapValues(d, hashData)
		}
		if d, ok := o["stringData"]; ok {
			o["stringData"] = redactMapValues(d, hashStringData)
		}
		if a := getMap(o, "metadata", "annotations"); a != nil {
			if s, ok := a["kubectl.kubernetes.io/last-applied-configuration"].(string); ok {
				a["kubectl.kubernetes.io/last-applied-configuration"] = hashStr(s)
			}
		}
	}
	switch t := v.(type) {
	case Obj:
		redactObj(t)
		if items, ok := t["items"].([]any); ok {
			for _, it := range items {
				if o, ok := it.(Obj); ok {
					redactObj(o)
				}
			}
		}
	case []any:
		for _, x := range t {
			op, ok := x.(Obj)
			if !ok {
				continue
			}
			p, _ := op["path"].(string)
			if _, has := op["value"]; !has {
				continue
			}
			switch {
			case strings.HasPrefix(p, "/data/"):
				op["value"] = hashData(op["value"])
			case strings.HasPrefix(p, "/stringData/"):
				op["value"] = hashStringData(op["value"])
			case p == "/data":
				op["value"] = redactMapValues(op["value"], hashData)
			case p == "/stringData":
				op["value"] = redactMapValues(op["value"], hashStringData)
			case p == "" || p == "/":
				if o, ok := op["value"].(Obj); ok {
					redactObj(o)
				}
			case strings.HasPrefix(p, "/metadata/annotations"):
				if strings.Contains(p, "last-applied-configuration") {
					op["value"] = hashStringData(op["value"])
				}
			}
		}
	}
	return v
}

// ---- the control API

func (sv *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	c := sv.ctl
	path := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/_fake/"), "/")
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.MarshalIndent(v, "", "  ")
		w.Write(append(b, '\n'))
	}
	bad := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		b, _ := json.Marshal(map[string]string{"error": msg})
		w.Write(append(b, '\n'))
	}
	switch {
	case path == "faults" && r.Method == http.MethodPost:
		var f fault
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &f); err != nil {
			bad(400, err.Error())
			return
		}
		if f.Status == 0 && f.DelayMs == 0 && !f.Hang && !f.raw() && !f.DropContinue {
			bad(400, "a fault needs status, delay_ms, hang, drop_continue or a raw answer")
			return
		}
		if f.raw() && (f.RawDeep < 0 || f.RawRepeat < 0 || f.rawLen() < 0) {
			bad(400, fmt.Sprintf("a raw answer is at most %d bytes", maxRawLen))
			return
		}
		if f.Status != 0 && (f.Status < 100 || f.Status > 999) {
			bad(400, "status must be an HTTP status code")
			return
		}
		c.mu.Lock()
		c.nextID++
		f.ID = c.nextID
		f.Remaining = f.Count
		c.faults = append(c.faults, &f)
		c.mu.Unlock()
		reply(f)
	case path == "faults" && r.Method == http.MethodGet:
		c.mu.Lock()
		out := []fault{}
		for _, f := range c.faults {
			out = append(out, *f)
		}
		c.mu.Unlock()
		reply(out)
	case path == "faults" && r.Method == http.MethodDelete:
		c.mu.Lock()
		c.faults = nil
		c.hanging = map[int]bool{}
		close(c.cleared)
		c.cleared = make(chan struct{})
		c.mu.Unlock()
		reply(map[string]any{"cleared": true})
	case strings.HasPrefix(path, "faults/") && r.Method == http.MethodDelete:
		id := strings.TrimPrefix(path, "faults/")
		c.mu.Lock()
		for i, f := range c.faults {
			if fmt.Sprint(f.ID) == id {
				c.faults = append(c.faults[:i], c.faults[i+1:]...)
				break
			}
		}
		for hid := range c.hanging {
			if fmt.Sprint(hid) == id {
				delete(c.hanging, hid)
			}
		}
		close(c.cleared)
		c.cleared = make(chan struct{})
		c.mu.Unlock()
		reply(map[string]any{"deleted": id})
	case path == "drop-watches" && r.Method == http.MethodPost:
		graceful := r.URL.Query().Get("graceful") == "1" || r.URL.Query().Get("graceful") == "true"
		n := sv.store.dropWatches(!graceful)
		reply(map[string]any{"dropped": n})
	case path == "compact" && r.Method == http.MethodPost:
		sv.store.compact()
		reply(map[string]any{"compacted": sv.currentRV()})
	case path == "restart" && r.Method == http.MethodPost:
		n := sv.store.dropWatches(true)
		sv.store.compact()
		reply(map[string]any{"dropped": n, "compacted": sv.currentRV()})
	case path == "requests" && r.Method == http.MethodGet:
		q := r.URL.Query()
		var since int
		fmt.Sscan(q.Get("since"), &since)
		c.mu.Lock()
		out := make([]recorded, 0, len(c.requests))
		for _, rec := range c.requests {
			if rec.Seq <= since || (q.Get("verb") != "" && q.Get("verb") != rec.Verb) ||
				(q.Get("resource") != "" && q.Get("resource") != rec.Resource) ||
				(q.Get("namespace") != "" && q.Get("namespace") != rec.Namespace) ||
				(q.Get("user") != "" && q.Get("user") != rec.User) {
				continue
			}
			out = append(out, *rec)
		}
		c.mu.Unlock()
		reply(out)
	case path == "requests" && r.Method == http.MethodDelete:
		c.mu.Lock()
		c.requests = nil
		c.mu.Unlock()
		reply(map[string]any{"cleared": true})
	case path == "stats" && r.Method == http.MethodDelete:
		c.mu.Lock()
		c.stats = map[string]int{}
		c.mu.Unlock()
		reply(map[string]any{"cleared": true})
	case path == "stats" && r.Method == http.MethodGet:
		c.mu.Lock()
		type row struct {
			Verb     string `json:"verb"`
			Resource string `json:"resource"`
			Code     int    `json:"code"`
			Count    int    `json:"count"`
		}
		rows := []row{}
		total := 0
		for k, n := range c.stats {
			parts := strings.Split(k, "\x00")
			var code int
			fmt.Sscan(parts[2], &code)
			rows = append(rows, row{parts[0], parts[1], code, n})
			total += n
		}
		c.mu.Unlock()
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if a.Verb != b.Verb {
				return a.Verb < b.Verb
			}
			if a.Resource != b.Resource {
				return a.Resource < b.Resource
			}
			return a.Code < b.Code
		})
		reply(map[string]any{"requests": rows, "total": total, "openWatches": sv.store.watchCount(), "resourceVersion": sv.currentRV()})
	case path == "config" && (r.Method == http.MethodGet || r.Method == http.MethodPost):
		if r.Method == http.MethodPost {
			var cfg struct {
				History            *int `json:"history"`
				BookmarkIntervalMs *int `json:"bookmark_interval_ms"`
				TooLargeWaitMs     *int `json:"too_large_wait_ms"`
			}
			body, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(body, &cfg); err != nil {
				bad(400, err.Error())
				return
			}
			if cfg.History != nil {
				sv.store.setHistory(*cfg.History)
			}
			c.mu.Lock()
			if cfg.BookmarkIntervalMs != nil && *cfg.BookmarkIntervalMs > 0 {
				c.bookmark = time.Duration(*cfg.BookmarkIntervalMs) * time.Millisecond
			}
			if cfg.TooLargeWaitMs != nil {
				c.tooLarge = time.Duration(*cfg.TooLargeWaitMs) * time.Millisecond
			}
			c.mu.Unlock()
		}
		sv.store.mu.Lock()
		h := sv.store.histCap
		sv.store.mu.Unlock()
		c.mu.Lock()
		out := map[string]any{"history": h, "bookmark_interval_ms": c.bookmark.Milliseconds(), "too_large_wait_ms": c.tooLarge.Milliseconds()}
		c.mu.Unlock()
		reply(out)
	case path == "tokens" && r.Method == http.MethodPost:
		var t struct {
			Token  string   `json:"token"`
			User   string   `json:"user"`
			UID    string   `json:"uid"`
			Groups []string `json:"groups"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &t); err != nil || t.Token == "" || t.User == "" {
			bad(400, "want {\"token\":..,\"user\":..,\"uid\":..,\"groups\":[..]}")
			return
		}
		sv.mu.Lock()
		sv.tokens[t.Token] = tokenUser{t.User, t.UID, t.Groups}
		sv.mu.Unlock()
		reply(map[string]any{"added": t.User})
	default:
		bad(404, "unknown control endpoint "+r.Method+" "+r.URL.Path)
	}
}
