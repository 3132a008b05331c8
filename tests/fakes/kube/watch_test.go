package kube

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestWatchEventsFromResourceVersion(t *testing.T) {
	f := startFake(t)
	f.createSecret("ns1", "pre", nil, nil)
	lst := f.get("/api/v1/namespaces/ns1/secrets")
	rv := lst.str("metadata", "resourceVersion")
	ws := f.watch("/api/v1/namespaces/ns1/secrets?watch=1&resourceVersion=" + rv)
	if te := ws.res.TransferEncoding; len(te) != 1 || te[0] != "chunked" {
		t.Fatalf("want chunked transfer encoding, got %v", te)
	}
	if ct := ws.res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	c := f.createSecret("ns1", "s1", nil, map[string]string{"k": "v"})
	e := ws.next()
	if e.Type != "ADDED" || evName(e) != "s1" || evRV(e) != c.str("metadata", "resourceVersion") {
		t.Fatalf("event %+v", e)
	}
	if e.Object["kind"] != "Secret" || e.Object["apiVersion"] != "v1" {
		t.Fatalf("event object without kind: %v", e.Object)
	}
	f.mustCode(f.req("PATCH", "/api/v1/namespaces/ns1/secrets/s1", ctMergePatch, `{"data":{"k2":"djI="}}`), 200)
	if e = ws.next(); e.Type != "MODIFIED" || getStr(e.Object, "data", "k2") != "djI=" {
		t.Fatalf("event %+v", e)
	}
	f.mustCode(f.req("DELETE", "/api/v1/namespaces/ns1/secrets/s1", "", nil), 200)
	e = ws.next()
	if e.Type != "DELETED" || evName(e) != "s1" {
		t.Fatalf("event %+v", e)
	}
	n, _ := strconv.Atoi(evRV(e))
	if n <= 0 || evRV(e) == c.str("metadata", "resourceVersion") {
		t.Fatalf("DELETED must carry the deletion's RV: %v", e.Object)
	}
	// other namespaces are not seen
	f.createSecret("ns2", "other", nil, nil)
	ws.none(200 * time.Millisecond)
}

func TestWatchInitialStateWithoutResourceVersion(t *testing.T) {
	f := startFake(t)
	f.createSecret("ns1", "a", nil, nil)
	f.createSecret("ns2", "b", nil, nil)
	ws := f.watch("/api/v1/secrets?watch=true")
	e1, e2 := ws.next(), ws.next()
	if e1.Type != "ADDED" || e2.Type != "ADDED" || evName(e1)+evName(e2) != "ab" {
		t.Fatalf("initial events %+v %+v", e1, e2)
	}
	f.createSecret("ns1", "c", nil, nil)
	if e := ws.next(); e.Type != "ADDED" || evName(e) != "c" {
		t.Fatalf("event %+v", e)
	}
}

func TestWatchLabelSelectorEnterAndLeave(t *testing.T) {
	f := startFake(t)
	rv := f.get("/api/v1/namespaces/ns1/secrets").str("metadata", "resourceVersion")
	ws := f.watch("/api/v1/namespaces/ns1/secrets?watch=1&labelSelector=app%3Drotator&resourceVersion=" + rv)
	f.createSecret("ns1", "s", map[string]string{"app": "other"}, nil)
	// label now matches: ADDED
	r := f.req("PATCH", "/api/v1/namespaces/ns1/secrets/s", ctMergePatch, `{"metadata":{"labels":{"app":"rotator"}}}`)
	f.mustCode(r, 200)
	e := ws.next()
	if e.Type != "ADDED" || evName(e) != "s" {
		t.Fatalf("want ADDED on entering the selector, got %+v", e)
	}
	f.mustCode(f.req("PATCH", "/api/v1/namespaces/ns1/secrets/s", ctMergePatch, `{"data":{"x":"eA=="}}`), 200)
	if e = ws.next(); e.Type != "MODIFIED" {
		t.Fatalf("want MODIFIED, got %+v", e)
	}
	// label no longer matches: DELETED with the previous content and the new RV
	r = f.req("PATCH", "/api/v1/namespaces/ns1/secrets/s", ctMergePatch, `{"metadata":{"labels":{"app":"gone"}}}`)
	f.mustCode(r, 200)
	e = ws.next()
	if e.Type != "DELETED" || getStr(e.Object, "metadata", "labels", "app") != "rotator" || evRV(e) != r.str("metadata", "resourceVersion") {
		t.Fatalf("want DELETED with old labels and new RV, got %+v (rv %s)", e, r.str("metadata", "resourceVersion"))
	}
	f.mustCode(f.req("PATCH", "/api/v1/namespaces/ns1/secrets/s", ctMergePatch, `{"data":{"y":"eQ=="}}`), 200)
	ws.none(200 * time.Millisecond)
}

