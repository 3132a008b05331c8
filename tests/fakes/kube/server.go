package kube

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is the fake API server.
type Server struct {
	mu         sync.Mutex
	store      *Store
	ctl        *control
	res        map[string]*resInfo // "group/resource"
	resList    []*resInfo
	tokens     map[string]tokenUser
	caPool     *x509.CertPool
	saKey      *rsa.PrivateKey
	issuer     string
	audiences  []string
	anonymous  bool
	lenientSA  bool
	finalizeNS bool
	minTimeout time.Duration
	shutdown   chan struct{}
	shutOnce   sync.Once
	addr       string
	version    string
}

func newServer(histCap int) *Server {
	sv := &Server{store: newStore(histCap), ctl: newControl(), res: map[string]*resInfo{},
		tokens: map[string]tokenUser{}, minTimeout: 1800 * time.Second, shutdown: make(chan struct{}),
		issuer: "https://kube.test", version: "v1.37.2"}
	for _, r := range builtinResources() {
		sv.res[r.group+"/"+r.resource] = r
		sv.resList = append(sv.resList, r)
	}
	// bootstrap like a fresh cluster: every watch cache is primed on the
	// empty store (so its history starts at revision 0, as on a fresh etcd),
	// then the system namespaces are made.
	sv.store.mu.Lock()
	for _, r := range sv.resList {
		sv.store.bucket(r)
	}
	sv.store.mu.Unlock()
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		sv.ensureNamespace(ns)
	}
	return sv
}

func (sv *Server) ensureNamespace(ns string) {
	r := sv.res["/namespaces"]
	if sv.store.get(r, "", ns) != nil {
		return
	}
	sv.create(r, "", Obj{"metadata": Obj{"name": ns}}, "")
}

func (sv *Server) currentRV() uint64 {
	sv.store.mu.Lock()
	defer sv.store.mu.Unlock()
	return sv.store.rv
}

func (sv *Server) stop() {
	sv.shutOnce.Do(func() { close(sv.shutdown) })
}

// reqInfo is what k8s.io/apiserver's RequestInfoFactory derives from a request.
type reqInfo struct {
	path        string
	isResource  bool
	verb        string
	group       string
	version     string
	resource    string
	subresource string
	namespace   string
	name        string
	info        *resInfo
	watch       bool
	dropCont    bool // a drop_continue fault fired: the list page goes without its continue token
}

func isTrue(s string) bool { return s == "true" || s == "1" }

func (sv *Server) parseReqInfo(r *http.Request) *reqInfo {
	ri := &reqInfo{path: r.URL.Path, verb: strings.ToLower(r.Method)}
	p := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(p, "/")
	var rest []string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		ri.version = parts[1]
		rest = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		ri.group, ri.version = parts[1], parts[2]
		rest = parts[3:]
	default:
		return ri
	}
	if len(rest) == 0 {
		return ri
	}
	ri.isResource = true
	if rest[0] == "watch" {
		ri.watch = true
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] == "namespaces" && len(rest) > 1 {
		ri.namespace = rest[1]
		if len(rest) > 2 && rest[2] != "status" && rest[2] != "finalize" {
			rest = rest[2:]
		}
	}
	if len(rest) > 0 {
		ri.resource = rest[0]
	}
	if len(rest) > 1 {
		ri.name = rest[1]
	}
	if len(rest) > 2 {
		ri.subresource = rest[2]
	}
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case ri.watch || isTrue(q.Get("watch")):
			ri.verb = "watch"
		case ri.name == "":
			ri.verb = "list"
		default:
			ri.verb = "get"
		}
	case http.MethodPost:
		ri.verb = "create"
	case http.MethodPut:
		ri.verb = "update"
	case http.MethodPatch:
		ri.verb = "patch"
	case http.MethodDelete:
		if ri.name == "" {
			ri.verb = "deletecollection"
		} else {
			ri.verb = "delete"
		}
	}
	if ri.version == "v1" {
		ri.info = sv.res[ri.group+"/"+ri.resource]
	}
	return ri
}

