package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Obj is a JSON object as decoded with UseNumber.
type Obj = map[string]any

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("invalid character after top-level value")
	}
	return v, nil
}

func decodeObj(b []byte) (Obj, error) {
	v, err := decodeJSON(b)
	if err != nil {
		return nil, err
	}
	o, ok := v.(Obj)
	if !ok {
		return nil, fmt.Errorf("json: cannot unmarshal %s into Go value of type struct", jsonKind(v))
	}
	return o, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return "object"
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case Obj:
		o := make(Obj, len(t))
		for k, x := range t {
			o[k] = deepCopy(x)
		}
		return o
	case []any:
		l := make([]any, len(t))
		for i, x := range t {
			l[i] = deepCopy(x)
		}
		return l
	}
	return v
}

func copyObj(o Obj) Obj {
	if o == nil {
		return nil
	}
	return deepCopy(o).(Obj)
}

// normalize turns ints and floats into json.Number so that objects built in Go
// compare equal to decoded ones.
func normalize(v any) any {
	switch t := v.(type) {
	case Obj:
		for k, x := range t {
			t[k] = normalize(x)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = normalize(x)
		}
		return t
	case []string:
		l := make([]any, len(t))
		for i, s := range t {
			l[i] = s
		}
		return l
	case int:
		return json.Number(strconv.Itoa(t))
	case int64:
		return json.Number(strconv.FormatInt(t, 10))
	case uint64:
		return json.Number(strconv.FormatUint(t, 10))
	case float64:
		return json.Number(strconv.FormatFloat(t, 'g', -1, 64))
	}
	return v
}

func jsonEqual(a, b any) bool {
	return reflect.DeepEqual(normalize(deepCopy(a)), normalize(deepCopy(b)))
}

