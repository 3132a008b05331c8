package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// apiError is a failure the fake answers with a metav1.Status, worded as
// k8s.io/apimachinery/pkg/api/errors words it.
type apiError struct {
	code       int
	reason     string
	message    string
	details    Obj // nil: no "details" key
	retryAfter int
	// plain: answer with text/plain instead of a Status (the real server's
	// priority-and-fairness 429 is plain text).
	plain bool
	// cont: a continue token to put in the Status' metadata (inconsistent
	// continue after compaction).
	cont string
	// pretty: indented JSON (go-restful's own 406 answer is indented)
	pretty bool
}

// errNotFoundGeneric is the real answer for an unknown resource in a served
// group version.
func errNotFoundGeneric() *apiError {
	return &apiError{code: 404, reason: "NotFound", details: Obj{}, message: "the server could not find the requested resource"}
}

// errMethodNotAllowed is go-restful's answer for a method a route lacks.
func errMethodNotAllowed() *apiError {
	return &apiError{code: 405, reason: "MethodNotAllowed", details: Obj{}, message: "the server does not allow this method on the requested resource"}
}

func (e *apiError) Error() string { return e.message }

// qualified is schema.GroupResource.String(): "secrets", "leases.coordination.k8s.io".
func qualified(group, resource string) string {
	if group == "" {
		return resource
	}
	return resource + "." + group
}

func grDetails(group, resource, name string) Obj {
	d := Obj{}
	if name != "" {
		d["name"] = name
	}
	if group != "" {
		d["group"] = group
	}
	if resource != "" {
		d["kind"] = resource
	}
	return d
}

func errNotFound(group, resource, name string) *apiError {
	return &apiError{code: 404, reason: "NotFound", details: grDetails(group, resource, name),
		message: fmt.Sprintf("%s %q not found", qualified(group, resource), name)}
}

func errAlreadyExists(group, resource, name string) *apiError {
	return &apiError{code: 409, reason: "AlreadyExists", details: grDetails(group, resource, name),
		message: fmt.Sprintf("%s %q already exists", qualified(group, resource), name)}
}

const optimisticLockMsg = "the object has been modified; please apply your changes to the latest version and try again"

func errConflict(group, resource, name, why string) *apiError {
	return &apiError{code: 409, reason: "Conflict", details: grDetails(group, resource, name),
		message: fmt.Sprintf("Operation cannot be fulfilled on %s %q: %s", qualified(group, resource), name, why)}
}

func errBadRequest(msg string) *apiError {
	return &apiError{code: 400, reason: "BadRequest", message: msg}
}

func errExpired(msg string) *apiError {
	return &apiError{code: 410, reason: "Expired", message: msg}
}

func errUnauthorized() *apiError {
	return &apiError{code: 401, reason: "Unauthorized", message: "Unauthorized"}
}

func errMethodNotSupported(group, resource, action string) *apiError {
	return &apiError{code: 405, reason: "MethodNotAllowed", details: grDetails(group, resource, ""),
		message: fmt.Sprintf("%s is not supported on resources of kind %q", action, qualified(group, resource))}
}

func errTooLargeRV(want, have uint64) *apiError {
	return &apiError{code: 504, reason: "Timeout", retryAfter: 1,
		message: fmt.Sprintf("Timeout: Too large resource version: %d, current: %d", want, have),
		details: Obj{"causes": []any{Obj{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}},
			"retryAfterSeconds": 1}}
}

func errInternal(msg string) *apiError {
	return &apiError{code: 500, reason: "InternalError", message: "Internal error occurred: " + msg,
		details: Obj{"causes": []any{Obj{"message": msg}}}}
}

// errForbidden is the RBAC authorizer's denial as
// responsewriters.ForbiddenStatusError words it.
func errForbidden(ri *reqInfo, user string) *apiError {
	res := ri.resource
	if ri.subresource != "" {
		res += "/" + ri.subresource
	}
	var why string
	switch {
	case !ri.isResource:
		why = fmt.Sprintf("User %q cannot %s path %q", user, strings.ToLower(ri.verb), ri.path)
		return &apiError{code: 403, reason: "Forbidden", details: Obj{}, message: "forbidden: " + why}
	case ri.namespace != "":
		why = fmt.Sprintf("User %q cannot %s resource %q in API group %q in the namespace %q", user, ri.verb, res, ri.group, ri.namespace)
	default:
		why = fmt.Sprintf("User %q cannot %s resource %q in API group %q at the cluster scope", user, ri.verb, res, ri.group)
	}
	qr := qualified(ri.group, ri.resource)
	msg := qr + " is forbidden: " + why
	if ri.name != "" {
		msg = fmt.Sprintf("%s %q is forbidden: %s", qr, ri.name, why)
	}
	return &apiError{code: 403, reason: "Forbidden", details: grDetails(ri.group, ri.resource, ri.name), message: msg}
}

