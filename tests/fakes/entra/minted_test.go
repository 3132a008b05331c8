package entra

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GET /_fake/minted lists every access token issued, from the token endpoint
// and IMDS, including one a truncate fault cut short; errors mint nothing,
// and a reset does not forget them.
func TestMintedListsEveryIssuedToken(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	sa := loadKey(t, "sa")
	var want []string
	for i := 0; i < 2; i++ {
		a := w.postToken(tokenForm(assertion(t, sa, nil)))
		if a.status != 200 {
			t.Fatalf("token: %d %s", a.status, a.raw)
		}
		want = append(want, a.body["access_token"].(string))
	}
	a := w.imdsToken(imdsQuery, "Metadata", "true")
	if a.status != 200 {
		t.Fatalf("imds: %d %s", a.status, a.raw)
	}
	want = append(want, a.body["access_token"].(string))
	// Refused and faulted requests mint nothing; a truncated answer does.
	w.postToken(tokenForm(assertion(t, sa, map[string]any{"sub": "system:serviceaccount:x:y"})))
	w.addFault(Fault{Endpoint: "token", Status: 500, Count: 1})
	w.postToken(tokenForm(assertion(t, sa, nil)))
	w.addFault(Fault{Endpoint: "token", Truncate: true, Count: 1})
	if resp, err := w.client.PostForm(w.tokenURL(tenantID), tokenForm(assertion(t, sa, nil))); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if a := w.control(http.MethodPost, "/_fake/reset", nil); a.status != 204 {
		t.Fatalf("reset: %d", a.status)
	}

	a = w.control(http.MethodGet, "/_fake/minted", nil)
	if a.status != 200 {
		t.Fatalf("minted: %d %s", a.status, a.raw)
	}
	var got []MintedToken
	if err := json.Unmarshal(a.raw, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d minted tokens, want 4 (2 token, 1 imds, 1 truncated): %+v", len(got), got)
	}
	for i, tok := range want {
		if got[i].AccessToken != tok || got[i].SHA256 != TokenSHA256(tok) {
			t.Errorf("minted[%d] is not the token handed out", i)
		}
	}
	if got[0].Endpoint != "token" || got[2].Endpoint != "imds" || got[3].Endpoint != "token" {
		t.Errorf("endpoints %s %s %s", got[0].Endpoint, got[2].Endpoint, got[3].Endpoint)
	}
	if d := decodeJWT(got[3].AccessToken); d.Error != "" {
		t.Errorf("the truncated answer's token is not listed whole: %s", d.Error)
	}
	if _, err := time.Parse(time.RFC3339Nano, got[0].Time); err != nil {
		t.Errorf("time: %v", err)
	}
}

// clock_offset_s shifts iat, nbf and exp (not expires_in) of issued tokens.
func TestClockOffsetShiftsIssuedTimes(t *testing.T) {
	for _, off := range []int{180, -180} {
		cfg := baseConfig()
		cfg.TokenLifetimeS = 600
		zero := 0
		cfg.BackdateS = &zero
		cfg.ClockOffsetS = off
		w := newWorld(t, cfg, nil)
		before := time.Now().Unix()
		a := w.postToken(tokenForm(assertion(t, loadKey(t, "sa"), nil)))
		after := time.Now().Unix()
		if a.status != 200 {
			t.Fatalf("offset %d: %d %s", off, a.status, a.raw)
		}
		if n := num(t, a.body["expires_in"]); n != 600 {
			t.Errorf("offset %d: expires_in %d, want 600", off, n)
		}
		c := decodeJWT(a.body["access_token"].(string)).Claims
		iat, nbf, exp := claimInt(t, c, "iat"), claimInt(t, c, "nbf"), claimInt(t, c, "exp")
		o := int64(off)
		if iat < before+o || iat > after+o || nbf != iat || exp != iat+600 {
			t.Errorf("offset %d: iat %d nbf %d exp %d, issued between %d and %d", off, iat, nbf, exp, before, after)
		}
		a = w.imdsToken(imdsQuery, "Metadata", "true")
		if a.status != 200 {
			t.Fatalf("imds: %d %s", a.status, a.raw)
		}
		c = decodeJWT(a.body["access_token"].(string)).Claims
		exp = claimInt(t, c, "exp")
		if exp < before+o+600 || exp > after+o+600 || a.body["expires_on"] != strconv.FormatInt(exp, 10) {
			t.Errorf("offset %d: imds exp %d, expires_on %v", off, exp, a.body["expires_on"])
		}
	}
	cfg := baseConfig()
	b, _ := json.Marshal(cfg)
	s := strings.Replace(string(b), `"tenant_id"`, `"clock_offset_s":-300,"tenant_id"`, 1)
	if c, err := ParseConfig([]byte(s)); err != nil || c.ClockOffsetS != -300 {
		t.Errorf("clock_offset_s may be negative: %v", err)
	}
}

// enormous_bytes streams a valid token answer of exactly that size, with or
// without Content-Length.
func TestFaultEnormous(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	const n = 3<<20 + 7
	w.addFault(Fault{Endpoint: "token", EnormousBytes: n, Count: 1})
	w.addFault(Fault{Endpoint: "token", EnormousBytes: n, Chunked: true, Count: 1})
	for i, chunked := range []bool{false, true} {
		resp, err := w.client.PostForm(w.tokenURL(tenantID), tokenForm(assertion(t, loadKey(t, "sa"), nil)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(b) != n {
			t.Fatalf("%d: status %d, %d bytes, %v", i, resp.StatusCode, len(b), err)
		}
		if chunked != (resp.ContentLength == -1) {
			t.Errorf("%d: Content-Length %d with chunked %v", i, resp.ContentLength, chunked)
		}
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(b, &body); err != nil || len(body.AccessToken) < n-100 {
			t.Errorf("%d: not a valid JSON answer: %v", i, err)
		}
	}
	for _, f := range []Fault{{EnormousBytes: 10}, {Chunked: true}, {EnormousBytes: 1 << 20, Malformed: true}, {NestingDepth: -1}} {
		if a := w.control(http.MethodPost, "/_fake/faults", f); a.status != 400 {
			t.Errorf("fault %+v accepted: %d", f, a.status)
		}
	}
}

// nesting_depth answers with an access_token of N nested arrays.
func TestFaultNestingDepth(t *testing.T) {
	w := newWorld(t, baseConfig(), nil)
	const n = 100000
	w.addFault(Fault{Endpoint: "token", NestingDepth: n, Count: 1})
	resp, err := w.client.PostForm(w.tokenURL(tenantID), tokenForm(assertion(t, loadKey(t, "sa"), nil)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d: %v", resp.StatusCode, err)
	}
	// Go's decoder stops at depth 10000: check the shape by hand.
	head := `{"token_type":"Bearer","expires_in":3600,"access_token":`
	body, ok := strings.CutPrefix(string(b), head)
	body, ok2 := strings.CutSuffix(body, "}")
	if !ok || !ok2 || body != strings.Repeat("[", n)+strings.Repeat("]", n) {
		t.Errorf("body (%d bytes) is not %d nested arrays in a token answer", len(b), n)
	}
	if !json.Valid([]byte(head + "[[[]]]}")) {
		t.Errorf("the shape is not JSON")
	}
}