// getPath walks maps: getPath(o, "metadata", "name").
func getPath(o Obj, keys ...string) any {
	var cur any = o
	for _, k := range keys {
		m, ok := cur.(Obj)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func getStr(o Obj, keys ...string) string {
	s, _ := getPath(o, keys...).(string)
	return s
}

func getMap(o Obj, keys ...string) Obj {
	m, _ := getPath(o, keys...).(Obj)
	return m
}

// ensureMap returns o[k] as a map, creating it when missing.
func ensureMap(o Obj, k string) Obj {
	if m, ok := o[k].(Obj); ok {
		return m
	}
	m := Obj{}
	o[k] = m
	return m
}

func meta(o Obj) Obj { return ensureMap(o, "metadata") }

func getInt(o Obj, keys ...string) (int64, bool) {
	switch t := getPath(o, keys...).(type) {
	case json.Number:
		n, err := t.Int64()
		return n, err == nil
	case int:
		return int64(t), true
	case int64:
		return t, true
	case float64:
		return int64(t), true
	}
	return 0, false
}

// ---- ordered encoding: fields in the order of the real server's Go
// structs (kind, apiVersion, metadata first; ObjectMeta order; the known
// types' fields); maps with free keys (data, labels) sorted, as Go sorts them.

type ord struct {
	rank   map[string]int  // keys placed first, in this order
	tail   map[string]int  // keys placed after all others
	kids   map[string]*ord // orders of nested objects
	items  *ord            // order of list elements
	byKind bool            // pick the order by the object's own kind
}

func ranks(keys ...string) map[string]int {
	m := make(map[string]int, len(keys))
	for i, k := range keys {
		m[k] = i
	}
	return m
}

func o(keys ...string) *ord { return &ord{rank: ranks(keys...)} }

func (x *ord) with(key string, child *ord) *ord {
	if x.kids == nil {
		x.kids = map[string]*ord{}
	}
	x.kids[key] = child
	return x
}

func list(item *ord) *ord { return &ord{items: item} }

var (
	ordByKind = &ord{byKind: true}
	ordMeta   = o("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
		"creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
		"ownerReferences", "finalizers", "managedFields", "continue", "remainingItemCount").
		with("ownerReferences", list(o("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")))
	ordStatus = o("kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code").
			with("metadata", ordMeta).
			with("details", o("name", "group", "kind", "uid", "causes", "retryAfterSeconds").
				with("causes", list(o("reason", "message", "field"))))
	ordContainer = o("name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources",
		"resizePolicy", "restartPolicy", "volumeMounts", "volumeDevices", "livenessProbe", "readinessProbe",
		"startupProbe", "lifecycle", "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy",
		"securityContext", "stdin", "stdinOnce", "tty").
		with("ports", list(o("name", "hostPort", "containerPort", "protocol", "hostIP"))).
		with("env", list(o("name", "value", "valueFrom")))
	ordPodSpec = o("volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy",
		"terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy", "nodeSelector",
		"serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName", "hostNetwork",
		"hostPID", "hostIPC", "shareProcessNamespace", "securityContext", "imagePullSecrets", "hostname",
		"subdomain", "affinity", "schedulerName", "tolerations", "hostAliases", "priorityClassName", "priority").
		with("containers", list(ordContainer)).with("initContainers", list(ordContainer))
	ordTemplate = o("metadata", "spec").with("metadata", ordMeta).with("spec", ordPodSpec)
	ordSelector = o("matchLabels", "matchExpressions")
	ordEvent    = o("involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count",
		"type", "eventTime", "series", "action", "related", "reportingComponent", "reportingInstance").
		with("involvedObject", o("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"))
	ordEventsV1 = o("eventTime", "series", "reportingController", "reportingInstance", "action", "reason",
		"regarding", "related", "note", "type", "deprecatedSource", "deprecatedFirstTimestamp",
		"deprecatedLastTimestamp", "deprecatedCount").
		with("regarding", o("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"))
	kindOrders = map[string]*ord{
		"Secret":         o("immutable", "data", "stringData", "type"),
		"ConfigMap":      o("immutable", "data", "binaryData"),
		"ServiceAccount": o("secrets", "imagePullSecrets", "automountServiceAccountToken"),
		"Namespace":      o().with("spec", o("finalizers")).with("status", o("phase", "conditions")),
		"Lease": o().with("spec", o("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime",
			"leaseTransitions", "strategy", "preferredHolder")),
		"TokenRequest": o().with("spec", o("audiences", "expirationSeconds", "boundObjectRef")).
			with("status", o("token", "expirationTimestamp")),
		"Deployment": o().with("spec", o("replicas", "selector", "template", "strategy", "minReadySeconds",
			"revisionHistoryLimit", "paused", "progressDeadlineSeconds").
			with("selector", ordSelector).with("template", ordTemplate).
			with("strategy", o("type", "rollingUpdate").with("rollingUpdate", o("maxUnavailable", "maxSurge")))).
			with("status", o("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
				"availableReplicas", "unavailableReplicas", "terminatingReplicas", "conditions", "collisionCount")),
		"StatefulSet": o().with("spec", o("replicas", "selector", "template", "volumeClaimTemplates", "serviceName",
			"podManagementPolicy", "updateStrategy", "revisionHistoryLimit", "minReadySeconds",
			"persistentVolumeClaimRetentionPolicy", "ordinals").
			with("selector", ordSelector).with("template", ordTemplate).
			with("updateStrategy", o("type", "rollingUpdate").with("rollingUpdate", o("partition", "maxUnavailable"))).
			with("persistentVolumeClaimRetentionPolicy", o("whenDeleted", "whenScaled"))).
			with("status", o("observedGeneration", "replicas", "readyReplicas", "currentReplicas", "updatedReplicas",
				"currentRevision", "updateRevision", "collisionCount", "conditions", "availableReplicas")),
		"Table": o("columnDefinitions", "rows").
			with("columnDefinitions", list(o("name", "type", "format", "description", "priority"))).
			with("rows", list(o("cells", "object").with("object", ordByKind))),
		"APIResourceList": o("groupVersion", "resources").with("resources", list(o("name", "singularName",
			"namespaced", "group", "version", "kind", "verbs", "shortNames", "categories", "storageVersionHash"))),
		"APIGroupList": o("groups").with("groups", list(o("name", "versions", "preferredVersion").
			with("versions", list(o("groupVersion", "version"))).with("preferredVersion", o("groupVersion", "version")))),
		"APIVersions": o("versions", "serverAddressByClientCIDRs").
			with("serverAddressByClientCIDRs", list(o("clientCIDR", "serverAddress"))),
	}
	ordEventLine = o("type", "object").with("object", ordByKind)
)

// objectOrd is the order for a whole object (or list) of the given kind.
func objectOrd(m Obj) *ord {
	kind, _ := m["kind"].(string)
	if kind == "Status" {
		return ordStatus
	}
	base := &ord{rank: ranks("kind", "apiVersion", "metadata"), tail: ranks("spec", "status"),
		kids: map[string]*ord{"metadata": ordMeta}}
	var ko *ord
	switch {
	case kind == "Event" && m["apiVersion"] == "events.k8s.io/v1":
		ko = ordEventsV1
	case kind == "Event":
		ko = ordEvent
	case strings.HasSuffix(kind, "List") && kindOrders[kind] == nil:
		base.kids["items"] = list(ordByKind)
		if ik := kindOrders[strings.TrimSuffix(kind, "List")]; ik != nil {
			base.kids["items"] = list(merged(strings.TrimSuffix(kind, "List")))
		}
		return base
	default:
		ko = kindOrders[kind]
	}
	if ko != nil {
		for k, r := range ko.rank {
			base.rank[k] = 3 + r
		}
		for k, c := range ko.kids {
			base.kids[k] = c
		}
	}
	return base
}

func merged(kind string) *ord { return objectOrd(Obj{"kind": kind}) }

func encodeJSON(v any) []byte {
	var b bytes.Buffer
	var top *ord
	if m, ok := v.(Obj); ok {
		if m["type"] != nil && m["object"] != nil && len(m) == 2 {
			top = ordEventLine
		} else {
			top = ordByKind
		}
	}
	enc(&b, v, top)
	b.WriteByte('\n')
	return b.Bytes()
}

func enc(b *bytes.Buffer, v any, od *ord) {
	switch t := v.(type) {
	case Obj:
		if od != nil && od.byKind {
			od = objectOrd(t)
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		rank := func(k string) int {
			if od != nil {
				if r, ok := od.rank[k]; ok {
					return r
				}
				if r, ok := od.tail[k]; ok {
					return 1000 + r
				}
			}
			return 500
		}
		sort.Slice(keys, func(i, j int) bool {
			ri, rj := rank(keys[i]), rank(keys[j])
			if ri != rj {
				return ri < rj
			}
			return keys[i] < keys[j]
		})
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			var child *ord
			if od != nil && od.kids != nil {
				child = od.kids[k]
			}
			enc(b, t[k], child)
		}
		b.WriteByte('}')
	case []any:
		var item *ord
		if od != nil {
			item = od.items
		}
		b.WriteByte('[')
		for i, x := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			enc(b, x, item)
		}
		b.WriteByte(']')
	default:
		jb, err := json.Marshal(t)
		if err != nil {
			jb = []byte("null")
		}
		b.Write(jb)
	}
}

func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	writeJSONType(w, r, code, v, "application/json")
}

func writeJSONType(w http.ResponseWriter, r *http.Request, code int, v any, ctype string) {
	body := encodeJSON(v)
	if r != nil && (r.URL.Query().Get("pretty") == "true" || r.URL.Query().Get("pretty") == "1") {
		var out bytes.Buffer
		if json.Indent(&out, body, "", "  ") == nil {
			body = out.Bytes()
		}
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(code)
	w.Write(body)
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func strList(v any) []string {
	l, _ := v.([]any)
	out := []string{}
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func hasPrefixAny(s string, ps ...string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
