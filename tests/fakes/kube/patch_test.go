package kube

import (
	"strings"
	"testing"
)

const secretURL = "/api/v1/namespaces/ns1/secrets/s"

func TestMergePatch(t *testing.T) {
	f := startFake(t)
	c := f.createSecret("ns1", "s", map[string]string{"a": "1"}, map[string]string{"k1": "v1", "k2": "v2"})
	r := f.req("PATCH", secretURL, ctMergePatch, `{"metadata":{"labels":{"a":null,"b":"2"}},"data":{"k1":null,"k3":"djM="}}`)
	f.mustCode(r, 200)
	if r.str("metadata", "labels", "b") != "2" || getPath(r.obj, "metadata", "labels", "a") != nil {
		t.Fatalf("labels: %s", r.raw)
	}
	d := getMap(r.obj, "data")
	if _, ok := d["k1"]; ok || d["k2"] == nil || d["k3"] != "djM=" {
		t.Fatalf("data: %s", r.raw)
	}
	// resourceVersion in a merge patch is a precondition
	r = f.req("PATCH", secretURL, ctMergePatch, `{"metadata":{"resourceVersion":"`+c.str("metadata", "resourceVersion")+`"},"data":{"k4":"djQ="}}`)
	wantStatus(t, r, 409, "Conflict", `Operation cannot be fulfilled on secrets "s": the object has been modified; please apply your changes to the latest version and try again`)
	cur := f.get(secretURL).str("metadata", "resourceVersion")
	r = f.req("PATCH", secretURL, ctMergePatch, `{"metadata":{"resourceVersion":"`+cur+`"},"data":{"k4":"djQ="}}`)
	f.mustCode(r, 200)
	// stringData in a patch lands in data
	r = f.req("PATCH", secretURL, ctMergePatch, `{"stringData":{"k5":"v5"}}`)
	if getStr(r.obj, "data", "k5") != "djU=" || r.obj["stringData"] != nil {
		t.Fatalf("stringData patch: %s", r.raw)
	}
	wantStatus(t, f.req("PATCH", "/api/v1/namespaces/ns1/secrets/none", ctMergePatch, `{}`), 404, "NotFound", `secrets "none" not found`)
	wantStatus(t, f.req("PATCH", secretURL, ctMergePatch, `{not json`), 400, "BadRequest", "")
}

func TestStrategicMergePatch(t *testing.T) {
	f := startFake(t)
	f.createSecret("ns1", "s", nil, map[string]string{"k1": "v1"})
	r := f.req("PATCH", secretURL, ctSMP, `{"data":{"k2":"djI="},"metadata":{"annotations":{"x":"y"}}}`)
	f.mustCode(r, 200)
	if getStr(r.obj, "data", "k1") == "" || getStr(r.obj, "data", "k2") != "djI=" || r.str("metadata", "annotations", "x") != "y" {
		t.Fatalf("smp: %s", r.raw)
	}
	dep := Obj{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": Obj{"name": "web"},
		"spec": Obj{"selector": Obj{"matchLabels": Obj{"app": "web"}},
			"template": Obj{"metadata": Obj{"labels": Obj{"app": "web"}},
				"spec": Obj{"containers": []any{Obj{"name": "a", "image": "img:1"}, Obj{"name": "b", "image": "img:1"}}}}}}
	r = f.req("POST", "/apis/apps/v1/namespaces/ns1/deployments", "", dep)
	f.mustCode(r, 201)
	if g, _ := getInt(r.obj, "metadata", "generation"); g != 1 {
		t.Fatalf("generation: %s", r.raw)
	}
	if n, _ := getInt(r.obj, "spec", "replicas"); n != 1 || r.str("spec", "strategy", "type") != "RollingUpdate" {
		t.Fatalf("defaults: %s", r.raw)
	}
	// what kubectl rollout restart sends
	r = f.req("PATCH", "/apis/apps/v1/namespaces/ns1/deployments/web", ctSMP,
		`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2025-01-01T00:00:00Z"}}}}}`)
	f.mustCode(r, 200)
	if r.str("spec", "template", "metadata", "annotations", "kubectl.kubernetes.io/restartedAt") != "2025-01-01T00:00:00Z" {
		t.Fatalf("restart annotation: %s", r.raw)
	}
	if g, _ := getInt(r.obj, "metadata", "generation"); g != 2 {
		t.Fatalf("generation after template change: %s", r.raw)
	}
	if r.str("spec", "template", "metadata", "labels", "app") != "web" {
		t.Fatalf("labels lost: %s", r.raw)
	}
	// containers merge by name; $patch: delete removes one
	r = f.req("PATCH", "/apis/apps/v1/namespaces/ns1/deployments/web", ctSMP,
		`{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"img:2"},{"name":"a","$patch":"delete"}]}}}}`)
	f.mustCode(r, 200)
	cs := getPath(r.obj, "spec", "template", "spec", "containers").([]any)
	if len(cs) != 1 || getStr(cs[0].(Obj), "image") != "img:2" || getStr(cs[0].(Obj), "name") != "b" {
		t.Fatalf("containers: %v", cs)
	}
	// status is not writable through the main resource
	r = f.req("PATCH", "/apis/apps/v1/namespaces/ns1/deployments/web", ctMergePatch, `{"status":{"replicas":5}}`)
	if getPath(r.obj, "status", "replicas") != nil {
		t.Fatalf("status written via main resource: %s", r.raw)
	}
	r = f.req("PATCH", "/apis/apps/v1/namespaces/ns1/deployments/web/status", ctMergePatch, `{"status":{"replicas":5}}`)
	if n, _ := getInt(r.obj, "status", "replicas"); n != 5 {
		t.Fatalf("status subresource: %s", r.raw)
	}
}