// statusWriter remembers the response code for the request log.
type statusWriter struct {
	http.ResponseWriter
	onCode func(int)
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.onCode(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(200)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

const maxBody = 3 * 1024 * 1024

func (sv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fake/") {
		sv.serveControl(w, r)
		return
	}
	w.Header().Set("Audit-Id", newUID())
	ri := sv.parseReqInfo(r)
	var body []byte
	if r.Body != nil && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch || r.Method == http.MethodDelete) {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			writeError(w, r, errBadRequest(err.Error()))
			return
		}
	}
	var pbErr *apiError
	if strings.HasPrefix(r.Header.Get("Content-Type"), ctProtobuf) && len(body) > 0 {
		if jb, e := jsonBody(r.Header.Get("Content-Type"), body); e != nil {
			pbErr = e
		} else {
			body = jb
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("X-Fake-Original-Content-Type", ctProtobuf)
		}
	}
	u := sv.authenticate(r)
	rec := &recorded{Time: time.Now().UTC().Format(time.RFC3339Nano), Verb: ri.verb, Method: r.Method,
		Path: r.URL.Path, Query: r.URL.RawQuery, ContentType: firstNonEmpty(r.Header.Get("X-Fake-Original-Content-Type"), r.Header.Get("Content-Type")),
		Accept: r.Header.Get("Accept"), UserAgent: r.Header.Get("User-Agent"),
		Resource: ri.resource, Subresource: ri.subresource, Namespace: ri.namespace, Name: ri.name}
	if u != nil {
		rec.User = u.Name
	}
	if len(body) > 0 {
		if ri.resource == "secrets" && ri.group == "" {
			rec.Body = redactSecretBody(body)
		} else if v, err := decodeJSON(body); err == nil {
			rec.Body = v
		} else {
			rec.Body = string(body)
		}
	}
	sv.ctl.record(rec)
	defer sv.ctl.finish(rec)
	w = &statusWriter{ResponseWriter: w, onCode: func(c int) { sv.ctl.setCode(rec, c) }}
	if u == nil && sv.anonymous && r.Header.Get("Authorization") == "" {
		u = &userInfo{Name: "system:anonymous", Groups: []string{"system:unauthenticated"}, Via: "anonymous"}
		rec.User = u.Name
		if !anonymousAllowed(r.URL.Path) {
			writeError(w, r, errForbidden(ri, u.Name))
			return
		}
	}
	if u == nil {
		writeError(w, r, errUnauthorized())
		return
	}
	if pbErr != nil {
		writeError(w, r, pbErr)
		return
	}
	if len(body) > maxBody {
		writeError(w, r, &apiError{code: 413, reason: "RequestEntityTooLarge", message: fmt.Sprintf("Request entity too large: limit is %d", maxBody)})
		return
	}
	if f := sv.ctl.pick(ri, u.Name); f != nil {
		rec.Fault = f.ID
		if f.DelayMs > 0 {
			select {
			case <-time.After(time.Duration(f.DelayMs) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		if f.Hang {
			// hold the request until this fault is cleared
			for sv.ctl.active(f.ID) {
				select {
				case <-r.Context().Done():
					return
				case <-sv.ctl.clearedCh():
				case <-sv.shutdown:
					return
				}
			}
		}
		if f.raw() {
			writeRaw(w, f)
			return
		}
		if f.Status != 0 {
			writeError(w, r, faultError(f, ri, u.Name))
			return
		}
		ri.dropCont = f.DropContinue
	}
	sv.dispatch(w, r, ri, u, body)
}

func (sv *Server) dispatch(w http.ResponseWriter, r *http.Request, ri *reqInfo, u *userInfo, body []byte) {
	p := r.URL.Path
	switch {
	case p == "/version" || p == "/version/":
		minor := strings.Split(sv.version, ".")[1]
		mc, _ := strconv.Atoi(minor)
		writeRawJSON(w, 200, []kv{{"major", "1"}, {"minor", minor},
			{"emulationMajor", "1"}, {"emulationMinor", minor}, {"minCompatibilityMajor", "1"}, {"minCompatibilityMinor", strconv.Itoa(mc - 1)},
			{"gitVersion", sv.version}, {"gitCommit", "0000000000000000000000000000000000000000"},
			{"gitTreeState", "clean"}, {"buildDate", "2025-01-01T00:00:00Z"}, {"goVersion", runtime.Version()},
			{"compiler", "gc"}, {"platform", runtime.GOOS + "/" + runtime.GOARCH}})
		return
	case p == "/healthz" || p == "/livez" || p == "/readyz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		io.WriteString(w, "ok")
		return
	case p == "/api" || p == "/api/" || p == "/apis" || p == "/apis/" ||
		strings.HasPrefix(p, "/api/") && !ri.isResource || strings.HasPrefix(p, "/apis/") && !ri.isResource:
		sv.serveDiscovery(w, r)
		return
	}
	if sv.serveOIDC(w, r) {
		return
	}
	if strings.HasPrefix(p, "/openapi/") && sv.serveOpenAPI(w, r) {
		return
	}
	if !ri.isResource {
		http.NotFound(w, r)
		return
	}
	if ri.info == nil {
		if ri.version == "v1" && (ri.group == "" || contains(sv.groups(), ri.group)) {
			writeError(w, r, errNotFoundGeneric())
			return
		}
		http.NotFound(w, r)
		return
	}
	info := ri.info
	if !info.namespaced && ri.namespace != "" && info.resource != "namespaces" {
		http.NotFound(w, r)
		return
	}
	if info.resource == "namespaces" && info.group == "" {
		// /api/v1/namespaces/NAME[/status]: the namespace is the object.
		ri.namespace = ""
	}
	if ri.subresource != "" && !contains(info.subresources, ri.subresource) {
		writeError(w, r, errNotFoundGeneric())
		return
	}
	q := r.URL.Query()
	if q.Get("dryRun") != "" {
		writeError(w, r, errBadRequest("dryRun is not supported by this fake API server"))
		return
	}
	switch ri.verb {
	case "get":
		if ri.subresource == "token" {
			writeError(w, r, errMethodNotAllowed())
			return
		}
		sv.serveGet(w, r, ri)
	case "list":
		sv.serveList(w, r, ri)
	case "watch":
		sv.serveWatch(w, r, ri)
	case "create":
		if ri.subresource == "token" {
			out, e := sv.tokenRequest(ri.namespace, ri.name, body)
			if e != nil {
				writeError(w, r, e)
				return
			}
			writeJSON(w, r, 201, out)
			return
		}
		if ri.name != "" {
			writeError(w, r, errMethodNotAllowed())
			return
		}
		if e := checkBodyType(r); e != nil {
			writeError(w, r, e)
			return
		}
		o, e := decodeIncoming(info, body)
		if e != nil {
			writeError(w, r, e)
			return
		}
		out, e := sv.create(info, ri.namespace, o, managerOf(r))
		if e != nil {
			writeError(w, r, e)
			return
		}
		sv.writeObject(w, r, 201, info, out)
	case "update":
		if ri.name == "" || ri.subresource == "token" {
			writeError(w, r, errMethodNotAllowed())
			return
		}
		if e := checkBodyType(r); e != nil {
			writeError(w, r, e)
			return
		}
		o, e := decodeIncoming(info, body)
		if e != nil {
			writeError(w, r, e)
			return
		}
		var out Obj
		if ri.subresource == "finalize" {
			out, e = sv.finalizeNamespace(info, ri.name, o)
		} else {
			out, e = sv.update(info, ri.namespace, ri.name, o, updateOpts{subresource: ri.subresource, manager: managerOf(r)})
		}
		if e != nil {
			writeError(w, r, e)
			return
		}
		sv.writeObject(w, r, 200, info, out)
	case "patch":
		if ri.subresource == "token" || ri.subresource == "finalize" || ri.name == "" {
			writeError(w, r, errMethodNotAllowed())
			return
		}
		sv.servePatch(w, r, ri, body)
	case "delete":
		sv.serveDelete(w, r, ri, body)
	case "deletecollection":
		sv.serveDeleteCollection(w, r, ri)
	default:
		writeError(w, r, errMethodNotAllowed())
	}
}

func managerOf(r *http.Request) string {
	if m := r.URL.Query().Get("fieldManager"); m != "" {
		return m
	}
	ua := r.Header.Get("User-Agent")
	if i := strings.IndexByte(ua, '/'); i >= 0 {
		ua = ua[:i]
	}
	if ua == "" {
		return "unknown"
	}
	if len(ua) > 128 {
		ua = ua[:128]
	}
	return ua
}

func checkBodyType(r *http.Request) *apiError {
	ct := r.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	switch ct {
	case "", "application/json", "application/yaml", "*/*":
		return nil
	}
	return &apiError{code: 415, reason: "UnsupportedMediaType",
		message: "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"}
}

// ---- output negotiation

type outMode struct {
	kind   string // "json", "table", "pom" (PartialObjectMetadata)
	gv     string // meta.k8s.io/v1 or /v1beta1
	ctype  string
	stream bool
}

func negotiate(r *http.Request) (outMode, *apiError) {
	acc := r.Header.Get("Accept")
	if strings.TrimSpace(acc) == "" {
		return outMode{kind: "json", ctype: "application/json"}, nil
	}
	for _, clause := range strings.Split(acc, ",") {
		fields := strings.Split(clause, ";")
		mt := strings.TrimSpace(fields[0])
		params := map[string]string{}
		for _, f := range fields[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
			params[k] = v
		}
		if mt != "application/json" && mt != "*/*" && mt != "application/*" {
			continue
		}
		switch params["as"] {
		case "":
			return outMode{kind: "json", ctype: "application/json"}, nil
		case "Table":
			if params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1") {
				return outMode{kind: "table", gv: "meta.k8s.io/" + params["v"],
					ctype: "application/json"}, nil
			}
		case "PartialObjectMetadata", "PartialObjectMetadataList":
			if params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1") {
				return outMode{kind: "pom", gv: "meta.k8s.io/" + params["v"],
					ctype: "application/json;as=" + params["as"] + ";v=" + params["v"] + ";g=meta.k8s.io"}, nil
			}
		}
	}
	return outMode{}, &apiError{code: 406, reason: "NotAcceptable", details: Obj{}, pretty: true,
		message: "406: Not Acceptable\n\nAvailable representations: application/json, application/yaml, application/vnd.kubernetes.protobuf"}
}

