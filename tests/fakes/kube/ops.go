package kube

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Write operations. Each runs with s.mu held from read to commit, like one
// etcd transaction (GuaranteedUpdate).

// decodeIncoming turns a request body into the storage form of r's object
// and checks its kind and apiVersion.
func decodeIncoming(r *resInfo, body []byte) (Obj, *apiError) {
	o, err := decodeObj(body)
	if err != nil {
		return nil, errBadRequest(fmt.Sprintf("the object provided is unrecognized (must be of type %s): %v (%s)", r.kind, err, summarize(body)))
	}
	av, _ := o["apiVersion"].(string)
	k, _ := o["kind"].(string)
	if av == "" {
		av = r.apiVersion()
	}
	if k == "" {
		k = r.kind
	}
	ver := av[strings.LastIndex(av, "/")+1:]
	switch {
	case av != r.apiVersion():
		return nil, errBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: no kind %q is registered for version %q in scheme \"pkg/runtime/scheme.go:111\"", k, ver, r.kind, k, av))
	case k != r.kind && knownKind(av, k):
		return nil, errBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: converting (%s.%s) to (%s.%s): unknown conversion", k, ver, r.kind, ver, k, internalPkg(r.group), r.kind))
	case k != r.kind:
		return nil, errBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: no kind %q is registered for version %q in scheme \"pkg/runtime/scheme.go:111\"", k, ver, r.kind, k, av))
	}
	if r.toStorage != nil {
		o = r.toStorage(o)
	}
	return o, nil
}

func summarize(b []byte) string {
	s := string(b)
	if len(s) > 30 {
		s = s[:30] + " ..."
	}
	return s
}

// normalizeIn applies what decoding into the typed object does on the real
// server: secret stringData is merged into data, data must be base64.
func normalizeIn(r *resInfo, o Obj) *apiError {
	delete(o, "kind")
	delete(o, "apiVersion")
	if r.resource == "secrets" && r.group == "" {
		foldStringData(o)
		for k, v := range getMap(o, "data") {
			s, ok := v.(string)
			if !ok {
				if v == nil {
					continue
				}
				return errBadRequest(fmt.Sprintf("Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal %s into Go struct field Secret.data of type []uint8", jsonKind(v)))
			}
			if _, err := base64.StdEncoding.DecodeString(s); err != nil {
				return errBadRequest(fmt.Sprintf("Secret in version \"v1\" cannot be handled as a Secret: %v", strings.Replace(err.Error(), "illegal base64 data at input byte", "illegal base64 data at input byte", 1)))
			}
			_ = k
		}
		if d, ok := o["data"].(Obj); ok && len(d) == 0 {
			delete(o, "data")
		}
	}
	if md, ok := o["metadata"]; ok && md != nil {
		if _, ok := md.(Obj); !ok {
			return errBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: json: cannot unmarshal %s into Go struct field %s.metadata of type v1.ObjectMeta", r.kind, r.version, r.kind, jsonKind(md), r.kind))
		}
	}
	meta(o)
	for _, k := range []string{"labels", "annotations"} {
		if m, ok := o["metadata"].(Obj)[k].(Obj); ok {
			if len(m) == 0 {
				delete(o["metadata"].(Obj), k)
				continue
			}
			for kk, v := range m {
				if _, ok := v.(string); !ok {
					return errBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: json: cannot unmarshal %s into Go struct field ObjectMeta.metadata.%s of type string", r.kind, r.version, r.kind, jsonKind(v), k))
				}
				_ = kk
			}
		}
	}
	return nil
}

func (sv *Server) checkNamespace(r *resInfo, ns string) *apiError {
	if !r.namespaced {
		return nil
	}
	nsInfo := sv.res["/namespaces"]
	if sv.store.bucket(nsInfo).objs[ns] == nil {
		return errNotFound("", "namespaces", ns)
	}
	return nil
}

func (sv *Server) validate(r *resInfo, o, old Obj) *apiError {
	var errs []fieldErr
	name := getStr(o, "metadata", "name")
	if old == nil {
		errs = append(errs, validateName(r, name)...)
	}
	errs = append(errs, validateMetaMaps(o)...)
	if r.validate != nil {
		errs = append(errs, r.validate(r, o, old)...)
	}
	if len(errs) > 0 {
		if r.errKind != "" {
			return errInvalid("", r.errKind, name, errs)
		}
		return errInvalid(r.group, r.kind, name, errs)
	}
	return nil
}

