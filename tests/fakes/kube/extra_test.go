package kube

import (
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
	"time"
)

// pbLD encodes one length-delimited protobuf field.
func pbLD(num int, b []byte) []byte {
	out := binary.AppendUvarint(nil, uint64(num<<3|2))
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

func pbStr(num int, s string) []byte { return pbLD(num, []byte(s)) }

func TestProtobufCreate(t *testing.T) {
	f := startFake(t)
	md := append(pbStr(1, "pb"), pbStr(2, "")...) // name, empty generateName
	md = append(md, pbLD(11, append(pbStr(1, "app"), pbStr(2, "x")...))...)
	secret := pbLD(1, md)
	secret = append(secret, pbLD(2, append(pbStr(1, "k"), pbLD(2, []byte("raw-bytes"))...))...)
	secret = append(secret, pbStr(3, "")...)
	typeMeta := append(pbStr(1, "v1"), pbStr(2, "Secret")...)
	body := append([]byte("k8s\x00"), pbLD(1, typeMeta)...)
	body = append(body, pbLD(2, secret)...)
	r := f.req("POST", "/api/v1/namespaces/ns1/secrets", ctProtobuf, body)
	f.mustCode(r, 201)
	if r.str("metadata", "name") != "pb" || r.str("type") != "Opaque" || getStr(r.obj, "data", "k") != "cmF3LWJ5dGVz" || r.str("metadata", "labels", "app") != "x" {
		t.Fatalf("protobuf secret: %s", r.raw)
	}
	if _, ok := getMap(r.obj, "metadata")["generateName"]; ok {
		t.Fatalf("empty proto string must be unset: %s", r.raw)
	}
}

func TestConfigMapsStatefulSetsAndDeleteCollection(t *testing.T) {
	f := startFake(t)
	for _, n := range []string{"c1", "c2", "c3"} {
		r := f.req("POST", "/api/v1/namespaces/ns1/configmaps", "", Obj{"metadata": Obj{"name": n, "labels": Obj{"grp": "a"}}, "data": Obj{"k": "v"}})
		f.mustCode(r, 201)
	}
	r := f.req("PATCH", "/api/v1/namespaces/ns1/configmaps/c1", ctMergePatch, `{"data":{"k2":"v2"}}`)
	if r.str("data", "k2") != "v2" {
		t.Fatalf("configmap patch: %s", r.raw)
	}
	r = f.req("DELETE", "/api/v1/namespaces/ns1/configmaps?labelSelector=grp%3Da", "", nil)
	if r.code != 200 || r.str("kind") != "ConfigMapList" || names(r.obj["items"].([]any)) != "c1,c2,c3" {
		t.Fatalf("deletecollection: %s", r.raw)
	}
	if r = f.get("/api/v1/namespaces/ns1/configmaps"); names(r.obj["items"].([]any)) != "" {
		t.Fatalf("left: %s", r.raw)
	}
	sts := Obj{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": Obj{"name": "db"},
		"spec": Obj{"serviceName": "db", "selector": Obj{"matchLabels": Obj{"app": "db"}},
			"template": Obj{"metadata": Obj{"labels": Obj{"app": "db"}}, "spec": Obj{"containers": []any{Obj{"name": "pg", "image": "postgres"}}}}}}
	r = f.req("POST", "/apis/apps/v1/namespaces/ns1/statefulsets", "", sts)
	f.mustCode(r, 201)
	if r.str("spec", "podManagementPolicy") != "OrderedReady" {
		t.Fatalf("sts defaults: %s", r.raw)
	}
	if cs := getPath(r.obj, "spec", "template", "spec", "containers").([]any); getStr(cs[0].(Obj), "imagePullPolicy") != "Always" {
		t.Fatalf("imagePullPolicy default: %s", r.raw)
	}
	cur := r.obj
	cur["spec"].(Obj)["replicas"] = 3
	r = f.req("PUT", "/apis/apps/v1/namespaces/ns1/statefulsets/db", "", cur)
	if g, _ := getInt(r.obj, "metadata", "generation"); r.code != 200 || g != 2 {
		t.Fatalf("sts update: %s", r.raw)
	}
	// labels only: no generation bump for statefulsets
	r = f.req("PATCH", "/apis/apps/v1/namespaces/ns1/statefulsets/db", ctMergePatch, `{"metadata":{"labels":{"x":"y"}}}`)
	if g, _ := getInt(r.obj, "metadata", "generation"); g != 2 {
		t.Fatalf("generation bumped on metadata: %s", r.raw)
	}
	bad := copyObj(sts)
	meta(bad)["name"] = "bad"
	bad["spec"].(Obj)["selector"] = Obj{"matchLabels": Obj{"app": "other"}}
	wantStatus(t, f.req("POST", "/apis/apps/v1/namespaces/ns1/statefulsets", "", bad), 422, "Invalid", "")
}

func TestMiscWireDetails(t *testing.T) {
	f := startFake(t)
	r := f.req("POST", "/api/v1/namespaces/ns1/secrets", "", Obj{"metadata": Obj{"name": "x", "resourceVersion": "5"}})
	if r.code != 500 || r.str("message") != "resourceVersion should not be set on objects to be created" {
		t.Fatalf("rv on create: %s", r.raw)
	}
	req, _ := http.NewRequest("GET", f.url+"/api/v1/namespaces/ns1/secrets", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Accept", "application/vnd.kubernetes.protobuf")
	res, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 406 {
		t.Fatalf("protobuf-only Accept: %d", res.StatusCode)
	}
	r = f.get("/api/v1/namespaces/ns1/secrets?pretty=true")
	if !strings.Contains(string(r.raw), "\n  \"kind\": \"SecretList\"") {
		t.Fatalf("pretty: %s", r.raw)
	}
	f.createSecret("ns1", "s", nil, nil)
	f.createSecret("ns2", "s", nil, nil)
	l := f.controlList("requests?verb=create&namespace=ns2")
	if len(l) != 1 {
		t.Fatalf("filtered requests: %v", l)
	}
	seq, _ := getInt(l[0].(Obj), "seq")
	if l = f.controlList("requests?since=" + itoa(seq)); len(l) != 0 {
		t.Fatalf("since: %v", l)
	}
	// tokens can be added at run time
	f.control("POST", "tokens", Obj{"token": "late", "user": "dave"})
	f.mustCode(f.reqTok("late", "GET", "/api/v1/namespaces/ns1/secrets", "", nil), 200)
}

func itoa(n int64) string {
	return strings.TrimSpace(strings.Replace(string(encodeJSON(n)), "\n", "", 1))
}

func TestAnonymousAndAudiences(t *testing.T) {
	f := startFake(t, func(c *Config) {
		c.AnonymousAuth = true
		c.APIAudiences = []string{"https://kube.test", "api://AzureADTokenExchange"}
	})
	wantStatus(t, f.reqTok("", "GET", "/api/v1/namespaces/ns1/secrets", "", nil), 403, "Forbidden",
		`secrets is forbidden: User "system:anonymous" cannot list resource "secrets" in API group "" in the namespace "ns1"`)
	wantStatus(t, f.reqTok("", "GET", "/apis", "", nil), 403, "Forbidden", `forbidden: User "system:anonymous" cannot get path "/apis"`)
	f.mustCode(f.reqTok("", "GET", "/version", "", nil), 200)
	wantStatus(t, f.reqTok("bad", "GET", "/version", "", nil), 401, "Unauthorized", "Unauthorized")
	r := f.reqTok("", "GET", "/.well-known/openid-configuration", "", nil)
	if r.str("issuer") != "https://kube.test" || r.str("jwks_uri") != "https://kube.test/openid/v1/jwks" {
		t.Fatalf("openid configuration: %s", r.raw)
	}
	r = f.reqTok("", "GET", "/openid/v1/jwks", "", nil)
	if !strings.Contains(string(r.raw), `"kid"`) {
		t.Fatalf("jwks: %s", r.raw)
	}
	f.mustCode(f.req("POST", "/api/v1/namespaces/ns1/serviceaccounts", "", Obj{"metadata": Obj{"name": "sa"}}), 201)
	r = f.req("POST", "/api/v1/namespaces/ns1/serviceaccounts/sa/token", "", Obj{"spec": Obj{}})
	if auds := getPath(r.obj, "spec", "audiences").([]any); len(auds) != 2 {
		t.Fatalf("default audiences: %s", r.raw)
	}
	r = f.req("POST", "/api/v1/namespaces/ns1/serviceaccounts/sa/token", "", Obj{"spec": Obj{"audiences": []any{"api://AzureADTokenExchange"}}})
	f.mustCode(f.reqTok(r.str("status", "token"), "GET", "/api/v1/namespaces/ns1/secrets", "", nil), 200)
}

func TestHangFaultReleasedOnlyByItsClearing(t *testing.T) {
	f := startFake(t)
	h := f.control("POST", "faults", Obj{"match": Obj{"verb": "list", "resource": "secrets"}, "hang": true, "count": 1})
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", f.url+"/api/v1/namespaces/ns1/secrets", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		res, err := f.http.Do(req)
		if err != nil {
			done <- -1
			return
		}
		res.Body.Close()
		done <- res.StatusCode
	}()
	time.Sleep(200 * time.Millisecond)
	// count 1: the next list is not held
	f.mustCode(f.get("/api/v1/namespaces/ns1/secrets"), 200)
	other := f.control("POST", "faults", Obj{"match": Obj{"verb": "get"}, "status": 500})
	id, _ := getInt(other, "id")
	f.control("DELETE", "faults/"+itoa(id), nil)
	select {
	case c := <-done:
		t.Fatalf("hang released by clearing another fault: %d", c)
	case <-time.After(200 * time.Millisecond):
	}
	hid, _ := getInt(h, "id")
	f.control("DELETE", "faults/"+itoa(hid), nil)
	select {
	case c := <-done:
		if c != 200 {
			t.Fatalf("released hang answered %d", c)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("hang not released")
	}
}
