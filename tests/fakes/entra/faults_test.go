package entra

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFault429WithRetryAfter(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	sa := loadKey(t, "sa")
	w.addFault(Fault{Endpoint: "token", Status: 429, RetryAfterS: 7, Count: 1})
	a := w.postToken(tokenForm(assertion(t, sa, nil)))
	checkAADError(t, a, 429, "temporarily_unavailable", 90055)
	if a.header.Get("Retry-After") != "7" {
		t.Errorf("Retry-After %q", a.header.Get("Retry-After"))
	}
	if a := w.postToken(tokenForm(assertion(t, sa, nil))); a.status != 200 {
		t.Errorf("fault with count 1 applied twice: %d", a.status)
	}
	recs := w.srv.Requests("token", 0)
	if recs[0].Fault == nil || recs[0].Fault.Status != 429 || recs[0].Issued != nil || recs[1].Fault != nil {
		t.Errorf("records %+v", recs)
	}
	if len(w.srv.Faults()) != 0 {
		t.Errorf("used-up fault still pending: %+v", w.srv.Faults())
	}
}

func TestFault500(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	w.addFault(Fault{Endpoint: "imds", Status: 500, Count: 2})
	w.addFault(Fault{Endpoint: "token", Status: 500, Count: 1})
	for i := 0; i < 2; i++ {
		a := w.imdsToken(imdsQuery, "Metadata", "true")
		if a.status != 500 || a.body["error"] != "unknown" {
			t.Errorf("imds %d: %d %s", i, a.status, a.raw)
		}
	}
	if a := w.imdsToken(imdsQuery, "Metadata", "true"); a.status != 200 {
		t.Errorf("third imds request: %d", a.status)
	}
	checkAADError(t, w.postToken(tokenForm(assertion(t, loadKey(t, "sa"), nil))), 500, "server_error", 50000)
	st := w.srv.Stats()
	if st.Endpoints["imds"]["500"] != 2 || st.Endpoints["imds"]["200"] != 1 || st.Endpoints["token"]["500"] != 1 || st.Total != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestFaultDelay(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	w.addFault(Fault{Endpoint: "token", DelayMS: 300, Count: 1})
	start := time.Now()
	a := w.postToken(tokenForm(assertion(t, loadKey(t, "sa"), nil)))
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("answered after %v, want >= 300ms", d)
	}
	if a.status != 200 || a.body["access_token"] == nil {
		t.Errorf("a delay alone must still answer properly: %d %s", a.status, a.raw)
	}
}

