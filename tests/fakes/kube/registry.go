package kube

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// resInfo describes one served resource.
type resInfo struct {
	group, version, resource, kind, singular string
	namespaced                               bool
	shortNames, categories                   []string
	verbs                                    []string
	subresources                             []string // "status", "token"
	// storage shares objects between two API resources (events and
	// events.k8s.io events); default group/resource.
	storage string
	// generation: metadata.generation is set and bumped on spec changes.
	generation bool
	// bumpOnAnnotations: deployments also bump generation on annotation changes.
	bumpOnAnnotations bool
	// hasStatus: status is reset on create and kept on main-resource updates.
	hasStatus     bool
	returnDeleted bool
	fieldLabels   []string
	extraFields   func(o Obj) map[string]string
	defaults      func(o Obj)
	validate      func(r *resInfo, o, old Obj) []fieldErr
	toExternal    func(o Obj) Obj // storage form -> this API's form
	toStorage     func(o Obj) Obj
	columns       []column
	// errKind: the kind named in Invalid errors when it is not group+kind
	// (events are validated as the internal core Event).
	errKind string
}

type column struct {
	name, typ, format, desc string
	priority                int
	cell                    func(o Obj, now time.Time) any
}

func (r *resInfo) apiVersion() string {
	if r.group == "" {
		return r.version
	}
	return r.group + "/" + r.version
}

func (r *resInfo) storageKey() string {
	if r.storage != "" {
		return r.storage
	}
	return qualified(r.group, r.resource)
}

func (r *resInfo) external(o Obj) Obj {
	if o == nil {
		return nil
	}
	o = copyObj(o)
	if r.toExternal != nil {
		o = r.toExternal(o)
	}
	o["kind"] = r.kind
	o["apiVersion"] = r.apiVersion()
	return o
}

func (r *resInfo) fieldSet(o Obj) map[string]string {
	f := map[string]string{"metadata.name": getStr(o, "metadata", "name")}
	if r.namespaced {
		f["metadata.namespace"] = getStr(o, "metadata", "namespace")
	}
	if r.extraFields != nil {
		for k, v := range r.extraFields(o) {
			f[k] = v
		}
	}
	return f
}

func (r *resInfo) supportsField(k string) bool {
	if k == "metadata.name" || k == "metadata.namespace" {
		return true
	}
	return contains(r.fieldLabels, k)
}

var allVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

var dns1123SubdomainRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
var dns1123LabelRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
var configKeyRe = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

const dnsSubdomainMsg = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
const dnsLabelMsg = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
const configKeyMsg = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"

func validateName(r *resInfo, name string) []fieldErr {
	if r.resource == "namespaces" {
		if len(name) > 63 {
			return []fieldErr{{"FieldValueInvalid", "metadata.name", fmt.Sprintf("Invalid value: %q: must be no more than 63 characters", name)}}
		}
		if !dns1123LabelRe.MatchString(name) {
			return []fieldErr{fieldInvalid("metadata.name", name, dnsLabelMsg)}
		}
		return nil
	}
	if len(name) > 253 {
		return []fieldErr{{"FieldValueInvalid", "metadata.name", fmt.Sprintf("Invalid value: %q: must be no more than 253 characters", name)}}
	}
	if !dns1123SubdomainRe.MatchString(name) {
		return []fieldErr{fieldInvalid("metadata.name", name, dnsSubdomainMsg)}
	}
	return nil
}

// annotationsMaxBytes is the real server's cap on an object's annotations: the
// lengths of every key and value added up (TotalAnnotationSizeLimitB).
const annotationsMaxBytes = 256 << 10

// The real server's messages for a key that is not a qualified name
// (apimachinery's IsQualifiedName, as kube-apiserver v1.37 words them).
const (
	qnNameMsg    = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
	qnPrefixMsg  = "prefix part " + dnsSubdomainMsg
	qnSlashesMsg = "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
)

var (
	qualifiedNameRe = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
)

