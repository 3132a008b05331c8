package kube

import (
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func TestAuth401WithoutCredentials(t *testing.T) {
	f := startFake(t)
	r := f.reqTok("", "GET", "/api/v1/namespaces/ns1/secrets", "", nil)
	wantStatus(t, r, 401, "Unauthorized", "Unauthorized")
	if string(r.raw) != `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`+"\n" {
		t.Fatalf("401 body: %s", r.raw)
	}
	wantStatus(t, f.reqTok("wrong-token", "GET", "/api/v1/namespaces/ns1/secrets", "", nil), 401, "Unauthorized", "Unauthorized")
	// a client certificate from another CA is no credential
	cert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "wrong-ca.crt"), filepath.Join(pkiDir, "wrong-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	tr := f.http.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	res, err := (&http.Client{Transport: tr}).Get(f.url + "/api/v1/secrets")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("cert from another CA: %d", res.StatusCode)
	}
}

func TestAuthTokenAndCertUsers(t *testing.T) {
	f := startFake(t)
	f.mustCode(f.get("/api/v1/namespaces/ns1/secrets"), 200)
	res, err := f.h2.Get(f.url + "/api/v1/namespaces/ns1/secrets")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 2 {
		t.Fatalf("admin cert over h2: %d %s", res.StatusCode, res.Proto)
	}
	reqs := f.controlList("requests")
	var users []string
	for _, r := range reqs {
		users = append(users, getStr(r.(Obj), "user"))
	}
	if strings.Join(users, ",") != "alice,admin" {
		t.Fatalf("recorded users %v", users)
	}
}

func TestSecretCRUD(t *testing.T) {
	f := startFake(t)
	r := f.createSecret("ns1", "s1", map[string]string{"app": "x"}, map[string]string{"password": "hunter2"})
	if r.str("kind") != "Secret" || r.str("apiVersion") != "v1" || r.str("type") != "Opaque" {
		t.Fatalf("created: %s", r.raw)
	}
	md := getMap(r.obj, "metadata")
	for _, k := range []string{"uid", "resourceVersion", "creationTimestamp"} {
		if getStr(md, k) == "" {
			t.Fatalf("no metadata.%s: %s", k, r.raw)
		}
	}
	if _, ok := md["generation"]; ok {
		t.Fatalf("secrets have no generation: %s", r.raw)
	}
	if _, ok := r.obj["stringData"]; ok {
		t.Fatalf("stringData returned: %s", r.raw)
	}
	if getStr(r.obj, "data", "password") != base64.StdEncoding.EncodeToString([]byte("hunter2")) {
		t.Fatalf("stringData not merged into data: %s", r.raw)
	}
	rv1 := getStr(md, "resourceVersion")

	// 409 AlreadyExists
	r = f.req("POST", "/api/v1/namespaces/ns1/secrets", "", secretBody("s1", nil, nil))
	wantStatus(t, r, 409, "AlreadyExists", `secrets "s1" already exists`)
	if getStr(r.obj, "details", "kind") != "secrets" || getStr(r.obj, "details", "name") != "s1" {
		t.Fatalf("details: %s", r.raw)
	}
	// 404
	r = f.get("/api/v1/namespaces/ns1/secrets/nope")
	wantStatus(t, r, 404, "NotFound", `secrets "nope" not found`)
	// update with the current RV
	cur := f.get("/api/v1/namespaces/ns1/secrets/s1").obj
	cur["data"].(Obj)["k2"] = "djI="
	r = f.req("PUT", "/api/v1/namespaces/ns1/secrets/s1", "", cur)
	f.mustCode(r, 200)
	rv2 := r.str("metadata", "resourceVersion")
	if rv2 == rv1 {
		t.Fatal("update kept the resourceVersion")
	}
	// stale RV: 409 Conflict with the real wording
	meta(cur)["resourceVersion"] = rv1
	r = f.req("PUT", "/api/v1/namespaces/ns1/secrets/s1", "", cur)
	wantStatus(t, r, 409, "Conflict", `Operation cannot be fulfilled on secrets "s1": the object has been modified; please apply your changes to the latest version and try again`)
	// unconditional update (no RV) is allowed for secrets
	delete(meta(cur), "resourceVersion")
	f.mustCode(f.req("PUT", "/api/v1/namespaces/ns1/secrets/s1", "", cur), 200)
	// a no-op update writes nothing: same RV
	r = f.req("PUT", "/api/v1/namespaces/ns1/secrets/s1", "", cur)
	f.mustCode(r, 200)
	if r.str("metadata", "resourceVersion") != rv2 {
		t.Fatalf("no-op update changed RV %s -> %s", rv2, r.str("metadata", "resourceVersion"))
	}
	// name mismatch
	meta(cur)["name"] = "other"
	wantStatus(t, f.req("PUT", "/api/v1/namespaces/ns1/secrets/s1", "", cur), 400, "BadRequest",
		"the name of the object (other) does not match the name on the URL (s1)")
	// delete precondition
	r = f.req("DELETE", "/api/v1/namespaces/ns1/secrets/s1", "", Obj{"preconditions": Obj{"resourceVersion": "1"}})
	wantStatus(t, r, 409, "Conflict", `Operation cannot be fulfilled on Secret "s1": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record (`+rv2+`). The object might have been modified`)
	// delete answers a Success Status
	uid := getStr(md, "uid")
	r = f.req("DELETE", "/api/v1/namespaces/ns1/secrets/s1", "", nil)
	f.mustCode(r, 200)
	if r.str("kind") != "Status" || r.str("status") != "Success" || r.str("details", "uid") != uid || r.str("details", "kind") != "secrets" {
		t.Fatalf("delete: %s", r.raw)
	}
	wantStatus(t, f.get("/api/v1/namespaces/ns1/secrets/s1"), 404, "NotFound", `secrets "s1" not found`)
}