func TestFaultMalformed(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	w.addFault(Fault{Endpoint: "any", Malformed: true, Count: 2})
	for _, do := range []func() (*http.Response, error){
		func() (*http.Response, error) {
			return w.client.PostForm(w.tokenURL(tenantID), tokenForm(assertion(t, loadKey(t, "sa"), nil)))
		},
		func() (*http.Response, error) {
			req, _ := http.NewRequest(http.MethodGet, w.imds.URL+"/metadata/identity/oauth2/token?"+imdsQuery, nil)
			req.Header.Set("Metadata", "true")
			return w.client.Do(req)
		},
	} {
		resp, err := do()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Valid(b) {
			t.Errorf("%d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
}

func TestFaultTruncate(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	w.addFault(Fault{Endpoint: "token", Truncate: true, Count: 1})
	resp, err := w.client.PostForm(w.tokenURL(tenantID), tokenForm(assertion(t, loadKey(t, "sa"), nil)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading a truncated answer: %v (got %d bytes of %d)", err, len(b), resp.ContentLength)
	}
	if resp.StatusCode != 200 || int64(len(b)) >= resp.ContentLength || json.Valid(b) {
		t.Errorf("status %d, %d of %d bytes", resp.StatusCode, len(b), resp.ContentLength)
	}
	recs := w.srv.Requests("token", 0)
	if len(recs) != 1 || recs[0].Issued == nil || !strings.Contains(recs[0].Detail, "cut") {
		t.Errorf("records %+v", recs)
	}
}

func TestFaultHangUntilClientTimesOut(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	w.addFault(Fault{Endpoint: "imds", Hang: true, Count: 1})
	client := &http.Client{Timeout: 300 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodGet, w.imds.URL+"/metadata/identity/oauth2/token?"+imdsQuery, nil)
	req.Header.Set("Metadata", "true")
	start := time.Now()
	_, err := client.Do(req)
	var ne interface{ Timeout() bool }
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want a client timeout, got %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %v", d)
	}
	// The fake notices the client leaving and records an unanswered request.
	deadline := time.Now().Add(3 * time.Second)
	for len(w.srv.Requests("imds", 0)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	recs := w.srv.Requests("imds", 0)
	if len(recs) != 1 || recs[0].Status != 0 || recs[0].Detail != "hung until the client went away" {
		t.Errorf("records %+v", recs)
	}
	if a := w.imdsToken(imdsQuery, "Metadata", "true"); a.status != 200 {
		t.Errorf("next request: %d", a.status)
	}
}

func TestFaultHangReleasedOnClose(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	w.addFault(Fault{Endpoint: "token", Hang: true})
	done := make(chan error, 1)
	go func() {
		resp, err := w.client.PostForm(w.tokenURL(tenantID), tokenForm(assertion(t, loadKey(t, "sa"), nil)))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	w.srv.Close()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("hanging request not released by Close")
	}
}

func TestFaultOrderCountAndClear(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	sa := loadKey(t, "sa")
	w.addFault(Fault{Endpoint: "token", Status: 429, Count: 1})
	w.addFault(Fault{Endpoint: "token", Status: 503, Count: 1})
	w.addFault(Fault{Endpoint: "discovery", Status: 500}) // until cleared
	for _, want := range []int{429, 503, 200} {
		if a := w.postToken(tokenForm(assertion(t, sa, nil))); a.status != want {
			t.Errorf("status %d, want %d", a.status, want)
		}
	}
	cfgURL := w.entra.URL + "/" + tenantID + "/v2.0/.well-known/openid-configuration"
	for i := 0; i < 3; i++ {
		if a := w.get(cfgURL); a.status != 500 {
			t.Errorf("count 0 fault: request %d got %d", i, a.status)
		}
	}
	if a := w.imdsToken(imdsQuery, "Metadata", "true"); a.status != 200 {
		t.Errorf("a discovery fault hit IMDS: %d", a.status)
	}
	if a := w.control(http.MethodGet, "/_fake/faults", nil); a.status != 200 || !strings.Contains(string(a.raw), `"used":3`) {
		t.Errorf("GET faults: %s", a.raw)
	}
	if a := w.control(http.MethodDelete, "/_fake/faults", nil); a.status != 204 {
		t.Errorf("DELETE faults: %d", a.status)
	}
	if a := w.get(cfgURL); a.status != 200 {
		t.Errorf("after DELETE: %d", a.status)
	}
}

func TestFaultBodyAndValidation(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	w.addFault(Fault{Endpoint: "token", Status: 502, Body: "<html>Bad Gateway</html>", ContentType: "text/html", Count: 1})
	resp, err := w.client.PostForm(w.tokenURL(tenantID), tokenForm(assertion(t, loadKey(t, "sa"), nil)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || resp.Header.Get("Content-Type") != "text/html" || string(b) != "<html>Bad Gateway</html>" {
		t.Errorf("%d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	for _, bad := range []string{
		`{"endpoint":"nope","status":500}`,
		`{"endpoint":"token","status":42}`,
		`{"endpoint":"token","hang":true,"truncate":true}`,
		`{"endpoint":"token","truncate":true,"status":500}`,
		`{"endpoint":"token","count":-1}`,
		`{"endpoint":"token","stauts":500}`,
		`[{"endpoint":"token","status":500},{"endpoint":"x"}]`,
	} {
		if a := w.control(http.MethodPost, "/_fake/faults", bad); a.status != 400 {
			t.Errorf("%s accepted: %d", bad, a.status)
		}
	}
	if len(w.srv.Faults()) != 0 {
		t.Errorf("a rejected batch left faults: %+v", w.srv.Faults())
	}
	if a := w.control(http.MethodPost, "/_fake/faults", `[{"endpoint":"token","status":500,"count":1},{"endpoint":"imds","status":429,"count":1}]`); a.status != 200 {
		t.Errorf("array of faults: %d %s", a.status, a.raw)
	}
	if n := len(w.srv.Faults()); n != 2 {
		t.Errorf("%d faults pending, want 2", n)
	}
}