// qualifiedNameErrs returns what the real server says of k as a qualified name
// ([prefix/]name), in its order; nil when k is one.
func qualifiedNameErrs(k string) []string {
	var errs []string
	parts := strings.Split(k, "/")
	name := parts[0]
	switch len(parts) {
	case 1:
	case 2:
		prefix := parts[0]
		name = parts[1]
		if prefix == "" {
			errs = append(errs, "prefix part must be non-empty")
		} else {
			if len(prefix) > 253 {
				errs = append(errs, "prefix part must be no more than 253 bytes")
			}
			if !dns1123SubdomainRe.MatchString(prefix) {
				errs = append(errs, qnPrefixMsg)
			}
		}
	default:
		return []string{qnSlashesMsg}
	}
	if name == "" {
		errs = append(errs, "name part must be non-empty")
	} else if len(name) > 63 {
		errs = append(errs, "name part must be no more than 63 bytes")
	}
	if !qualifiedNameRe.MatchString(name) {
		errs = append(errs, qnNameMsg)
	}
	return errs
}

func validateMetaMaps(o Obj) []fieldErr {
	var errs []fieldErr
	for _, k := range sortedKeys(getMap(o, "metadata", "labels")) {
		for _, msg := range qualifiedNameErrs(k) {
			errs = append(errs, fieldInvalid("metadata.labels", k, msg))
		}
	}
	// Annotations as the real server checks them (apimachinery's ValidateAnnotations):
	// every key a qualified name once lower-cased, and keys plus values at most 256 KiB.
	ann := getMap(o, "metadata", "annotations")
	size := 0
	for _, k := range sortedKeys(ann) {
		for _, msg := range qualifiedNameErrs(strings.ToLower(k)) {
			errs = append(errs, fieldInvalid("metadata.annotations", k, msg))
		}
		v, _ := ann[k].(string)
		size += len(k) + len(v)
	}
	if size > annotationsMaxBytes {
		errs = append(errs, fieldErr{"FieldValueTooLong", "metadata.annotations",
			fmt.Sprintf("Too long: may not be more than %d bytes", annotationsMaxBytes)})
	}
	for _, k := range sortedKeys(getMap(o, "metadata", "labels")) {
		v, ok := getMap(o, "metadata", "labels")[k].(string)
		if !ok {
			continue
		}
		if err := validLabelValue(v); err != nil {
			errs = append(errs, fieldInvalid("metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"))
		}
	}
	return errs
}

func validateSecret(r *resInfo, o, old Obj) []fieldErr {
	var errs []fieldErr
	total := 0
	data := getMap(o, "data")
	for _, k := range sortedKeys(data) {
		if !configKeyRe.MatchString(k) || len(k) > 253 || k == "." || k == ".." {
			errs = append(errs, fieldInvalid("data["+k+"]", k, configKeyMsg))
		}
		s, _ := data[k].(string)
		b, _ := base64.StdEncoding.DecodeString(s)
		total += len(b)
	}
	if total > 1<<20 {
		errs = append(errs, fieldErr{"FieldValueTooLong", "data", "Too long: may not be more than 1048576 bytes"})
	}
	switch getStr(o, "type") {
	case "kubernetes.io/tls":
		for _, k := range []string{"tls.crt", "tls.key"} {
			if _, ok := data[k]; !ok {
				errs = append(errs, fieldRequired("data["+k+"]", ""))
			}
		}
	case "kubernetes.io/dockerconfigjson":
		if _, ok := data[".dockerconfigjson"]; !ok {
			errs = append(errs, fieldRequired("data[.dockerconfigjson]", ""))
		}
	case "kubernetes.io/basic-auth":
		_, u := data["username"]
		_, p := data["password"]
		if !u && !p {
			errs = append(errs, fieldRequired("data[username]", ""))
		}
	}
	if old != nil {
		if getStr(old, "type") != getStr(o, "type") {
			errs = append(errs, fieldInvalid("type", getStr(o, "type"), "field is immutable"))
		}
		if b, _ := old["immutable"].(bool); b {
			if !jsonEqual(old["data"], o["data"]) {
				errs = append(errs, fieldForbidden("data", "field is immutable when `immutable` is set"))
			}
			if nb, _ := o["immutable"].(bool); !nb {
				errs = append(errs, fieldForbidden("immutable", "field is immutable when `immutable` is set"))
			}
		}
	}
	return errs
}