func (sv *Server) writeObject(w http.ResponseWriter, r *http.Request, code int, info *resInfo, o Obj) {
	writeJSON(w, r, code, info.external(o))
}

func pomOf(o Obj, gv string) Obj {
	return Obj{"kind": "PartialObjectMetadata", "apiVersion": gv, "metadata": copyObj(getMap(o, "metadata"))}
}

// table renders objects as the real server's Table (server-side printing).
func (sv *Server) table(info *resInfo, objs []Obj, listMeta Obj, gv, include string, noHeaders bool) (Obj, *apiError) {
	now := time.Now()
	var cols any
	if !noHeaders {
		cl := []any{}
		for _, c := range info.columns {
			cl = append(cl, Obj{"name": c.name, "type": c.typ, "format": c.format, "description": c.desc, "priority": c.priority})
		}
		cols = cl
	}
	rows := []any{}
	for _, o := range objs {
		ext := info.external(o)
		cells := []any{}
		for _, c := range info.columns {
			cells = append(cells, c.cell(o, now))
		}
		row := Obj{"cells": cells}
		switch include {
		case "", "Metadata":
			row["object"] = pomOf(ext, gv)
		case "Object":
			row["object"] = ext
		case "None":
			row["object"] = nil
		default:
			return nil, errBadRequest(fmt.Sprintf("unrecognized includeObject value: %q", include))
		}
		rows = append(rows, row)
	}
	if listMeta == nil {
		listMeta = Obj{}
	}
	return normalize(Obj{"kind": "Table", "apiVersion": gv, "metadata": listMeta, "columnDefinitions": cols, "rows": rows}).(Obj), nil
}