func TestJSONPatch(t *testing.T) {
	f := startFake(t)
	f.createSecret("ns1", "s", nil, map[string]string{"k1": "v1"})
	r := f.req("PATCH", secretURL, ctJSONPatch,
		`[{"op":"test","path":"/data/k1","value":"djE="},{"op":"add","path":"/data/k2","value":"djI="},{"op":"add","path":"/metadata/labels","value":{"a/b":"c"}},{"op":"replace","path":"/data/k1","value":"eA=="}]`)
	f.mustCode(r, 200)
	if getStr(r.obj, "data", "k1") != "eA==" || getStr(r.obj, "data", "k2") != "djI=" || r.str("metadata", "labels", "a/b") != "c" {
		t.Fatalf("json patch: %s", r.raw)
	}
	r = f.req("PATCH", secretURL, ctJSONPatch, `[{"op":"remove","path":"/metadata/labels/a~1b"},{"op":"move","from":"/data/k2","path":"/data/k3"}]`)
	f.mustCode(r, 200)
	if getPath(r.obj, "metadata", "labels", "a/b") != nil || getStr(r.obj, "data", "k3") != "djI=" || getPath(r.obj, "data", "k2") != nil {
		t.Fatalf("remove/move: %s", r.raw)
	}
	// a failing test op: the real server's generic 422
	before := f.get(secretURL).str("metadata", "resourceVersion")
	r = f.req("PATCH", secretURL, ctJSONPatch, `[{"op":"test","path":"/data/k1","value":"wrong"},{"op":"add","path":"/data/z","value":"eg=="}]`)
	wantStatus(t, r, 422, "Invalid", "the server rejected our request due to an error in our request")
	if string(r.raw) != `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server rejected our request due to an error in our request","reason":"Invalid","details":{},"code":422}`+"\n" {
		t.Fatalf("422 body %s", r.raw)
	}
	if f.get(secretURL).str("metadata", "resourceVersion") != before {
		t.Fatal("failed patch wrote")
	}
	wantStatus(t, f.req("PATCH", secretURL, ctJSONPatch, `[{"op":"remove","path":"/data/nope"}]`), 422, "Invalid", "")
	wantStatus(t, f.req("PATCH", secretURL, ctJSONPatch, `{"op":"add"}`), 400, "BadRequest", "")
	// a JSON patch on resourceVersion is a precondition too
	wantStatus(t, f.req("PATCH", secretURL, ctJSONPatch, `[{"op":"replace","path":"/metadata/resourceVersion","value":"1"}]`), 409, "Conflict", "")
}

func TestPatchUnsupportedContentType(t *testing.T) {
	f := startFake(t)
	f.createSecret("ns1", "s", nil, nil)
	r := f.req("PATCH", secretURL, "application/json", `{}`)
	// go-restful's own answer, as the real server gives it
	wantStatus(t, r, 415, "UnsupportedMediaType", "415: Unsupported Media Type")
}