func validateConfigMap(r *resInfo, o, old Obj) []fieldErr {
	var errs []fieldErr
	for _, f := range []string{"data", "binaryData"} {
		for _, k := range sortedKeys(getMap(o, f)) {
			if !configKeyRe.MatchString(k) || len(k) > 253 || k == "." || k == ".." {
				errs = append(errs, fieldInvalid(f+"["+k+"]", k, configKeyMsg))
			}
		}
	}
	if old != nil {
		if b, _ := old["immutable"].(bool); b {
			if !jsonEqual(old["data"], o["data"]) || !jsonEqual(old["binaryData"], o["binaryData"]) {
				errs = append(errs, fieldForbidden("data", "field is immutable when `immutable` is set"))
			}
		}
	}
	return errs
}

func validateLease(r *resInfo, o, old Obj) []fieldErr {
	var errs []fieldErr
	if n, ok := getInt(o, "spec", "leaseDurationSeconds"); ok && n <= 0 {
		errs = append(errs, fieldInvalid("spec.leaseDurationSeconds", n, "must be greater than 0"))
	}
	if n, ok := getInt(o, "spec", "leaseTransitions"); ok && n < 0 {
		errs = append(errs, fieldInvalid("spec.leaseTransitions", n, "must be greater than or equal to 0"))
	}
	return errs
}

func validateWorkload(r *resInfo, o, old Obj) []fieldErr {
	var errs []fieldErr
	sel := getMap(o, "spec", "selector")
	if sel == nil {
		return []fieldErr{fieldRequired("spec.selector", "")}
	}
	ml := getMap(sel, "matchLabels")
	if len(ml) == 0 && getPath(sel, "matchExpressions") == nil {
		errs = append(errs, fieldInvalid("spec.selector", "null", "empty selector is invalid for deployment"))
	}
	tl := objLabels(getMap(o, "spec", "template"))
	for k, v := range ml {
		if s, _ := v.(string); tl[k] != s {
			lb, _ := json.Marshal(tl)
			errs = append(errs, fieldErr{"FieldValueInvalid", "spec.template.metadata.labels",
				fmt.Sprintf("Invalid value: %s: `selector` does not match template `labels`", lb)})
			break
		}
	}
	if c, _ := getPath(o, "spec", "template", "spec", "containers").([]any); len(c) == 0 {
		errs = append(errs, fieldRequired("spec.template.spec.containers", ""))
	}
	if old != nil && !jsonEqual(getPath(old, "spec", "selector"), getPath(o, "spec", "selector")) {
		errs = append(errs, fieldInvalid("spec.selector", "", "field is immutable"))
	}
	return errs
}

func setDefault(o Obj, k string, v any) {
	if _, ok := o[k]; !ok {
		o[k] = v
	}
}

func defaultPodTemplate(o Obj) {
	tpl := getMap(o, "spec", "template")
	if tpl == nil {
		return
	}
	ps := getMap(tpl, "spec")
	if ps == nil {
		return
	}
	setDefault(ps, "restartPolicy", "Always")
	setDefault(ps, "terminationGracePeriodSeconds", 30)
	setDefault(ps, "dnsPolicy", "ClusterFirst")
	setDefault(ps, "securityContext", Obj{})
	setDefault(ps, "schedulerName", "default-scheduler")
	for _, f := range []string{"containers", "initContainers"} {
		cs, _ := ps[f].([]any)
		for _, c := range cs {
			cm, ok := c.(Obj)
			if !ok {
				continue
			}
			setDefault(cm, "terminationMessagePath", "/dev/termination-log")
			setDefault(cm, "terminationMessagePolicy", "File")
			setDefault(cm, "resources", Obj{})
			img := getStr(cm, "image")
			pol := "IfNotPresent"
			last := img[strings.LastIndex(img, "/")+1:]
			if !strings.Contains(last, ":") && !strings.Contains(img, "@") || strings.HasSuffix(img, ":latest") {
				pol = "Always"
			}
			setDefault(cm, "imagePullPolicy", pol)
			ports, _ := cm["ports"].([]any)
			for _, p := range ports {
				if pm, ok := p.(Obj); ok {
					setDefault(pm, "protocol", "TCP")
				}
			}
		}
	}
}