func (sv *Server) tooLarge() time.Duration {
	sv.ctl.mu.Lock()
	defer sv.ctl.mu.Unlock()
	return sv.ctl.tooLarge
}

func (sv *Server) serveGet(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	mode, e := negotiate(r)
	if e != nil {
		writeError(w, r, e)
		return
	}
	info := ri.info
	if rv := r.URL.Query().Get("resourceVersion"); rv != "" && rv != "0" {
		n, err := strconv.ParseUint(rv, 10, 64)
		if err != nil {
			writeError(w, r, errBadRequest(fmt.Sprintf("invalid resource version: resourceVersion: Invalid value: %q: strconv.ParseUint: parsing %q: invalid syntax", rv, rv)))
			return
		}
		sv.store.mu.Lock()
		ok := sv.store.waitFor(n, sv.tooLarge())
		cur := sv.store.rv
		sv.store.mu.Unlock()
		if !ok {
			writeError(w, r, errTooLargeRV(n, cur))
			return
		}
	}
	o := sv.store.get(info, ri.namespace, ri.name)
	if o == nil {
		writeError(w, r, errNotFound(info.group, info.resource, ri.name))
		return
	}
	switch mode.kind {
	case "table":
		t, e := sv.table(info, []Obj{o}, Obj{"resourceVersion": getStr(o, "metadata", "resourceVersion")}, mode.gv, r.URL.Query().Get("includeObject"), false)
		if e != nil {
			writeError(w, r, e)
			return
		}
		writeJSONType(w, r, 200, t, mode.ctype)
	case "pom":
		writeJSONType(w, r, 200, pomOf(info.external(o), mode.gv), mode.ctype)
	default:
		sv.writeObject(w, r, 200, info, o)
	}
}