func TestServerSideApply(t *testing.T) {
	f := startFake(t)
	cfg := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","labels":{"owner":"a"}},"data":{"k1":"djE=","k2":"djI="}}`
	r := f.req("PATCH", secretURL, ctApply, cfg)
	wantStatus(t, r, 422, "Invalid", `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch`)
	r = f.req("PATCH", secretURL+"?fieldManager=mgr-a", ctApply, cfg)
	f.mustCode(r, 201)
	if getStr(r.obj, "data", "k1") != "djE=" || r.str("metadata", "labels", "owner") != "a" {
		t.Fatalf("apply create: %s", r.raw)
	}
	// another manager setting a field mgr-a owns to another value: conflict
	r = f.req("PATCH", secretURL+"?fieldManager=mgr-b", ctApply, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k1":"eA=="}}`)
	wantStatus(t, r, 409, "Conflict", `Apply failed with 1 conflict: conflict with "mgr-a": .data.k1`)
	r = f.req("PATCH", secretURL+"?fieldManager=mgr-b", ctApply, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","labels":{"owner":"b"}},"data":{"k1":"eA=="}}`)
	wantStatus(t, r, 409, "Conflict", "Apply failed with 2 conflicts: conflicts with \"mgr-a\":\n- .data.k1\n- .metadata.labels.owner")
	// same value: no conflict, shared ownership
	f.mustCode(f.req("PATCH", secretURL+"?fieldManager=mgr-b", ctApply, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k3":"eg=="}}`), 200)
	// force takes over
	r = f.req("PATCH", secretURL+"?fieldManager=mgr-b&force=true", ctApply, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k1":"eA==","k3":"eg=="}}`)
	f.mustCode(r, 200)
	if getStr(r.obj, "data", "k1") != "eA==" {
		t.Fatalf("force: %s", r.raw)
	}
	// mgr-a drops k2 from its config: the field goes; k1 is now mgr-b's and stays
	r = f.req("PATCH", secretURL+"?fieldManager=mgr-a", ctApply, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","labels":{"owner":"a"}}}`)
	f.mustCode(r, 200)
	d := getMap(r.obj, "data")
	if d["k2"] != nil || d["k1"] != "eA==" || d["k3"] != "eg==" {
		t.Fatalf("field removal: %s", r.raw)
	}
	// an update (merge patch) by another manager takes the field: applying
	// another value then conflicts with it
	f.mustCode(f.req("PATCH", secretURL+"?fieldManager=mgr-c", ctMergePatch, `{"data":{"k3":"cQ=="}}`), 200)
	r = f.req("PATCH", secretURL+"?fieldManager=mgr-b", ctApply, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k1":"eA==","k3":"eg=="}}`)
	wantStatus(t, r, 409, "Conflict", `Apply failed with 1 conflict: conflict with "mgr-c" using v1: .data.k3`)
	// stringData is owned as sent: it never conflicts with data
	f.mustCode(f.req("PATCH", "/api/v1/namespaces/ns1/secrets/t?fieldManager=mgr-a", ctApply, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"t"},"stringData":{"k":"v"}}`), 201)
	f.mustCode(f.req("PATCH", "/api/v1/namespaces/ns1/secrets/t?fieldManager=mgr-b", ctApply, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"t"},"data":{"k":"eA=="}}`), 200)
	wantStatus(t, f.req("PATCH", secretURL+"?fieldManager=x&force=true", ctMergePatch, `{}`), 422, "Invalid",
		`PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch`)
	wantStatus(t, f.req("PATCH", secretURL+"?fieldManager=x", ctApply, `{"kind":"Secret","metadata":{}}`), 400, "BadRequest", "invalid object type: /, Kind=Secret")
	// keyed lists are owned per element field: re-applying the same
	// container after defaults were added does not conflict
	dep := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"w"}},"template":{"metadata":{"labels":{"app":"w"}},"spec":{"containers":[{"name":"c","image":"i:1"}]}}}}`
	f.mustCode(f.req("POST", "/apis/apps/v1/namespaces/ns1/deployments?fieldManager=creator", "", dep), 201)
	f.mustCode(f.req("PATCH", "/apis/apps/v1/namespaces/ns1/deployments/web?fieldManager=ssa", ctApply, dep), 200)
	r = f.req("PATCH", "/apis/apps/v1/namespaces/ns1/deployments/web?fieldManager=ssa", ctApply, strings.Replace(dep, "i:1", "i:2", 1))
	wantStatus(t, r, 409, "Conflict", `Apply failed with 1 conflict: conflict with "creator" using apps/v1: .spec.template.spec.containers[name="c"].image`)
}
