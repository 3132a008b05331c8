package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/fakes/pki"
)

func TestTokenRequest(t *testing.T) {
	f := startFake(t)
	path := "/api/v1/namespaces/ns1/serviceaccounts/robot/token"
	r := f.req("POST", path, "", Obj{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": Obj{}})
	wantStatus(t, r, 404, "NotFound", `serviceaccounts "robot" not found`)
	sa := f.req("POST", "/api/v1/namespaces/ns1/serviceaccounts", "", Obj{"metadata": Obj{"name": "robot"}})
	f.mustCode(sa, 201)
	r = f.req("POST", path, "", Obj{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": Obj{}})
	f.mustCode(r, 201)
	if r.str("kind") != "TokenRequest" || r.str("apiVersion") != "authentication.k8s.io/v1" {
		t.Fatalf("kind: %s", r.raw)
	}
	tok := r.str("status", "token")
	claims, err := pki.Verify(tok, &f.in.Server.saKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if claims["iss"] != "https://kube.test" || claims["sub"] != "system:serviceaccount:ns1:robot" {
		t.Fatalf("claims %v", claims)
	}
	if aud, _ := claims["aud"].([]any); len(aud) != 1 || aud[0] != "https://kube.test" {
		t.Fatalf("default audience %v", claims["aud"])
	}
	k8s := claims["kubernetes.io"].(map[string]any)
	if k8s["namespace"] != "ns1" || k8s["serviceaccount"].(map[string]any)["uid"] != sa.str("metadata", "uid") {
		t.Fatalf("kubernetes.io claim %v", k8s)
	}
	exp, _ := claims["exp"].(json.Number).Int64()
	iat, _ := claims["iat"].(json.Number).Int64()
	if exp-iat != 3600 {
		t.Fatalf("default lifetime %d", exp-iat)
	}
	et, err := time.Parse(time.RFC3339, r.str("status", "expirationTimestamp"))
	if err != nil || et.Unix() != exp {
		t.Fatalf("expirationTimestamp %q vs exp %d", r.str("status", "expirationTimestamp"), exp)
	}
	if n, _ := getInt(r.obj, "spec", "expirationSeconds"); n != 3600 {
		t.Fatalf("spec defaulted: %s", r.raw)
	}
	// the token authenticates as the service account
	f.mustCode(f.reqTok(tok, "GET", "/api/v1/namespaces/ns1/secrets", "", nil), 200)
	reqs := f.controlList("requests")
	if u := getStr(reqs[len(reqs)-1].(Obj), "user"); u != "system:serviceaccount:ns1:robot" {
		t.Fatalf("user %q", u)
	}
	// custom audience and lifetime; such a token is not for the API server
	r = f.req("POST", path, "", Obj{"spec": Obj{"audiences": []any{"https://ossrdbms-aad.database.windows.net"}, "expirationSeconds": 600}})
	f.mustCode(r, 201)
	claims, _ = pki.Verify(r.str("status", "token"), &f.in.Server.saKey.PublicKey)
	exp, _ = claims["exp"].(json.Number).Int64()
	iat, _ = claims["iat"].(json.Number).Int64()
	if exp-iat != 600 || claims["aud"].([]any)[0] != "https://ossrdbms-aad.database.windows.net" {
		t.Fatalf("claims %v", claims)
	}
	wantStatus(t, f.reqTok(r.str("status", "token"), "GET", "/api/v1/namespaces/ns1/secrets", "", nil), 401, "Unauthorized", "")
	r = f.req("POST", path, "", Obj{"spec": Obj{"expirationSeconds": 599}})
	wantStatus(t, r, 422, "Invalid", `TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes`)
	// deleting the service account revokes its tokens; SA delete returns the object
	r = f.req("DELETE", "/api/v1/namespaces/ns1/serviceaccounts/robot", "", nil)
	if r.code != 200 || r.str("kind") != "ServiceAccount" {
		t.Fatalf("sa delete: %s", r.raw)
	}
	wantStatus(t, f.reqTok(tok, "GET", "/api/v1/namespaces/ns1/secrets", "", nil), 401, "Unauthorized", "")
}

func TestLeases(t *testing.T) {
	f := startFake(t)
	base := "/apis/coordination.k8s.io/v1/namespaces/ns1/leases"
	lease := Obj{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": Obj{"name": "leader"},
		"spec": Obj{"holderIdentity": "pod-a", "leaseDurationSeconds": 15, "renewTime": "2025-01-01T00:00:00.000000Z"}}
	r := f.req("POST", base, "", lease)
	f.mustCode(r, 201)
	if r.str("kind") != "Lease" || r.str("apiVersion") != "coordination.k8s.io/v1" {
		t.Fatalf("lease: %s", r.raw)
	}
	wantStatus(t, f.req("POST", base, "", lease), 409, "AlreadyExists", `leases.coordination.k8s.io "leader" already exists`)
	got := f.get(base + "/leader").obj
	old := copyObj(got)
	got["spec"].(Obj)["holderIdentity"] = "pod-b"
	r = f.req("PUT", base+"/leader", "", got)
	f.mustCode(r, 200)
	old["spec"].(Obj)["holderIdentity"] = "pod-c"
	r = f.req("PUT", base+"/leader", "", old)
	wantStatus(t, r, 409, "Conflict", `Operation cannot be fulfilled on leases.coordination.k8s.io "leader": the object has been modified; please apply your changes to the latest version and try again`)
	if getStr(r.obj, "details", "group") != "coordination.k8s.io" {
		t.Fatalf("details: %s", r.raw)
	}
	r = f.get(base)
	if r.str("kind") != "LeaseList" || names(r.obj["items"].([]any)) != "leader" {
		t.Fatalf("list: %s", r.raw)
	}
	bad := copyObj(lease)
	meta(bad)["name"] = "bad"
	bad["spec"].(Obj)["leaseDurationSeconds"] = 0
	wantStatus(t, f.req("POST", base, "", bad), 422, "Invalid", "")
	r = f.req("DELETE", base+"/leader", "", nil)
	if r.code != 200 || r.str("details", "group") != "coordination.k8s.io" {
		t.Fatalf("delete: %s", r.raw)
	}
}

func TestEvents(t *testing.T) {
	f := startFake(t)
	ev := Obj{"metadata": Obj{"name": "e1"}, "involvedObject": Obj{"kind": "Secret", "namespace": "ns1", "name": "s"},
		"reason": "Rotated", "message": "token rotated", "type": "Normal", "count": 1, "source": Obj{"component": "pgtoken-rotator"}}
	f.mustCode(f.req("POST", "/api/v1/namespaces/ns1/events", "", ev), 201)
	r := f.req("PATCH", "/api/v1/namespaces/ns1/events/e1", ctSMP, `{"count":2}`)
	if n, _ := getInt(r.obj, "count"); r.code != 200 || n != 2 {
		t.Fatalf("patch: %s", r.raw)
	}
	ne := Obj{"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": Obj{"name": "e2"},
		"regarding": Obj{"kind": "Secret", "namespace": "ns1", "name": "s"}, "reason": "Rotated", "note": "rotated",
		"type": "Normal", "action": "Rotate", "reportingController": "pgtoken-rotator", "reportingInstance": "pod-1",
		"eventTime": "2025-01-01T00:00:00.000000Z"}
	r = f.req("POST", "/apis/events.k8s.io/v1/namespaces/ns1/events", "", ne)
	f.mustCode(r, 201)
	if r.str("note") != "rotated" || r.str("regarding", "name") != "s" {
		t.Fatalf("events.k8s.io create: %s", r.raw)
	}
	// the same object through the core API
	r = f.get("/api/v1/namespaces/ns1/events/e2")
	if r.str("message") != "rotated" || r.str("involvedObject", "name") != "s" || r.str("reportingComponent") != "pgtoken-rotator" {
		t.Fatalf("core view: %s", r.raw)
	}
	r = f.get("/api/v1/namespaces/ns1/events?fieldSelector=involvedObject.name%3Ds,reason%3DRotated")
	if names(r.obj["items"].([]any)) != "e1,e2" {
		t.Fatalf("list: %s", r.raw)
	}
	delete(ne, "eventTime")
	meta(ne)["name"] = "e3"
	wantStatus(t, f.req("POST", "/apis/events.k8s.io/v1/namespaces/ns1/events", "", ne), 422, "Invalid", `Event "e3" is invalid: eventTime: Required value`)
}

func TestDiscovery(t *testing.T) {
	f := startFake(t)
	r := f.get("/version")
	if r.str("major") != "1" || r.str("gitVersion") == "" {
		t.Fatalf("version: %s", r.raw)
	}
	r = f.get("/api")
	if r.str("kind") != "APIVersions" {
		t.Fatalf("/api: %s", r.raw)
	}
	r = f.get("/api/v1")
	found := map[string]bool{}
	for _, x := range r.obj["resources"].([]any) {
		found[getStr(x.(Obj), "name")] = true
	}
	for _, n := range []string{"secrets", "namespaces", "serviceaccounts", "serviceaccounts/token", "events", "configmaps"} {
		if !found[n] {
			t.Fatalf("/api/v1 lacks %s: %s", n, r.raw)
		}
	}
	r = f.get("/apis")
	var groups []string
	for _, g := range r.obj["groups"].([]any) {
		groups = append(groups, getStr(g.(Obj), "name"))
	}
	if strings.Join(groups, ",") != "apps,coordination.k8s.io,events.k8s.io" {
		t.Fatalf("/apis groups %v", groups)
	}
	f.mustCode(f.get("/apis/apps/v1"), 200)
	f.mustCode(f.get("/apis/coordination.k8s.io/v1"), 200)
	if r := f.get("/api/v1/nosuchthings"); r.code != 404 {
		t.Fatalf("unknown resource: %d", r.code)
	}
	req, _ := http.NewRequest("GET", f.url+"/apis", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")
	res, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if !strings.Contains(res.Header.Get("Content-Type"), "as=APIGroupDiscoveryList") {
		t.Fatalf("aggregated discovery content type %q", res.Header.Get("Content-Type"))
	}
}

func TestTable(t *testing.T) {
	f := startFake(t)
	f.createSecret("ns1", "s", nil, map[string]string{"a": "b"})
	req, _ := http.NewRequest("GET", f.url+"/api/v1/namespaces/ns1/secrets", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
	res, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tbl Obj
	json.NewDecoder(res.Body).Decode(&tbl)
	if tbl["kind"] != "Table" || len(tbl["rows"].([]any)) != 1 {
		t.Fatalf("table %v", tbl)
	}
	cells := tbl["rows"].([]any)[0].(map[string]any)["cells"].([]any)
	if cells[0] != "s" || cells[1] != "Opaque" {
		t.Fatalf("cells %v", cells)
	}
}

func TestFaults(t *testing.T) {
	f := startFake(t)
	f.createSecret("ns1", "s", nil, nil)
	f.control("POST", "faults", Obj{"match": Obj{"verb": "get", "resource": "secrets"}, "status": 429, "retry_after_s": 3, "count": 1})
	r := f.get(secretURL)
	if r.code != 429 || r.hdr.Get("Retry-After") != "3" || strings.TrimSpace(string(r.raw)) != "Too many requests, please try again later." {
		t.Fatalf("429: %d %v %s", r.code, r.hdr, r.raw)
	}
	f.mustCode(f.get(secretURL), 200) // count 1: gone
	f.control("POST", "faults", Obj{"match": Obj{"verb": "patch", "resource": "secrets", "namespace": "ns1"}, "status": 403})
	r = f.req("PATCH", secretURL, ctMergePatch, `{}`)
	wantStatus(t, r, 403, "Forbidden", `secrets "s" is forbidden: User "alice" cannot patch resource "secrets" in API group "" in the namespace "ns1"`)
	f.control("DELETE", "faults", nil)
	f.mustCode(f.req("PATCH", secretURL, ctMergePatch, `{}`), 200)
	f.control("POST", "faults", Obj{"match": Obj{"verb": "list", "resource": "secrets"}, "status": 403, "count": 1})
	wantStatus(t, f.get("/api/v1/secrets"), 403, "Forbidden", `secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" at the cluster scope`)
	f.control("POST", "faults", Obj{"match": Obj{"verb": "*", "resource": "secrets", "namespace": "ns2"}, "status": 500, "body": "status", "retry_after_s": 1})
	r = f.get("/api/v1/namespaces/ns2/secrets")
	wantStatus(t, r, 500, "InternalError", "Internal error occurred: injected fault")
	f.mustCode(f.get("/api/v1/namespaces/ns1/secrets"), 200)
	f.control("DELETE", "faults", nil)
	// delay
	f.control("POST", "faults", Obj{"match": Obj{"verb": "get"}, "delay_ms": 200, "count": 1})
	start := time.Now()
	f.mustCode(f.get(secretURL), 200)
	if time.Since(start) < 200*time.Millisecond {
		t.Fatal("delay not applied")
	}
	// hang until cleared
	f.control("POST", "faults", Obj{"match": Obj{"verb": "get", "resource": "secrets"}, "hang": true})
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", f.url+secretURL, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		res, err := f.http.Do(req)
		if err != nil {
			done <- -1
			return
		}
		res.Body.Close()
		done <- res.StatusCode
	}()
	select {
	case <-done:
		t.Fatal("hang did not hang")
	case <-time.After(300 * time.Millisecond):
	}
	f.control("DELETE", "faults", nil)
	if c := <-done; c != 200 {
		t.Fatalf("after clearing the hang: %d", c)
	}
	// drop_continue: a list page as usual, without its continue token; once
	f.createSecret("ns1", "t", nil, nil)
	f.control("POST", "faults", Obj{"match": Obj{"verb": "list", "resource": "secrets"}, "drop_continue": true, "count": 1})
	r = f.get("/api/v1/namespaces/ns1/secrets?limit=1")
	if names(r.obj["items"].([]any)) != "s" || r.str("metadata", "continue") != "" || r.str("metadata", "resourceVersion") == "" {
		t.Fatalf("drop_continue: %s", r.raw)
	}
	r = f.get("/api/v1/namespaces/ns1/secrets?limit=1")
	if names(r.obj["items"].([]any)) != "s" || r.str("metadata", "continue") == "" {
		t.Fatalf("after drop_continue (count 1): %s", r.raw)
	}
	// watch faults answer before the stream starts
	f.control("POST", "faults", Obj{"match": Obj{"verb": "watch"}, "status": 503, "count": 1})
	wantStatus(t, f.get("/api/v1/secrets?watch=1"), 503, "ServiceUnavailable", "")
}

func TestRequestLogAndStats(t *testing.T) {
	f := startFake(t)
	f.control("DELETE", "requests", nil)
	f.createSecret("ns1", "s", nil, map[string]string{"password": "hunter2"})
	f.req("PATCH", secretURL, ctMergePatch, `{"data":{"token":"c2VjcmV0"}}`)
	f.req("PATCH", secretURL, ctJSONPatch, `[{"op":"replace","path":"/data/token","value":"bmV3"}]`)
	f.req("POST", "/api/v1/namespaces/ns1/configmaps", "", Obj{"metadata": Obj{"name": "c"}, "data": Obj{"plain": "visible"}})
	reqs := f.controlList("requests")
	if len(reqs) != 4 {
		t.Fatalf("requests %v", reqs)
	}
	h := func(s string) string { sum := sha256.Sum256([]byte(s)); return "sha256:" + hex.EncodeToString(sum[:]) }
	r0 := reqs[0].(Obj)
	if getStr(r0, "body", "stringData", "password") != h("hunter2") || getStr(r0, "verb") != "create" || getStr(r0, "user") != "alice" {
		t.Fatalf("create record %v", r0)
	}
	r1 := reqs[1].(Obj)
	if getStr(r1, "body", "data", "token") != h("secret") || getStr(r1, "contentType") != ctMergePatch {
		t.Fatalf("patch record %v", r1)
	}
	r2 := reqs[2].(Obj)
	if v := getStr(r2["body"].([]any)[0].(Obj), "value"); v != h("new") {
		t.Fatalf("json patch record %v", r2)
	}
	if getStr(reqs[3].(Obj), "body", "data", "plain") != "visible" {
		t.Fatalf("configmap body should be kept: %v", reqs[3])
	}
	raw := f.reqTok("", "GET", "/_fake/requests", "", nil).raw
	if strings.Contains(string(raw), "hunter2") || strings.Contains(string(raw), "c2VjcmV0") {
		t.Fatal("secret value leaked into the request log")
	}
	st := f.control("GET", "stats", nil)
	found := false
	for _, x := range st["requests"].([]any) {
		row := x.(Obj)
		if getStr(row, "verb") == "patch" && getStr(row, "resource") == "secrets" {
			if n, _ := getInt(row, "code"); n == 200 {
				if c, _ := getInt(row, "count"); c == 2 {
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatalf("stats %v", st)
	}
}