func defaultDeployment(o Obj) {
	spec := ensureMap(o, "spec")
	setDefault(spec, "replicas", 1)
	setDefault(spec, "revisionHistoryLimit", 10)
	setDefault(spec, "progressDeadlineSeconds", 600)
	st := ensureMap(spec, "strategy")
	setDefault(st, "type", "RollingUpdate")
	if st["type"] == "RollingUpdate" {
		ru := ensureMap(st, "rollingUpdate")
		setDefault(ru, "maxUnavailable", "25%")
		setDefault(ru, "maxSurge", "25%")
	}
	defaultPodTemplate(o)
}

func defaultStatefulSet(o Obj) {
	spec := ensureMap(o, "spec")
	setDefault(spec, "replicas", 1)
	setDefault(spec, "revisionHistoryLimit", 10)
	setDefault(spec, "podManagementPolicy", "OrderedReady")
	setDefault(spec, "serviceName", "")
	us := ensureMap(spec, "updateStrategy")
	setDefault(us, "type", "RollingUpdate")
	if us["type"] == "RollingUpdate" {
		ru := ensureMap(us, "rollingUpdate")
		setDefault(ru, "partition", 0)
		setDefault(ru, "maxUnavailable", 1)
	}
	pr := ensureMap(spec, "persistentVolumeClaimRetentionPolicy")
	setDefault(pr, "whenDeleted", "Retain")
	setDefault(pr, "whenScaled", "Retain")
	defaultPodTemplate(o)
}

// ---- events: core v1 is the storage form; events.k8s.io/v1 converts.

var eventRenames = [][2]string{ // events.k8s.io name, core name
	{"regarding", "involvedObject"}, {"note", "message"}, {"reportingController", "reportingComponent"},
	{"deprecatedSource", "source"}, {"deprecatedFirstTimestamp", "firstTimestamp"},
	{"deprecatedLastTimestamp", "lastTimestamp"}, {"deprecatedCount", "count"},
}

func renameKeys(o Obj, fromIdx int) Obj {
	for _, p := range eventRenames {
		from, to := p[fromIdx], p[1-fromIdx]
		if v, ok := o[from]; ok {
			delete(o, from)
			o[to] = v
		}
	}
	return o
}

func eventFields(o Obj) map[string]string {
	io := getMap(o, "involvedObject")
	f := map[string]string{
		"reason": getStr(o, "reason"), "type": getStr(o, "type"),
		"source":                         getStr(o, "source", "component"),
		"reportingComponent":             getStr(o, "reportingComponent"),
		"involvedObject.kind":            getStr(io, "kind"),
		"involvedObject.namespace":       getStr(io, "namespace"),
		"involvedObject.name":            getStr(io, "name"),
		"involvedObject.uid":             getStr(io, "uid"),
		"involvedObject.apiVersion":      getStr(io, "apiVersion"),
		"involvedObject.resourceVersion": getStr(io, "resourceVersion"),
		"involvedObject.fieldPath":       getStr(io, "fieldPath"),
	}
	return f
}