// create is POST on a collection.
func (sv *Server) create(r *resInfo, ns string, o Obj, manager string) (Obj, *apiError) {
	if e := normalizeIn(r, o); e != nil {
		return nil, e
	}
	m := meta(o)
	if r.namespaced {
		if bns, _ := m["namespace"].(string); bns != "" && bns != ns {
			return nil, errBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		m["namespace"] = ns
	} else {
		delete(m, "namespace")
	}
	name, _ := m["name"].(string)
	if name == "" {
		if gn, _ := m["generateName"].(string); gn != "" {
			name = gn + randSuffix()
			m["name"] = name
		}
	}
	if name == "" {
		return nil, errInvalid(r.group, r.kind, "", []fieldErr{fieldRequired("metadata.name", "name or generateName is required")})
	}
	if rv, _ := m["resourceVersion"].(string); rv != "" {
		// the storage layer's ErrResourceVersionSetOnCreate, which the real
		// server answers as a 500 without a reason
		return nil, &apiError{code: 500, message: "resourceVersion should not be set on objects to be created"}
	}
	sv.store.mu.Lock()
	defer sv.store.mu.Unlock()
	return sv.createLocked(r, ns, o, manager)
}

// createLocked is create with the store lock held.
func (sv *Server) createLocked(r *resInfo, ns string, o Obj, manager string) (Obj, *apiError) {
	s := sv.store
	m := meta(o)
	name := getStr(o, "metadata", "name")
	if e := sv.checkNamespace(r, ns); e != nil {
		return nil, e
	}
	if r.namespaced {
		if nso := s.bucket(sv.res["/namespaces"]).objs[ns]; getPath(nso, "metadata", "deletionTimestamp") != nil {
			d := grDetails(r.group, r.resource, name)
			d["causes"] = []any{Obj{"reason": "NamespaceTerminating", "message": "namespace " + ns + " is being terminated", "field": "metadata.namespace"}}
			return nil, &apiError{code: 403, reason: "Forbidden", details: d,
				message: fmt.Sprintf("%s %q is forbidden: unable to create new content in namespace %s because it is being terminated", qualified(r.group, r.resource), name, ns)}
		}
	}
	if r.defaults != nil {
		r.defaults(o)
	}
	normalize(o)
	for _, k := range []string{"uid", "resourceVersion", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"} {
		delete(m, k)
	}
	m["uid"] = newUID()
	m["creationTimestamp"] = s.nowStr()
	if r.generation {
		m["generation"] = normalize(1)
	} else {
		delete(m, "generation")
	}
	if r.hasStatus {
		o["status"] = normalize(newStatus(r))
	}
	if e := sv.validate(r, o, nil); e != nil {
		return nil, e
	}
	key := objKey(ns, name)
	b := s.bucket(r)
	if b.objs[key] != nil {
		return nil, errAlreadyExists(r.group, r.resource, name)
	}
	b.recordUpdate(key, manager, Obj{}, r.external(o))
	return s.commit(r, "ADDED", key, o, nil), nil
}

type updateOpts struct {
	subresource string // "status" or ""
	manager     string
	apply       bool // an apply: ownership is recorded by the caller
}

// applyUpdate takes the live object and the proposed new one (both storage
// form), applies the update strategy and commits. s.mu must be held.
func (sv *Server) applyUpdate(r *resInfo, key string, cur, o Obj, opt updateOpts) (Obj, *apiError) {
	s := sv.store
	name := getStr(cur, "metadata", "name")
	if e := normalizeIn(r, o); e != nil {
		return nil, e
	}
	m := meta(o)
	cm := meta(cur)
	if rv, _ := m["resourceVersion"].(string); rv != "" && rv != cm["resourceVersion"] {
		return nil, errConflict(r.group, r.resource, name, optimisticLockMsg)
	}
	if uid, _ := m["uid"].(string); uid != "" && uid != cm["uid"] {
		return nil, errConflict(r.group, r.resource, name, fmt.Sprintf("StorageError: invalid object, Code: 4, Key: /registry/%s/%s, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: %v, UID in object meta: %v", storagePrefix(r), key, uid, cm["uid"]))
	}
	if opt.subresource == "status" {
		st := o["status"]
		o = copyObj(cur)
		m = meta(o)
		if st == nil {
			delete(o, "status")
		} else {
			o["status"] = st
		}
	}
	if r.defaults != nil {
		r.defaults(o)
	}
	normalize(o)
	for _, k := range []string{"uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace", "name"} {
		if v, ok := cm[k]; ok {
			m[k] = v
		} else {
			delete(m, k)
		}
	}
	delete(m, "selfLink")
	delete(m, "managedFields")
	if r.hasStatus && opt.subresource == "" {
		if st, ok := cur["status"]; ok {
			o["status"] = st
		} else {
			delete(o, "status")
		}
	}
	if r.generation {
		g, _ := getInt(cur, "metadata", "generation")
		if !jsonEqual(cur["spec"], o["spec"]) || (r.bumpOnAnnotations && !jsonEqual(cm["annotations"], m["annotations"])) {
			g++
		}
		m["generation"] = normalize(g)
	} else {
		delete(m, "generation")
	}
	if r.resource == "namespaces" && r.group == "" {
		ensureMap(m, "labels")["kubernetes.io/metadata.name"] = name
		if opt.subresource == "" {
			o["status"] = cur["status"]
			o["spec"] = cur["spec"] // spec.finalizers change only through /finalize
		}
	}
	if e := sv.validate(r, o, cur); e != nil {
		return nil, e
	}
	m["resourceVersion"] = cm["resourceVersion"]
	if jsonEqual(o, cur) {
		return cur, nil // no-op: no write, no new resourceVersion, no event
	}
	// removing the last finalizer of an object being deleted deletes it.
	if cm["deletionTimestamp"] != nil && len(strList(m["finalizers"])) == 0 {
		return s.commit(r, "DELETED", key, o, cur), nil
	}
	if !opt.apply {
		s.bucket(r).recordUpdate(key, opt.manager, r.external(cur), r.external(o))
	}
	return s.commit(r, "MODIFIED", key, o, cur), nil
}

// update is PUT.
func (sv *Server) update(r *resInfo, ns, name string, o Obj, opt updateOpts) (Obj, *apiError) {
	m := meta(o)
	if bn, _ := m["name"].(string); bn != name {
		if bn == "" {
			return nil, errBadRequest("name is required")
		}
		return nil, errBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", bn, name))
	}
	if r.namespaced {
		if bns, _ := m["namespace"].(string); bns != "" && bns != ns {
			return nil, errBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
	}
	s := sv.store
	s.mu.Lock()
	defer s.mu.Unlock()
	key := objKey(ns, name)
	cur := s.bucket(r).objs[key]
	if cur == nil {
		return nil, errNotFound(r.group, r.resource, name)
	}
	return sv.applyUpdate(r, key, cur, o, opt)
}

type deleteOpts struct {
	uid, rv string
}

// delete is DELETE on one object. It answers the object that remains (with
// finalizers) or nil when it is gone, plus the last state.
func (sv *Server) delete(r *resInfo, ns, name string, opt deleteOpts) (remaining Obj, last Obj, e *apiError) {
	s := sv.store
	s.mu.Lock()
	defer s.mu.Unlock()
	key := objKey(ns, name)
	cur := s.bucket(r).objs[key]
	if cur == nil {
		return nil, nil, errNotFound(r.group, r.resource, name)
	}
	cm := getMap(cur, "metadata")
	// the registry's delete preconditions name the kind, not the resource
	if opt.uid != "" && opt.uid != cm["uid"] {
		return nil, nil, errConflictKind(r, name, fmt.Sprintf("the UID in the precondition (%s) does not match the UID in record (%v). The object might have been deleted and then recreated", opt.uid, cm["uid"]))
	}
	if opt.rv != "" && opt.rv != cm["resourceVersion"] {
		return nil, nil, errConflictKind(r, name, fmt.Sprintf("the ResourceVersion in the precondition (%s) does not match the ResourceVersion in record (%v). The object might have been modified", opt.rv, cm["resourceVersion"]))
	}
	if r.resource == "namespaces" && r.group == "" {
		return sv.deleteNamespace(r, name, cur)
	}
	if len(strList(cm["finalizers"])) > 0 {
		if cm["deletionTimestamp"] != nil {
			return cur, cur, nil
		}
		o := copyObj(cur)
		meta(o)["deletionTimestamp"] = s.nowStr()
		meta(o)["deletionGracePeriodSeconds"] = normalize(0)
		o = s.commit(r, "MODIFIED", key, o, cur)
		return o, o, nil
	}
	s.commit(r, "DELETED", key, cur, cur)
	return nil, cur, nil
}

// deleteNamespace marks the namespace Terminating. Without a namespace
// controller (a bare kube-apiserver) it stays so, with its content, until
// its spec.finalizers are emptied through /finalize; with
// --finalize-namespaces the fake does that at once.
func (sv *Server) deleteNamespace(r *resInfo, name string, cur Obj) (Obj, Obj, *apiError) {
	s := sv.store
	o := cur
	if getPath(cur, "metadata", "deletionTimestamp") == nil {
		o = copyObj(cur)
		meta(o)["deletionTimestamp"] = s.nowStr()
		ensureMap(o, "status")["phase"] = "Terminating"
		o = s.commit(r, "MODIFIED", name, o, cur)
	}
	if sv.finalizeNS || len(strList(getPath(o, "spec", "finalizers"))) == 0 {
		sv.purgeNamespace(r, name, o)
	}
	return o, o, nil
}

// purgeNamespace removes a namespace's content and the namespace (what the
// namespace controller and the last finalize do).
func (sv *Server) purgeNamespace(r *resInfo, name string, o Obj) {
	s := sv.store
	seen := map[string]bool{}
	for _, ri := range sv.resList {
		if !ri.namespaced || seen[ri.storageKey()] {
			continue
		}
		seen[ri.storageKey()] = true
		b := s.bucket(ri)
		for _, k := range sortedKeys(b.objs) {
			if strings.HasPrefix(k, name+"/") {
				s.commit(ri, "DELETED", k, b.objs[k], b.objs[k])
			}
		}
	}
	s.commit(r, "DELETED", name, o, o)
}

// finalizeNamespace is PUT namespaces/NAME/finalize: it sets spec.finalizers;
// a Terminating namespace left without finalizers goes with its content.
func (sv *Server) finalizeNamespace(r *resInfo, name string, o Obj) (Obj, *apiError) {
	s := sv.store
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.bucket(r).objs[name]
	if cur == nil {
		return nil, errNotFound("", "namespaces", name)
	}
	if rv := getStr(o, "metadata", "resourceVersion"); rv != "" && rv != getStr(cur, "metadata", "resourceVersion") {
		return nil, errConflict("", "namespaces", name, optimisticLockMsg)
	}
	n := copyObj(cur)
	fin := getPath(o, "spec", "finalizers")
	if fin == nil {
		fin = []any{}
	}
	ensureMap(n, "spec")["finalizers"] = deepCopy(fin)
	if len(strList(fin)) == 0 {
		delete(getMap(n, "spec"), "finalizers")
	}
	if jsonEqual(n, cur) {
		return cur, nil
	}
	n = s.commit(r, "MODIFIED", name, n, cur)
	if getPath(n, "metadata", "deletionTimestamp") != nil && len(strList(getPath(n, "spec", "finalizers"))) == 0 {
		sv.purgeNamespace(r, name, n)
	}
	return n, nil
}

// foldStringData merges a Secret's stringData into data, as decoding does.
func foldStringData(o Obj) {
	if sd, ok := o["stringData"].(Obj); ok {
		data := ensureMap(o, "data")
		for k, v := range sd {
			s, _ := v.(string)
			data[k] = base64.StdEncoding.EncodeToString([]byte(s))
		}
	}
	delete(o, "stringData")
}

func storagePrefix(r *resInfo) string {
	if r.group == "" || r.group == "apps" || r.group == "coordination.k8s.io" {
		return r.resource
	}
	return r.storageKey()
}

// errConflictKind is NewConflict with the kind as the resource, as the
// registry's delete preconditions build it.
func errConflictKind(r *resInfo, name, why string) *apiError {
	qk := r.kind
	if r.group != "" {
		qk += "." + r.group
	}
	d := grDetails(r.group, r.kind, name)
	return &apiError{code: 409, reason: "Conflict", details: d,
		message: fmt.Sprintf("Operation cannot be fulfilled on %s %q: %s", qk, name, why)}
}

var knownKinds = map[string][]string{
	"v1":      {"Secret", "ConfigMap", "Namespace", "ServiceAccount", "Event", "Pod", "Service", "Node", "Endpoints", "PersistentVolumeClaim"},
	"apps/v1": {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"},
}

func knownKind(apiVersion, kind string) bool { return contains(knownKinds[apiVersion], kind) }

// internalPkg is the Go package of the internal type ("core" for the core group).
func internalPkg(group string) string {
	if group == "" {
		return "core"
	}
	return strings.Split(group, ".")[0]
}