func TestWatchBookmarksAndTimeout(t *testing.T) {
	f := startFake(t, func(c *Config) { c.BookmarkInterval = 100 * time.Millisecond })
	rv := f.get("/api/v1/namespaces/ns1/secrets").str("metadata", "resourceVersion")
	ws := f.watch("/api/v1/namespaces/ns1/secrets?watch=1&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion=" + rv)
	e := ws.next()
	if e.Type != "BOOKMARK" {
		t.Fatalf("want BOOKMARK, got %+v", e)
	}
	if len(e.Object) != 3 || e.Object["kind"] != "Secret" || e.Object["apiVersion"] != "v1" || len(getMap(e.Object, "metadata")) != 1 || evRV(e) != rv {
		t.Fatalf("bookmark object %v", e.Object)
	}
	f.createSecret("ns2", "elsewhere", nil, nil)
	// the bookmark RV advances even for changes the watcher does not see
	for {
		e = ws.next()
		if e.Type == "BOOKMARK" && evRV(e) != rv {
			break
		}
	}
	start := time.Now()
	if _, err := ws.end(3 * time.Second); err != nil {
		t.Fatalf("timeoutSeconds must end the watch cleanly: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("watch outlived timeoutSeconds")
	}
}

func TestWatchTooOldResourceVersion(t *testing.T) {
	f := startFake(t, func(c *Config) { c.History = 3 })
	first := f.createSecret("ns1", "s0", nil, nil).str("metadata", "resourceVersion")
	for i := 1; i <= 5; i++ {
		f.createSecret("ns1", "s"+strconv.Itoa(i), nil, nil)
	}
	ws := f.watch("/api/v1/namespaces/ns1/secrets?watch=1&resourceVersion=" + first)
	e := ws.next()
	if e.Type != "ERROR" {
		t.Fatalf("want ERROR, got %+v", e)
	}
	if e.Object["kind"] != "Status" || e.Object["reason"] != "Expired" || e.Object["status"] != "Failure" {
		t.Fatalf("error object %v", e.Object)
	}
	if c, _ := getInt(e.Object, "code"); c != 410 {
		t.Fatalf("code %v", e.Object["code"])
	}
	msg, _ := e.Object["message"].(string)
	if !strings.HasPrefix(msg, "too old resource version: "+first+" (") {
		t.Fatalf("message %q", msg)
	}
	if _, err := ws.end(2 * time.Second); err != nil {
		t.Fatalf("stream must end after the ERROR: %v", err)
	}
	// within the kept history the watch replays
	lst := f.get("/api/v1/namespaces/ns1/secrets").str("metadata", "resourceVersion")
	n, _ := strconv.Atoi(lst)
	ws = f.watch("/api/v1/namespaces/ns1/secrets?watch=1&resourceVersion=" + strconv.Itoa(n-1))
	if e := ws.next(); e.Type != "ADDED" || evName(e) != "s5" {
		t.Fatalf("replay: %+v", e)
	}
	// compaction: everything before now is too old
	f.control("POST", "compact", nil)
	ws = f.watch("/api/v1/namespaces/ns1/secrets?watch=1&resourceVersion=" + strconv.Itoa(n-1))
	e = ws.next()
	if e.Type != "ERROR" || e.Object["message"] != "too old resource version: "+strconv.Itoa(n-1)+" ("+lst+")" {
		t.Fatalf("after compact: %+v", e)
	}
	// history size settable at run time
	f.control("POST", "config", Obj{"history": 100})
	cfg := f.control("GET", "config", nil)
	if h, _ := getInt(cfg, "history"); h != 100 {
		t.Fatalf("config %v", cfg)
	}
}

func TestWatchDropAndRestart(t *testing.T) {
	f := startFake(t)
	rv := f.get("/api/v1/namespaces/ns1/secrets").str("metadata", "resourceVersion")
	ws := f.watch("/api/v1/namespaces/ns1/secrets?watch=1&resourceVersion=" + rv)
	f.createSecret("ns1", "a", nil, nil)
	ws.next()
	out := f.control("POST", "drop-watches", nil)
	if n, _ := getInt(out, "dropped"); n != 1 {
		t.Fatalf("dropped %v", out)
	}
	extra, err := ws.end(3 * time.Second)
	if err == nil || len(extra) != 0 {
		t.Fatalf("a dropped watch must break without a final event: extra=%v err=%v", extra, err)
	}
	// graceful drop ends the stream cleanly
	ws = f.watch("/api/v1/namespaces/ns1/secrets?watch=1&resourceVersion=" + rv)
	ws.next()
	f.control("POST", "drop-watches?graceful=1", nil)
	if _, err := ws.end(3 * time.Second); err != nil {
		t.Fatalf("graceful drop: %v", err)
	}
	// restart: objects stay, old RVs are too old
	f.control("POST", "restart", nil)
	if r := f.get("/api/v1/namespaces/ns1/secrets/a"); r.code != 200 {
		t.Fatalf("object lost on restart: %s", r.raw)
	}
	ws = f.watch("/api/v1/namespaces/ns1/secrets?watch=1&resourceVersion=" + rv)
	if e := ws.next(); e.Type != "ERROR" || e.Object["reason"] != "Expired" {
		t.Fatalf("after restart: %+v", e)
	}
}

func TestWatchSendInitialEvents(t *testing.T) {
	f := startFake(t)
	f.createSecret("ns1", "a", nil, nil)
	ws := f.watch("/api/v1/namespaces/ns1/secrets?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
	if e := ws.next(); e.Type != "ADDED" || evName(e) != "a" {
		t.Fatalf("%+v", e)
	}
	e := ws.next()
	if e.Type != "BOOKMARK" || getStr(e.Object, "metadata", "annotations", "k8s.io/initial-events-end") != "true" {
		t.Fatalf("want the initial-events-end bookmark, got %+v", e)
	}
	r := f.get("/api/v1/namespaces/ns1/secrets?watch=1&sendInitialEvents=true")
	wantStatus(t, r, 422, "Invalid", "")
}

func TestWatchSingleObjectByName(t *testing.T) {
	f := startFake(t)
	f.createSecret("ns1", "a", nil, nil)
	f.createSecret("ns1", "b", nil, nil)
	ws := f.watch("/api/v1/namespaces/ns1/secrets?watch=1&fieldSelector=metadata.name%3Db")
	if e := ws.next(); evName(e) != "b" {
		t.Fatalf("%+v", e)
	}
	ws.none(100 * time.Millisecond)
}