// fieldErr is one field.Error.
type fieldErr struct {
	typ   string // "Invalid", "Required", "Forbidden", "Unsupported", "TooLong"
	field string
	body  string // ErrorBody(): `Invalid value: "x": detail`
}

func fieldInvalid(path string, value any, detail string) fieldErr {
	var v string
	switch t := value.(type) {
	case string:
		v = fmt.Sprintf("%q", t)
	default:
		v = fmt.Sprint(t)
	}
	return fieldErr{"FieldValueInvalid", path, "Invalid value: " + v + ": " + detail}
}

func fieldRequired(path, detail string) fieldErr {
	b := "Required value"
	if detail != "" {
		b += ": " + detail
	}
	return fieldErr{"FieldValueRequired", path, b}
}

func fieldForbidden(path, detail string) fieldErr {
	return fieldErr{"FieldValueForbidden", path, "Forbidden: " + detail}
}

func fieldNotSupported(path string, value string, supported []string) fieldErr {
	q := make([]string, len(supported))
	for i, s := range supported {
		q[i] = fmt.Sprintf("%q", s)
	}
	return fieldErr{"FieldValueNotSupported", path, fmt.Sprintf("Unsupported value: %q: supported values: %s", value, strings.Join(q, ", "))}
}

// errInvalid is apierrors.NewInvalid.
func errInvalid(group, kind, name string, errs []fieldErr) *apiError {
	qk := kind
	if group != "" {
		qk = kind + "." + group
	}
	causes := []any{}
	msgs := []string{}
	for _, e := range errs {
		causes = append(causes, Obj{"reason": e.typ, "message": e.body, "field": e.field})
		msgs = append(msgs, e.field+": "+e.body)
	}
	d := grDetails(group, kind, name)
	d["causes"] = causes
	msg := fmt.Sprintf("%s %q is invalid", qk, name)
	switch len(msgs) {
	case 0:
	case 1:
		msg += ": " + msgs[0]
	default:
		msg += ": [" + strings.Join(msgs, ", ") + "]"
	}
	return &apiError{code: 422, reason: "Invalid", details: d, message: msg}
}

// reasonFor is the reason apimachinery's NewGenericServerResponse picks.
func reasonFor(code int) string {
	switch code {
	case 400:
		return "BadRequest"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "NotFound"
	case 405:
		return "MethodNotAllowed"
	case 406:
		return "NotAcceptable"
	case 409:
		return "Conflict"
	case 410:
		return "Expired"
	case 413:
		return "RequestEntityTooLarge"
	case 415:
		return "UnsupportedMediaType"
	case 422:
		return "Invalid"
	case 429:
		return "TooManyRequests"
	case 503:
		return "ServiceUnavailable"
	case 504:
		return "Timeout"
	}
	if code >= 500 {
		return "InternalError"
	}
	return "Unknown"
}

func statusObj(e *apiError) Obj {
	md := Obj{}
	if e.cont != "" {
		md["continue"] = e.cont
	}
	s := Obj{"kind": "Status", "apiVersion": "v1", "metadata": md, "status": "Failure",
		"message": e.message, "reason": e.reason, "code": e.code}
	if e.details != nil {
		s["details"] = e.details
	}
	if e.reason == "" {
		delete(s, "reason")
	}
	return s
}

func writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.retryAfter))
	}
	if e.plain {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(e.code)
		fmt.Fprintln(w, e.message)
		return
	}
	if e.pretty {
		var out bytes.Buffer
		json.Indent(&out, bytes.TrimSpace(encodeJSON(statusObj(e))), "", "  ")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(e.code)
		w.Write(out.Bytes())
		return
	}
	writeJSON(w, r, e.code, statusObj(e))
}

type kv struct {
	k string
	v any
}

// writeRawJSON is responsewriters.WriteRawJSON: indented, no newline.
func writeRawJSON(w http.ResponseWriter, code int, fields []kv) {
	var b bytes.Buffer
	b.WriteString("{")
	for i, f := range fields {
		if i > 0 {
			b.WriteString(",")
		}
		kb, _ := json.Marshal(f.k)
		vb, _ := json.Marshal(f.v)
		b.WriteString("\n  ")
		b.Write(kb)
		b.WriteString(": ")
		b.Write(vb)
	}
	b.WriteString("\n}")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}