// validateEvent is the real legacyValidateEvent plus, for events.k8s.io,
// the strict creation checks. o is in storage (core) form.
func validateEvent(o Obj, strict bool) []fieldErr {
	var errs []fieldErr
	ctrlField := "reportingComponent"
	if strict {
		ctrlField = "reportingController"
	}
	ns := getStr(o, "metadata", "namespace")
	ions := getStr(o, "involvedObject", "namespace")
	hasTime := getPath(o, "eventTime") != nil
	if !hasTime {
		if ions == "" {
			if ns != "" && ns != "default" {
				errs = append(errs, fieldInvalid("involvedObject.namespace", ions, "does not match event.namespace"))
			}
		} else if ns != ions {
			errs = append(errs, fieldInvalid("involvedObject.namespace", ions, "does not match event.namespace"))
		}
	} else {
		if ions == "" && ns != "default" && ns != "kube-system" {
			errs = append(errs, fieldInvalid("involvedObject.namespace", ions, "does not match event.namespace"))
		}
		rc := getStr(o, "reportingComponent")
		if rc == "" {
			errs = append(errs, fieldRequired(ctrlField, ""))
			errs = append(errs, fieldInvalid(ctrlField, "", "name part must be non-empty"))
			errs = append(errs, fieldInvalid(ctrlField, "", "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"))
		} else if err := validLabelKey(rc); err != nil {
			errs = append(errs, fieldInvalid(ctrlField, rc, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"))
		}
		if getStr(o, "reportingInstance") == "" {
			errs = append(errs, fieldRequired("reportingInstance", ""))
		}
	}
	if !strict {
		return errs
	}
	if !hasTime {
		return append(errs, fieldRequired("eventTime", ""))
	}
	if t := getStr(o, "type"); t != "Normal" && t != "Warning" {
		errs = append(errs, fieldInvalid("type", "", "has invalid value: "+t))
	}
	if getStr(o, "action") == "" {
		errs = append(errs, fieldRequired("action", ""))
	}
	if getStr(o, "reason") == "" {
		errs = append(errs, fieldRequired("reason", ""))
	}
	if len(getStr(o, "message")) > 1024 {
		errs = append(errs, fieldErr{"FieldValueTooLong", "note", "Too long: may not be more than 1024 bytes"})
	}
	return errs
}

func validateEventsV1(r *resInfo, o, old Obj) []fieldErr {
	if old != nil {
		return nil
	}
	return validateEvent(o, true)
}

func validateCoreEvent(r *resInfo, o, old Obj) []fieldErr { return validateEvent(o, false) }

// defaultCoreEvent gives a stored Event the zero fields the typed object
// serializes (source, timestamps, reporting fields).
func defaultCoreEvent(o Obj) {
	setDefault(o, "involvedObject", Obj{})
	setDefault(o, "source", Obj{})
	setDefault(o, "firstTimestamp", nil)
	setDefault(o, "lastTimestamp", nil)
	setDefault(o, "eventTime", nil)
	setDefault(o, "reportingComponent", "")
	setDefault(o, "reportingInstance", "")
}

// ---- table columns (server-side printing), as the real printers define them.

func nameCol() column {
	return column{name: "Name", typ: "string", format: "name",
		desc: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
		cell: func(o Obj, _ time.Time) any { return getStr(o, "metadata", "name") }}
}

func ageCol() column {
	return column{name: "Age", typ: "string",
		desc: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
		cell: func(o Obj, now time.Time) any { return ageOf(getStr(o, "metadata", "creationTimestamp"), now) }}
}

func ageOf(ts string, now time.Time) string {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return "<unknown>"
	}
	return humanDuration(now.Sub(t))
}

// humanDuration is k8s.io/apimachinery/pkg/util/duration.HumanDuration.
func humanDuration(d time.Duration) string {
	if seconds := int(d.Seconds()); seconds < -1 {
		return "<invalid>"
	} else if seconds < 0 {
		return "0s"
	} else if seconds < 60*2 {
		return fmt.Sprintf("%ds", seconds)
	}
	minutes := int(d / time.Minute)
	if minutes < 10 {
		s := int(d/time.Second) % 60
		if s == 0 {
			return fmt.Sprintf("%dm", minutes)
		}
		return fmt.Sprintf("%dm%ds", minutes, s)
	} else if minutes < 60*3 {
		return fmt.Sprintf("%dm", minutes)
	}
	hours := int(d / time.Hour)
	if hours < 8 {
		m := int(d/time.Minute) % 60
		if m == 0 {
			return fmt.Sprintf("%dh", hours)
		}
		return fmt.Sprintf("%dh%dm", hours, m)
	} else if hours < 48 {
		return fmt.Sprintf("%dh", hours)
	} else if hours < 24*8 {
		h := hours % 24
		if h == 0 {
			return fmt.Sprintf("%dd", hours/24)
		}
		return fmt.Sprintf("%dd%dh", hours/24, h)
	} else if hours < 24*365*2 {
		return fmt.Sprintf("%dd", hours/24)
	} else if hours < 24*365*8 {
		dy := (hours / 24) % 365
		if dy == 0 {
			return fmt.Sprintf("%dy", hours/24/365)
		}
		return fmt.Sprintf("%dy%dd", hours/24/365, dy)
	}
	return fmt.Sprintf("%dy", hours/24/365)
}

func col(name, desc string, f func(o Obj, now time.Time) any) column {
	return column{name: name, typ: "string", desc: desc, cell: f}
}

// intCol is a column with numeric cells; the real printers declare them
// "string" all the same.
func intCol(name, desc string, f func(o Obj, now time.Time) any) column {
	return column{name: name, typ: "string", desc: desc, cell: f}
}

func containersImages(o Obj) (string, string) {
	cs, _ := getPath(o, "spec", "template", "spec", "containers").([]any)
	var names, imgs []string
	for _, c := range cs {
		if m, ok := c.(Obj); ok {
			names = append(names, getStr(m, "name"))
			imgs = append(imgs, getStr(m, "image"))
		}
	}
	return strings.Join(names, ","), strings.Join(imgs, ",")
}

func selectorString(sel Obj) string {
	ml := getMap(sel, "matchLabels")
	var parts []string
	for _, k := range sortedKeys(ml) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, ml[k]))
	}
	if len(parts) == 0 {
		return "<none>"
	}
	return strings.Join(parts, ",")
}