func TestSecretValidation(t *testing.T) {
	f := startFake(t)
	r := f.req("POST", "/api/v1/namespaces/ns1/secrets", "", Obj{"metadata": Obj{"name": "Bad_Name"}})
	wantStatus(t, r, 422, "Invalid", `Secret "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": `+dnsSubdomainMsg)
	r = f.req("POST", "/api/v1/namespaces/ns1/secrets", "", Obj{"metadata": Obj{"name": "s"}, "data": Obj{"k": "not base64!"}})
	wantStatus(t, r, 400, "BadRequest", "")
	r = f.req("POST", "/api/v1/namespaces/nosuch/secrets", "", Obj{"metadata": Obj{"name": "s"}})
	wantStatus(t, r, 404, "NotFound", `namespaces "nosuch" not found`)
	r = f.req("POST", "/api/v1/namespaces/ns1/secrets", "", Obj{"metadata": Obj{"generateName": "gen-"}})
	f.mustCode(r, 201)
	if !strings.HasPrefix(r.str("metadata", "name"), "gen-") || len(r.str("metadata", "name")) != 9 {
		t.Fatalf("generateName: %s", r.raw)
	}
	r = f.req("POST", "/api/v1/namespaces/ns1/secrets", "application/vnd.kubernetes.protobuf", "garbage")
	wantStatus(t, r, 415, "UnsupportedMediaType", "")
	r = f.req("POST", "/api/v1/namespaces/ns1/secrets", "", Obj{"apiVersion": "apps/v1", "metadata": Obj{"name": "x"}})
	wantStatus(t, r, 400, "BadRequest", `Secret in version "v1" cannot be handled as a Secret: no kind "Secret" is registered for version "apps/v1" in scheme "pkg/runtime/scheme.go:111"`)
}

