package kube

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Raw fault answers: exact bytes, status, content type and length; repeats
// and nesting streamed; the request log gets both ends of each request.
func TestRawFaults(t *testing.T) {
	f := startFake(t)
	f.createSecret("ns1", "s", nil, nil)
	f.control("DELETE", "requests", nil)

	f.control("POST", "faults", Obj{"match": Obj{"verb": "get", "resource": "secrets"}, "count": 1,
		"raw_body": `{"kind":"Secret","metadata":`, "status": 202, "content_type": "text/x-junk"})
	r := f.get(secretURL)
	if r.code != 202 || string(r.raw) != `{"kind":"Secret","metadata":` ||
		r.hdr.Get("Content-Type") != "text/x-junk" || r.hdr.Get("Content-Length") != "28" {
		t.Fatalf("raw body: %d %v %q", r.code, r.hdr, r.raw)
	}
	f.mustCode(f.get(secretURL), 200) // count 1: gone

	// an empty body: "raw" alone
	f.control("POST", "faults", Obj{"match": Obj{"verb": "list"}, "count": 1, "raw": true})
	r = f.get("/api/v1/namespaces/ns1/secrets")
	if r.code != 200 || len(r.raw) != 0 || r.hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("empty raw body: %d %v %q", r.code, r.hdr, r.raw)
	}

	// prefix, nesting, repeats, suffix
	f.control("POST", "faults", Obj{"match": Obj{"verb": "list"}, "count": 1, "raw_prefix": `{"items":`,
		"raw_deep": 3, "raw_body": "ab", "raw_repeat": 4, "raw_suffix": "}"})
	r = f.get("/api/v1/namespaces/ns1/secrets")
	if string(r.raw) != `{"items":[[[abababab]]]}` {
		t.Fatalf("composed body %q", r.raw)
	}

	// an enormous body is streamed, every byte of it
	const unit, times = "0123456789abcdef", 5 << 20 // 80 MiB
	f.control("POST", "faults", Obj{"match": Obj{"verb": "list"}, "count": 1, "raw_body": unit,
		"raw_repeat": times, "raw_deep": 100000})
	res, err := f.h2.Get(f.url + "/api/v1/namespaces/ns1/secrets")
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 100000)
	if _, err := io.ReadFull(res.Body, head); err != nil || strings.Trim(string(head), "[") != "" {
		t.Fatalf("nesting not sent first: %v", err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil || n != int64(len(unit)*times+100000) || res.ContentLength != int64(len(unit)*times+200000) {
		t.Fatalf("enormous body: %d bytes (Content-Length %d), %v", n, res.ContentLength, err)
	}

	// raw_abort: the client sees the body and then a broken stream
	f.control("POST", "faults", Obj{"match": Obj{"verb": "get"}, "count": 1, "raw_body": `{"kind":`, "raw_abort": true})
	req, _ := http.NewRequest("GET", f.url+secretURL, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err = f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil || string(b) != `{"kind":` {
		t.Fatalf("abort: want the body then an error, got %q, %v", b, err)
	}

	// a watch gets the raw bytes as its stream
	f.control("POST", "faults", Obj{"match": Obj{"verb": "watch"}, "count": 1,
		"raw_body": "{\"type\":\"ADDED\",\"object\":5}\n\x00garbage\n"})
	r = f.get("/api/v1/namespaces/ns1/secrets?watch=1")
	if r.code != 200 || !bytes.Equal(r.raw, []byte("{\"type\":\"ADDED\",\"object\":5}\n\x00garbage\n")) {
		t.Fatalf("raw watch: %d %q", r.code, r.raw)
	}

	// a delay then a raw answer with Retry-After
	f.control("POST", "faults", Obj{"match": Obj{"verb": "get"}, "count": 1, "delay_ms": 300,
		"status": 503, "retry_after_s": 2, "raw_body": "<html>busy</html>", "content_type": "text/html"})
	start := time.Now()
	r = f.get(secretURL)
	if time.Since(start) < 300*time.Millisecond || r.code != 503 || r.hdr.Get("Retry-After") != "2" ||
		string(r.raw) != "<html>busy</html>" {
		t.Fatalf("delayed raw: %v %d %v %q", time.Since(start), r.code, r.hdr, r.raw)
	}

	// bad raw faults
	for _, bad := range []Obj{
		{"raw_body": "x", "raw_repeat": 2 << 30},
		{"raw_deep": -1},
		{"raw_body": "x", "status": 42},
	} {
		bad["match"] = Obj{"verb": "get"}
		if r := f.reqTok("", "POST", "/_fake/faults", "application/json", bad); r.code != 400 {
			t.Fatalf("fault %v accepted: %d %s", bad, r.code, r.raw)
		}
	}

	// the request log: fault ids, codes, and start/end times to the nanosecond
	reqs := f.controlList("requests?verb=get&resource=secrets")
	if len(reqs) < 4 {
		t.Fatalf("requests %v", reqs)
	}
	last := reqs[len(reqs)-1].(Obj)
	t0, err1 := time.Parse(time.RFC3339Nano, getStr(last, "time"))
	t1, err2 := time.Parse(time.RFC3339Nano, getStr(last, "end"))
	if err1 != nil || err2 != nil || t1.Sub(t0) < 300*time.Millisecond || t1.Sub(t0) > 5*time.Second {
		t.Fatalf("times of the delayed request: %v %v %v %v", t0, t1, err1, err2)
	}
	if c, _ := getInt(last, "code"); c != 503 {
		t.Fatalf("recorded code %v", last)
	}
	if id, _ := getInt(last, "fault"); id == 0 {
		t.Fatalf("recorded fault %v", last)
	}
}

// A hang held open shows no end time until the client goes.
func TestRequestEndTimeOfHang(t *testing.T) {
	f := startFake(t)
	f.control("DELETE", "requests", nil)
	f.control("POST", "faults", Obj{"match": Obj{"verb": "list"}, "hang": true})
	c := &http.Client{Transport: f.http.Transport, Timeout: 400 * time.Millisecond}
	req, _ := http.NewRequest("GET", f.url+"/api/v1/namespaces/ns1/secrets", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	go func() {
		time.Sleep(150 * time.Millisecond)
		reqs := f.controlList("requests?verb=list")
		if len(reqs) != 1 || getStr(reqs[0].(Obj), "end") != "" {
			t.Errorf("while hanging: %v", reqs)
		}
	}()
	if _, err := c.Do(req); err == nil {
		t.Fatal("the hang answered")
	}
	time.Sleep(200 * time.Millisecond)
	reqs := f.controlList("requests?verb=list")
	if len(reqs) != 1 {
		t.Fatalf("requests %v", reqs)
	}
	t0, _ := time.Parse(time.RFC3339Nano, getStr(reqs[0].(Obj), "time"))
	t1, err := time.Parse(time.RFC3339Nano, getStr(reqs[0].(Obj), "end"))
	if err != nil || t1.Sub(t0) < 350*time.Millisecond || t1.Sub(t0) > 2*time.Second {
		t.Fatalf("a hang the client gave up after 400ms lasted %v (%v)", t1.Sub(t0), err)
	}
	f.control("DELETE", "faults", nil)
}