func i64(o Obj, keys ...string) int64 {
	n, _ := getInt(o, keys...)
	return n
}

// ---- the resources served.

func builtinResources() []*resInfo {
	rs := []*resInfo{
		{group: "", version: "v1", resource: "namespaces", kind: "Namespace", singular: "namespace",
			shortNames: []string{"ns"}, verbs: []string{"create", "delete", "get", "list", "patch", "update", "watch"},
			subresources: []string{"status", "finalize"}, fieldLabels: []string{"status.phase"},
			extraFields: func(o Obj) map[string]string { return map[string]string{"status.phase": getStr(o, "status", "phase")} },
			defaults: func(o Obj) {
				name := getStr(o, "metadata", "name")
				l := ensureMap(meta(o), "labels")
				l["kubernetes.io/metadata.name"] = name
				spec := ensureMap(o, "spec")
				setDefault(spec, "finalizers", []any{"kubernetes"})
				st := ensureMap(o, "status")
				setDefault(st, "phase", "Active")
			},
			columns: []column{nameCol(), col("Status", "The status of the namespace", func(o Obj, _ time.Time) any { return getStr(o, "status", "phase") }), ageCol()}},
		{group: "", version: "v1", resource: "secrets", kind: "Secret", singular: "secret", namespaced: true,
			verbs: allVerbs, fieldLabels: []string{"type"},
			extraFields: func(o Obj) map[string]string { return map[string]string{"type": getStr(o, "type")} },
			defaults:    func(o Obj) { setDefault(o, "type", "Opaque") },
			validate:    validateSecret,
			columns: []column{nameCol(),
				col("Type", "The type of the secret", func(o Obj, _ time.Time) any { return getStr(o, "type") }),
				intCol("Data", "The number of entries in the secret", func(o Obj, _ time.Time) any { return len(getMap(o, "data")) }),
				ageCol()}},
		{group: "", version: "v1", resource: "configmaps", kind: "ConfigMap", singular: "configmap", namespaced: true,
			shortNames: []string{"cm"}, verbs: allVerbs, validate: validateConfigMap,
			columns: []column{nameCol(),
				intCol("Data", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.", func(o Obj, _ time.Time) any {
					return len(getMap(o, "data")) + len(getMap(o, "binaryData"))
				}),
				ageCol()}},
		{group: "", version: "v1", resource: "serviceaccounts", kind: "ServiceAccount", singular: "serviceaccount", namespaced: true,
			shortNames: []string{"sa"}, verbs: allVerbs, subresources: []string{"token"}, returnDeleted: true,
			columns: []column{nameCol(), ageCol()}},
		{group: "", version: "v1", resource: "events", kind: "Event", singular: "event", namespaced: true,
			shortNames: []string{"ev"}, verbs: allVerbs,
			fieldLabels: []string{"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
				"involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
			extraFields: eventFields, validate: validateCoreEvent, defaults: defaultCoreEvent, errKind: "Event",
			columns: eventColumns()},
		{group: "events.k8s.io", version: "v1", resource: "events", kind: "Event", singular: "event", namespaced: true,
			shortNames: []string{"ev"}, verbs: allVerbs, storage: "events",
			fieldLabels: []string{"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
				"involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
			extraFields: eventFields, validate: validateEventsV1, defaults: defaultCoreEvent, errKind: "Event",
			toExternal: func(o Obj) Obj {
				o = renameKeys(o, 1)
				for _, k := range []string{"reportingController", "reportingInstance", "action", "note"} {
					if o[k] == "" {
						delete(o, k) // omitempty in events.k8s.io/v1
					}
				}
				return o
			},
			toStorage: func(o Obj) Obj { return renameKeys(o, 0) },
			columns:   eventColumns()},
		{group: "coordination.k8s.io", version: "v1", resource: "leases", kind: "Lease", singular: "lease", namespaced: true,
			verbs: allVerbs, validate: validateLease,
			columns: []column{nameCol(),
				col("Holder", "HolderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.", func(o Obj, _ time.Time) any {
					return getStr(o, "spec", "holderIdentity")
				}),
				ageCol()}},
		{group: "apps", version: "v1", resource: "deployments", kind: "Deployment", singular: "deployment", namespaced: true,
			shortNames: []string{"deploy"}, categories: []string{"all"}, verbs: allVerbs, subresources: []string{"status"},
			generation: true, bumpOnAnnotations: true, hasStatus: true, defaults: defaultDeployment, validate: validateWorkload,
			columns: []column{nameCol(),
				col("Ready", "Number of the pod with ready state", func(o Obj, _ time.Time) any {
					return fmt.Sprintf("%d/%d", i64(o, "status", "readyReplicas"), i64(o, "spec", "replicas"))
				}),
				intCol("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec.", func(o Obj, _ time.Time) any { return i64(o, "status", "updatedReplicas") }),
				intCol("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.", func(o Obj, _ time.Time) any { return i64(o, "status", "availableReplicas") }),
				ageCol(),
				{name: "Containers", typ: "string", priority: 1, desc: "Names of each container in the template.", cell: func(o Obj, _ time.Time) any { c, _ := containersImages(o); return c }},
				{name: "Images", typ: "string", priority: 1, desc: "Images referenced by each container in the template.", cell: func(o Obj, _ time.Time) any { _, i := containersImages(o); return i }},
				{name: "Selector", typ: "string", priority: 1, desc: "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.", cell: func(o Obj, _ time.Time) any { return selectorString(getMap(o, "spec", "selector")) }},
			}},
		{group: "apps", version: "v1", resource: "statefulsets", kind: "StatefulSet", singular: "statefulset", namespaced: true,
			shortNames: []string{"sts"}, categories: []string{"all"}, verbs: allVerbs, subresources: []string{"status"},
			generation: true, hasStatus: true, defaults: defaultStatefulSet, validate: validateWorkload,
			columns: []column{nameCol(),
				col("Ready", "Number of the pod with ready state", func(o Obj, _ time.Time) any {
					return fmt.Sprintf("%d/%d", i64(o, "status", "readyReplicas"), i64(o, "spec", "replicas"))
				}),
				ageCol(),
				{name: "Containers", typ: "string", priority: 1, desc: "Names of each container in the template.", cell: func(o Obj, _ time.Time) any { c, _ := containersImages(o); return c }},
				{name: "Images", typ: "string", priority: 1, desc: "Images referenced by each container in the template.", cell: func(o Obj, _ time.Time) any { _, i := containersImages(o); return i }},
			}},
	}
	return rs
}

// newStatus is the status a workload gets on create (the real strategies
// reset it).
func newStatus(r *resInfo) Obj {
	if r.resource == "statefulsets" {
		return Obj{"replicas": 0, "availableReplicas": 0}
	}
	return Obj{}
}

// the real event printer's cells (printEvent).
func eventLastSeen(o Obj, now time.Time) string {
	if n, ok := getInt(o, "series", "count"); ok && n > 0 {
		if t, err := time.Parse(time.RFC3339Nano, getStr(o, "series", "lastObservedTime")); err == nil {
			return humanDuration(now.Sub(t))
		}
	}
	if ts := getStr(o, "lastTimestamp"); ts != "" {
		return ageOf(ts, now)
	}
	if t, err := time.Parse(time.RFC3339Nano, getStr(o, "eventTime")); err == nil {
		return humanDuration(now.Sub(t))
	}
	return "<unknown>"
}

func eventFirstSeen(o Obj, now time.Time) string {
	if ts := getStr(o, "firstTimestamp"); ts != "" {
		return ageOf(ts, now)
	}
	if t, err := time.Parse(time.RFC3339Nano, getStr(o, "eventTime")); err == nil {
		return humanDuration(now.Sub(t))
	}
	return "<unknown>"
}

func eventCount(o Obj) int64 {
	if n, ok := getInt(o, "series", "count"); ok {
		return n
	}
	if n, ok := getInt(o, "count"); ok && n > 0 {
		return n
	}
	return 1
}

func eventSource(o Obj) string {
	c := getStr(o, "source", "component")
	if c == "" {
		c = getStr(o, "reportingComponent")
	}
	if h := getStr(o, "source", "host"); h != "" {
		c += ", " + h
	}
	return c
}

// eventColumns are the real event printer's columns (cells computed on the
// core form, which is how events are stored).
func eventColumns() []column {
	return []column{
		col("Last Seen", "", func(o Obj, now time.Time) any { return eventLastSeen(o, now) }),
		col("Type", "", func(o Obj, _ time.Time) any { return getStr(o, "type") }),
		col("Reason", "", func(o Obj, _ time.Time) any { return getStr(o, "reason") }),
		col("Object", "", func(o Obj, _ time.Time) any {
			return strings.ToLower(getStr(o, "involvedObject", "kind")) + "/" + getStr(o, "involvedObject", "name")
		}),
		{name: "Subobject", typ: "string", priority: 1, cell: func(o Obj, _ time.Time) any { return getStr(o, "involvedObject", "fieldPath") }},
		{name: "Source", typ: "string", priority: 1, cell: func(o Obj, _ time.Time) any { return eventSource(o) }},
		col("Message", "", func(o Obj, _ time.Time) any { return strings.TrimSpace(getStr(o, "message")) }),
		{name: "First Seen", typ: "string", priority: 1, cell: func(o Obj, now time.Time) any { return eventFirstSeen(o, now) }},
		{name: "Count", typ: "string", priority: 1, cell: func(o Obj, _ time.Time) any { return eventCount(o) }},
		{name: "Name", typ: "string", format: "name", priority: 1, cell: func(o Obj, _ time.Time) any { return getStr(o, "metadata", "name") }},
	}
}