func names(items []any) string {
	var out []string
	for _, it := range items {
		out = append(out, getStr(it.(Obj), "metadata", "name"))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func TestListSelectors(t *testing.T) {
	f := startFake(t)
	f.createSecret("ns1", "a", map[string]string{"app": "x", "tier": "web"}, nil)
	f.createSecret("ns1", "b", map[string]string{"app": "y"}, nil)
	f.createSecret("ns1", "c", nil, nil)
	f.createSecret("ns2", "d", map[string]string{"app": "x"}, nil)
	cases := map[string]string{
		"app=x":             "a",
		"app==x":            "a",
		"app!=x":            "b,c",
		"app in (x,y)":      "a,b",
		"app notin (x)":     "b,c",
		"app":               "a,b",
		"!app":              "c",
		"app=x,tier=web":    "a",
		"app in (x),!tier":  "",
		" app = y ":         "b",
		"tier notin (a, b)": "a,b,c",
	}
	for sel, want := range cases {
		r := f.get("/api/v1/namespaces/ns1/secrets?labelSelector=" + urlq(sel))
		f.mustCode(r, 200)
		items, _ := r.obj["items"].([]any)
		if got := names(items); got != want {
			t.Errorf("labelSelector %q: got %q want %q", sel, got, want)
		}
	}
	r := f.get("/api/v1/secrets?labelSelector=app%3Dx")
	if r.str("kind") != "SecretList" || names(r.obj["items"].([]any)) != "a,d" {
		t.Fatalf("all-namespace list: %s", r.raw)
	}
	// list items carry no kind/apiVersion, like the real server's typed lists
	if it := r.obj["items"].([]any)[0].(Obj); it["kind"] != nil || it["apiVersion"] != nil {
		t.Fatalf("list item with kind: %v", it)
	}
	r = f.get("/api/v1/secrets?fieldSelector=metadata.namespace%3Dns2")
	if names(r.obj["items"].([]any)) != "d" {
		t.Fatalf("fieldSelector namespace: %s", r.raw)
	}
	r = f.get("/api/v1/namespaces/ns1/secrets?fieldSelector=metadata.name!%3Da")
	if names(r.obj["items"].([]any)) != "b,c" {
		t.Fatalf("fieldSelector name!=: %s", r.raw)
	}
	wantStatus(t, f.get("/api/v1/secrets?fieldSelector=spec.foo%3Dx"), 400, "BadRequest", "field label not supported: spec.foo")
	wantStatus(t, f.get("/api/v1/secrets?labelSelector=a%20b"), 400, "BadRequest", "")
}

func urlq(s string) string {
	r := strings.NewReplacer(" ", "%20", "=", "%3D", "!", "%21", "(", "%28", ")", "%29", ",", "%2C")
	return r.Replace(s)
}

func TestListPagingAndResourceVersions(t *testing.T) {
	f := startFake(t)
	for _, n := range []string{"s1", "s2", "s3", "s4", "s5"} {
		f.createSecret("ns1", n, nil, nil)
	}
	r := f.get("/api/v1/namespaces/ns1/secrets?limit=2")
	if names(r.obj["items"].([]any)) != "s1,s2" || r.str("metadata", "continue") == "" {
		t.Fatalf("page 1: %s", r.raw)
	}
	if n, _ := getInt(r.obj, "metadata", "remainingItemCount"); n != 3 {
		t.Fatalf("remainingItemCount: %s", r.raw)
	}
	listRV := r.str("metadata", "resourceVersion")
	cont := r.str("metadata", "continue")
	// a change between pages does not show: the pages are a snapshot
	f.createSecret("ns1", "s0", nil, nil)
	r = f.get("/api/v1/namespaces/ns1/secrets?limit=2&continue=" + cont)
	if names(r.obj["items"].([]any)) != "s3,s4" || r.str("metadata", "resourceVersion") != listRV {
		t.Fatalf("page 2: %s", r.raw)
	}
	r = f.get("/api/v1/namespaces/ns1/secrets?limit=2&continue=" + r.str("metadata", "continue"))
	if names(r.obj["items"].([]any)) != "s5" || r.str("metadata", "continue") != "" {
		t.Fatalf("page 3: %s", r.raw)
	}
	// Exact at the old RV: the old state
	r = f.get("/api/v1/namespaces/ns1/secrets?resourceVersion=" + listRV + "&resourceVersionMatch=Exact")
	if names(r.obj["items"].([]any)) != "s1,s2,s3,s4,s5" || r.str("metadata", "resourceVersion") != listRV {
		t.Fatalf("exact: %s", r.raw)
	}
	// a continue token after compaction: 410 with a fresh token
	r = f.get("/api/v1/namespaces/ns1/secrets?limit=2")
	cont = r.str("metadata", "continue")
	f.mustCode(f.req("DELETE", "/api/v1/namespaces/ns1/secrets/s0", "", nil), 200)
	f.control("POST", "compact", nil)
	r = f.get("/api/v1/namespaces/ns1/secrets?limit=2&continue=" + cont)
	wantStatus(t, r, 410, "Expired", continueTooOld)
	if r.str("metadata", "continue") == "" {
		t.Fatalf("no continue in 410: %s", r.raw)
	}
	r2 := f.get("/api/v1/namespaces/ns1/secrets?limit=10&continue=" + r.str("metadata", "continue"))
	if names(r2.obj["items"].([]any)) != "s2,s3,s4,s5" {
		t.Fatalf("inconsistent continue: %s", r2.raw)
	}
	wantStatus(t, f.get("/api/v1/namespaces/ns1/secrets?resourceVersion="+listRV+"&resourceVersionMatch=Exact"),
		410, "Expired", "The resourceVersion for the provided list is too old.")
	wantStatus(t, f.get("/api/v1/namespaces/ns1/secrets?continue=garbage"), 400, "BadRequest", "")
	// NotOlderThan: newer state is fine, a future RV waits then 504
	f.control("POST", "config", Obj{"too_large_wait_ms": 50})
	f.mustCode(f.get("/api/v1/namespaces/ns1/secrets?resourceVersion=1&resourceVersionMatch=NotOlderThan"), 200)
	r = f.get("/api/v1/namespaces/ns1/secrets?resourceVersion=999999&resourceVersionMatch=NotOlderThan")
	wantStatus(t, r, 504, "Timeout", "")
	if !strings.HasPrefix(r.str("message"), "Timeout: Too large resource version: 999999, current: ") || r.hdr.Get("Retry-After") != "1" {
		t.Fatalf("too large: %s %v", r.raw, r.hdr)
	}
	r = f.get("/api/v1/namespaces/ns1/secrets?resourceVersionMatch=Exact")
	wantStatus(t, r, 422, "Invalid", `ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided`)
}

func TestNamespaceLifecycle(t *testing.T) {
	f := startFake(t)
	r := f.req("POST", "/api/v1/namespaces", "", Obj{"metadata": Obj{"name": "tmp"}})
	f.mustCode(r, 201)
	if r.str("status", "phase") != "Active" || r.str("metadata", "labels", "kubernetes.io/metadata.name") != "tmp" {
		t.Fatalf("namespace: %s", r.raw)
	}
	f.createSecret("tmp", "s", nil, nil)
	r = f.req("DELETE", "/api/v1/namespaces/tmp", "", nil)
	f.mustCode(r, 200)
	if r.str("kind") != "Namespace" || r.str("status", "phase") != "Terminating" || r.str("metadata", "deletionTimestamp") == "" {
		t.Fatalf("namespace delete: %s", r.raw)
	}
	// no namespace controller: it stays Terminating, with its content
	if r = f.get("/api/v1/namespaces/tmp"); r.code != 200 || r.str("status", "phase") != "Terminating" {
		t.Fatalf("terminating namespace: %s", r.raw)
	}
	f.mustCode(f.get("/api/v1/namespaces/tmp/secrets/s"), 200)
	r = f.req("POST", "/api/v1/namespaces/tmp/secrets", "", Obj{"metadata": Obj{"name": "z"}})
	wantStatus(t, r, 403, "Forbidden", `secrets "z" is forbidden: unable to create new content in namespace tmp because it is being terminated`)
	// emptying spec.finalizers through /finalize lets it go
	r = f.req("PUT", "/api/v1/namespaces/tmp/finalize", "", Obj{"apiVersion": "v1", "kind": "Namespace", "metadata": Obj{"name": "tmp"}, "spec": Obj{"finalizers": []any{}}})
	f.mustCode(r, 200)
	wantStatus(t, f.get("/api/v1/namespaces/tmp"), 404, "NotFound", `namespaces "tmp" not found`)
	if r = f.get("/api/v1/secrets"); names(r.obj["items"].([]any)) != "" {
		t.Fatalf("content survived: %s", r.raw)
	}
	// --finalize-namespaces: gone at once
	g := startFake(t, func(c *Config) { c.FinalizeNamespaces = true })
	g.createSecret("ns1", "s", nil, nil)
	g.mustCode(g.req("DELETE", "/api/v1/namespaces/ns1", "", nil), 200)
	wantStatus(t, g.get("/api/v1/namespaces/ns1"), 404, "NotFound", "")
	wantStatus(t, g.get("/api/v1/namespaces/ns1/secrets/s"), 404, "NotFound", "")
}

func TestFinalizers(t *testing.T) {
	f := startFake(t)
	o := secretBody("fin", nil, nil)
	meta(o)["finalizers"] = []any{"example.com/keep"}
	f.mustCode(f.req("POST", "/api/v1/namespaces/ns1/secrets", "", o), 201)
	r := f.req("DELETE", "/api/v1/namespaces/ns1/secrets/fin", "", nil)
	f.mustCode(r, 200)
	if r.str("kind") != "Secret" || r.str("metadata", "deletionTimestamp") == "" {
		t.Fatalf("delete with finalizer: %s", r.raw)
	}
	r = f.req("PATCH", "/api/v1/namespaces/ns1/secrets/fin", ctMergePatch, `{"metadata":{"finalizers":null}}`)
	f.mustCode(r, 200)
	wantStatus(t, f.get("/api/v1/namespaces/ns1/secrets/fin"), 404, "NotFound", "")
}