// parseSelectors reads labelSelector and fieldSelector the way the real
// handlers do (400 on syntax errors and unsupported field labels).
func parseSelectors(info *resInfo, q url.Values) (*selector, *apiError) {
	sel := &selector{info: info}
	var err error
	if sel.labels, err = parseLabelSelector(q.Get("labelSelector")); err != nil {
		return nil, errBadRequest("unable to parse requirement: " + err.Error())
	}
	if sel.fields, err = parseFieldSelector(q.Get("fieldSelector")); err != nil {
		return nil, errBadRequest(err.Error())
	}
	for _, f := range sel.fields {
		if !info.supportsField(f.key) {
			return nil, errBadRequest("field label not supported: " + f.key)
		}
	}
	return sel, nil
}

func listOptionsInvalid(errs []fieldErr) *apiError {
	return errInvalid("meta.k8s.io", "ListOptions", "", errs)
}

func validateListQuery(q url.Values, watch bool) *apiError {
	rv, match, cont := q.Get("resourceVersion"), q.Get("resourceVersionMatch"), q.Get("continue")
	var errs []fieldErr
	_, hasSIE := q["sendInitialEvents"]
	if watch {
		if hasSIE && match != "NotOlderThan" {
			errs = append(errs, fieldForbidden("resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
		}
		if match != "" {
			if !hasSIE {
				errs = append(errs, fieldForbidden("resourceVersionMatch", "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"))
			}
			if match != "NotOlderThan" {
				errs = append(errs, fieldNotSupported("resourceVersionMatch", match, []string{"NotOlderThan"}))
			}
			if cont != "" {
				errs = append(errs, fieldForbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"))
			}
		}
	} else {
		if match != "" {
			if rv == "" {
				errs = append(errs, fieldForbidden("resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided"))
			}
			if cont != "" {
				errs = append(errs, fieldForbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"))
			}
			if match != "Exact" && match != "NotOlderThan" {
				errs = append(errs, fieldNotSupported("resourceVersionMatch", match, []string{"Exact", "NotOlderThan", ""}))
			}
			if match == "Exact" && rv == "0" {
				errs = append(errs, fieldForbidden("resourceVersionMatch", "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""))
			}
		}
		if hasSIE {
			errs = append(errs, fieldForbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"))
		}
	}
	if len(errs) > 0 {
		return listOptionsInvalid(errs)
	}
	return nil
}

func (sv *Server) serveList(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	mode, e := negotiate(r)
	if e != nil {
		writeError(w, r, e)
		return
	}
	info := ri.info
	q := r.URL.Query()
	if e := validateListQuery(q, false); e != nil {
		writeError(w, r, e)
		return
	}
	sel, e := parseSelectors(info, q)
	if e != nil {
		writeError(w, r, e)
		return
	}
	var limit int64
	if l := q.Get("limit"); l != "" {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			writeError(w, r, errBadRequest(fmt.Sprintf("strconv.ParseInt: parsing %q: invalid syntax", l)))
			return
		}
		if n > 0 {
			limit = n
		}
	}
	res, e := sv.store.list(info, listOpts{ns: ri.namespace, sel: sel, rv: q.Get("resourceVersion"),
		rvMatch: q.Get("resourceVersionMatch"), limit: limit, cont: q.Get("continue"), tooLarge: sv.tooLarge()})
	if e != nil {
		writeError(w, r, e)
		return
	}
	lm := Obj{"resourceVersion": strconv.FormatUint(res.rv, 10)}
	if res.cont != "" && !ri.dropCont {
		lm["continue"] = res.cont
	}
	if res.remaining != nil {
		lm["remainingItemCount"] = *res.remaining
	}
	switch mode.kind {
	case "table":
		t, e := sv.table(info, res.items, lm, mode.gv, q.Get("includeObject"), false)
		if e != nil {
			writeError(w, r, e)
			return
		}
		writeJSONType(w, r, 200, t, mode.ctype)
		return
	case "pom":
		items := []any{}
		for _, o := range res.items {
			items = append(items, pomOf(info.external(o), mode.gv))
		}
		writeJSONType(w, r, 200, normalize(Obj{"kind": "PartialObjectMetadataList", "apiVersion": mode.gv, "metadata": lm, "items": items}), mode.ctype)
		return
	}
	items := []any{}
	for _, o := range res.items {
		ext := info.external(o)
		delete(ext, "kind")
		delete(ext, "apiVersion")
		items = append(items, ext)
	}
	writeJSON(w, r, 200, normalize(Obj{"kind": info.kind + "List", "apiVersion": info.apiVersion(), "metadata": lm, "items": items}))
}

func (sv *Server) serveWatch(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	mode, e := negotiate(r)
	if e != nil {
		writeError(w, r, e)
		return
	}
	info := ri.info
	q := r.URL.Query()
	if e := validateListQuery(q, true); e != nil {
		writeError(w, r, e)
		return
	}
	if ri.name != "" {
		fs := q.Get("fieldSelector")
		if fs != "" {
			fs += ","
		}
		q.Set("fieldSelector", fs+"metadata.name="+ri.name)
	}
	sel, e := parseSelectors(info, q)
	if e != nil {
		writeError(w, r, e)
		return
	}
	var sie *bool
	if v, ok := q["sendInitialEvents"]; ok {
		b := isTrue(v[0])
		sie = &b
	}
	allowBM := isTrue(q.Get("allowWatchBookmarks"))
	timeout := sv.minTimeout + time.Duration(rand.Int63n(int64(sv.minTimeout)+1))
	if ts := q.Get("timeoutSeconds"); ts != "" {
		n, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			writeError(w, r, errBadRequest(fmt.Sprintf("strconv.ParseInt: parsing %q: invalid syntax", ts)))
			return
		}
		if n > 0 {
			timeout = time.Duration(n) * time.Second
		}
	}
	wa, errEv, e := sv.store.watch(info, watchOpts{ns: ri.namespace, sel: sel, rv: q.Get("resourceVersion"),
		sendInitial: sie, allowBookmarks: allowBM, tooLarge: sv.tooLarge()})
	if e != nil {
		writeError(w, r, e)
		return
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(200)
	if flusher != nil {
		flusher.Flush()
	}
	if errEv != nil {
		w.Write(encodeJSON(Obj{"type": "ERROR", "object": statusObj(errEv)}))
		return
	}
	defer sv.store.unwatch(wa)
	deadline := time.Now().Add(timeout)
	endT := time.NewTimer(timeout)
	defer endT.Stop()
	var bmTick <-chan time.Time
	var preT <-chan time.Time
	if allowBM {
		sv.ctl.mu.Lock()
		iv := sv.ctl.bookmark
		sv.ctl.mu.Unlock()
		t := time.NewTicker(iv)
		defer t.Stop()
		bmTick = t.C
		d := time.Until(deadline.Add(-2 * time.Second))
		if d <= 0 {
			d = timeout / 2
		}
		if d < 100*365*24*time.Hour {
			pt := time.NewTimer(d)
			defer pt.Stop()
			preT = pt.C
		}
	}
	headers := true
	write := func(evs []wevent) bool {
		var buf bytes.Buffer
		for _, ev := range evs {
			var obj Obj
			if ev.typ == "BOOKMARK" {
				obj = Obj{"kind": info.kind, "apiVersion": info.apiVersion(), "metadata": ev.obj["metadata"]}
			} else {
				obj = info.external(ev.obj)
				switch mode.kind {
				case "table":
					t, _ := sv.table(info, []Obj{ev.obj}, Obj{"resourceVersion": getStr(ev.obj, "metadata", "resourceVersion")}, mode.gv, q.Get("includeObject"), !headers)
					headers = false
					obj = t
				case "pom":
					obj = pomOf(obj, mode.gv)
				}
			}
			buf.Write(encodeJSON(Obj{"type": ev.typ, "object": obj}))
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	for {
		select {
		case <-wa.signal:
			if evs := wa.take(); len(evs) > 0 && !write(evs) {
				return
			}
		case <-bmTick:
			sv.store.bookmark(wa)
		case <-preT:
			sv.store.bookmark(wa)
		case <-endT.C:
			if evs := wa.take(); len(evs) > 0 {
				write(evs)
			}
			return
		case <-wa.stop:
			if wa.abort {
				panic(http.ErrAbortHandler)
			}
			if evs := wa.take(); len(evs) > 0 {
				write(evs)
			}
			return
		case <-r.Context().Done():
			return
		case <-sv.shutdown:
			return
		}
	}
}

func (sv *Server) servePatch(w http.ResponseWriter, r *http.Request, ri *reqInfo, body []byte) {
	info := ri.info
	ct := r.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i > 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if !contains(patchTypes, ct) {
		// go-restful's answer: the PATCH route consumes only the patch types
		writeError(w, r, &apiError{code: 415, reason: "UnsupportedMediaType", details: Obj{}, message: "415: Unsupported Media Type"})
		return
	}
	q := r.URL.Query()
	manager := q.Get("fieldManager")
	_, hasForce := q["force"]
	var errs []fieldErr
	if ct == ctApply && manager == "" {
		errs = append(errs, fieldRequired("fieldManager", "is required for apply patch"))
	}
	if ct != ctApply && hasForce {
		errs = append(errs, fieldForbidden("force", "may not be specified for non-apply patch"))
	}
	if len(errs) > 0 {
		writeError(w, r, errInvalid("meta.k8s.io", "PatchOptions", "", errs))
		return
	}
	force := isTrue(q.Get("force"))
	if manager == "" {
		manager = managerOf(r)
	}
	s := sv.store
	s.mu.Lock()
	defer s.mu.Unlock()
	key := objKey(ri.namespace, ri.name)
	b := s.bucket(info)
	cur := b.objs[key]
	var patched Obj
	var e *apiError
	applied := false
	switch ct {
	case ctApply:
		cfg, err := decodeObj(body)
		if err != nil {
			writeError(w, r, errBadRequest("error decoding YAML: "+err.Error()+" (only the JSON form of YAML is accepted by this fake)"))
			return
		}
		if av, k := getStr(cfg, "apiVersion"), getStr(cfg, "kind"); av != info.apiVersion() || k != info.kind {
			g, v := "", av
			if i := strings.LastIndex(av, "/"); i >= 0 {
				g, v = av[:i], av[i+1:]
			}
			writeError(w, r, errBadRequest(fmt.Sprintf("invalid object type: %s/%s, Kind=%s", g, v, k)))
			return
		}
		if n := getStr(cfg, "metadata", "name"); n != "" && n != ri.name {
			writeError(w, r, errBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", n, ri.name)))
			return
		}
		meta(cfg)["name"] = ri.name
		// ownership follows the configuration as sent; the merge uses it decoded
		merged := copyObj(cfg)
		if info.resource == "secrets" && info.group == "" {
			foldStringData(merged)
		}
		if cur == nil {
			o := merged
			if info.toStorage != nil {
				o = info.toStorage(o)
			}
			if e := normalizeIn(info, o); e != nil {
				writeError(w, r, e)
				return
			}
			if info.namespaced {
				meta(o)["namespace"] = ri.namespace
			}
			out, e := sv.createLocked(info, ri.namespace, o, "")
			if e != nil {
				writeError(w, r, e)
				return
			}
			b.recordApply(key, manager, cfg, nil)
			sv.writeObject(w, r, 201, info, out)
			return
		}
		ext := info.external(cur)
		conflicts := b.applyConflicts(key, manager, ext, cfg)
		if len(conflicts) > 0 && !force {
			writeError(w, r, errApplyConflict(conflicts, info.apiVersion()))
			return
		}
		patched = applyMerge(ext, merged).(Obj)
		for _, p := range b.droppedByApply(key, manager, cfg) {
			pathDelete(patched, p)
		}
		applied = true
		defer func() {
			if e == nil && b.objs[key] != nil {
				b.recordApply(key, manager, cfg, conflicts)
			}
		}()
	default:
		if cur == nil {
			writeError(w, r, errNotFound(info.group, info.resource, ri.name))
			return
		}
		ext := info.external(cur)
		switch ct {
		case ctJSONPatch:
			patched, e = jsonPatch(ext, body)
		case ctMergePatch, ctSMP:
			pv, err := decodeJSON(body)
			if err != nil {
				e = errBadRequest("invalid JSON patch")
				break
			}
			if _, ok := pv.(Obj); !ok {
				msg := fmt.Sprintf("json: cannot unmarshal %s into Go value of type map[string]interface {}", jsonKind(pv))
				if ct == ctMergePatch {
					msg = "error decoding patch: " + msg
				}
				e = errBadRequest(msg)
				break
			}
			if ct == ctMergePatch {
				patched, _ = mergePatch(ext, pv).(Obj)
			} else {
				pm, err := strategicMerge(ext, pv)
				if err != nil {
					e = errBadRequest(err.Error())
					break
				}
				patched, _ = pm.(Obj)
			}
			if patched == nil {
				e = errBadRequest("Invalid JSON Patch")
			}
		}
		if e != nil {
			writeError(w, r, e)
			return
		}
	}
	if n := getStr(patched, "metadata", "name"); n != ri.name {
		e = errBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", n, ri.name))
		writeError(w, r, e)
		return
	}
	if info.toStorage != nil {
		patched = info.toStorage(patched)
	}
	var out Obj
	out, e = sv.applyUpdate(info, key, cur, patched, updateOpts{subresource: ri.subresource, manager: manager, apply: applied})
	if e != nil {
		writeError(w, r, e)
		return
	}
	sv.writeObject(w, r, 200, info, out)
}

type deleteOptions struct {
	Preconditions *struct {
		UID             *string `json:"uid"`
		ResourceVersion *string `json:"resourceVersion"`
	} `json:"preconditions"`
	DryRun []string `json:"dryRun"`
}

func (sv *Server) serveDelete(w http.ResponseWriter, r *http.Request, ri *reqInfo, body []byte) {
	info := ri.info
	var opts deleteOptions
	if len(bytes.TrimSpace(body)) > 0 {
		v, err := decodeObj(body)
		if err != nil {
			writeError(w, r, errBadRequest(err.Error()))
			return
		}
		if pc := getMap(v, "preconditions"); pc != nil {
			opts.Preconditions = &struct {
				UID             *string `json:"uid"`
				ResourceVersion *string `json:"resourceVersion"`
			}{}
			if s, ok := pc["uid"].(string); ok {
				opts.Preconditions.UID = &s
			}
			if s, ok := pc["resourceVersion"].(string); ok {
				opts.Preconditions.ResourceVersion = &s
			}
		}
		if len(strList(v["dryRun"])) > 0 {
			writeError(w, r, errBadRequest("dryRun is not supported by this fake API server"))
			return
		}
	}
	var do deleteOpts
	if opts.Preconditions != nil {
		if opts.Preconditions.UID != nil {
			do.uid = *opts.Preconditions.UID
		}
		if opts.Preconditions.ResourceVersion != nil {
			do.rv = *opts.Preconditions.ResourceVersion
		}
	}
	remaining, last, e := sv.delete(info, ri.namespace, ri.name, do)
	if e != nil {
		writeError(w, r, e)
		return
	}
	if remaining != nil {
		sv.writeObject(w, r, 200, info, remaining)
		return
	}
	if info.returnDeleted {
		sv.writeObject(w, r, 200, info, last)
		return
	}
	d := Obj{"name": ri.name, "kind": info.resource, "uid": getStr(last, "metadata", "uid")}
	if info.group != "" {
		d["group"] = info.group
	}
	writeJSON(w, r, 200, Obj{"kind": "Status", "apiVersion": "v1", "metadata": Obj{}, "status": "Success", "details": d})
}

func (sv *Server) serveDeleteCollection(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	info := ri.info
	if info.resource == "namespaces" && info.group == "" {
		writeError(w, r, errMethodNotAllowed())
		return
	}
	q := r.URL.Query()
	sel, e := parseSelectors(info, q)
	if e != nil {
		writeError(w, r, e)
		return
	}
	res, e := sv.store.list(info, listOpts{ns: ri.namespace, sel: sel})
	if e != nil {
		writeError(w, r, e)
		return
	}
	items := []any{}
	for _, o := range res.items {
		rem, last, e := sv.delete(info, getStr(o, "metadata", "namespace"), getStr(o, "metadata", "name"), deleteOpts{})
		if e != nil {
			continue
		}
		if rem != nil {
			last = rem
		}
		ext := info.external(last)
		delete(ext, "kind")
		delete(ext, "apiVersion")
		items = append(items, ext)
	}
	writeJSON(w, r, 200, Obj{"kind": info.kind + "List", "apiVersion": info.apiVersion(),
		"metadata": Obj{"resourceVersion": strconv.FormatUint(sv.currentRV(), 10)}, "items": items})
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
