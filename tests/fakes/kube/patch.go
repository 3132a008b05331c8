package kube

import (
	"fmt"
	"strconv"
	"strings"
)

const (
	ctJSONPatch  = "application/json-patch+json"
	ctMergePatch = "application/merge-patch+json"
	ctSMP        = "application/strategic-merge-patch+json"
	ctApply      = "application/apply-patch+yaml"
)

var patchTypes = []string{ctJSONPatch, ctMergePatch, ctSMP, ctApply}

// ---- RFC 7386 JSON merge patch

func mergePatch(orig, patch any) any {
	pm, ok := patch.(Obj)
	if !ok {
		return deepCopy(patch)
	}
	om, ok := orig.(Obj)
	if !ok {
		om = Obj{}
	} else {
		om = copyObj(om)
	}
	for k, v := range pm {
		if v == nil {
			delete(om, k)
			continue
		}
		om[k] = mergePatch(om[k], v)
	}
	return om
}

// ---- strategic merge patch: merge patch plus the list merge keys and
// directives of the built-in types this fake serves.

var mergeKeys = map[string]string{
	"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
	"env": "name", "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
	"ports": "containerPort", "imagePullSecrets": "name", "ownerReferences": "uid",
	"conditions": "type", "hostAliases": "ip", "topologySpreadConstraints": "topologyKey",
	"resourceClaims": "name", "secrets": "name",
}

// primitive lists with patchStrategy merge.
var mergePrimitiveLists = map[string]bool{"finalizers": true}

func strategicMerge(orig, patch any) (any, error) {
	pm, ok := patch.(Obj)
	if !ok {
		return deepCopy(patch), nil
	}
	switch pm["$patch"] {
	case "replace":
		out := copyObj(pm)
		delete(out, "$patch")
		return out, nil
	case "delete":
		return nil, nil
	case nil:
	default:
		return nil, fmt.Errorf("unknown patch type: %v", pm["$patch"])
	}
	om, ok := orig.(Obj)
	if !ok {
		om = Obj{}
	} else {
		om = copyObj(om)
	}
	var retain []string
	hasRetain := false
	for _, k := range sortedKeys(pm) {
		v := pm[k]
		switch {
		case k == "$retainKeys":
			hasRetain = true
			retain = strList(v)
			continue
		case strings.HasPrefix(k, "$setElementOrder/"):
			continue
		case strings.HasPrefix(k, "$deleteFromPrimitiveList/"):
			f := strings.TrimPrefix(k, "$deleteFromPrimitiveList/")
			del := strList(v)
			l, _ := om[f].([]any)
			var out []any
			for _, x := range l {
				if s, ok := x.(string); !ok || !contains(del, s) {
					out = append(out, x)
				}
			}
			om[f] = out
			continue
		}
		if v == nil {
			delete(om, k)
			continue
		}
		switch pv := v.(type) {
		case Obj:
			nv, err := strategicMerge(om[k], pv)
			if err != nil {
				return nil, err
			}
			if nv == nil {
				delete(om, k)
			} else {
				om[k] = nv
			}
		case []any:
			ol, _ := om[k].([]any)
			if mk, ok := mergeKeys[k]; ok && listOfMaps(pv) {
				nl, err := mergeKeyed(ol, pv, mk)
				if err != nil {
					return nil, err
				}
				om[k] = orderKeyed(nl, pv, ol, mk, pm["$setElementOrder/"+k])
			} else if mergePrimitiveLists[k] {
				out := append([]any{}, ol...)
				for _, x := range pv {
					if !containsAny(out, x) {
						out = append(out, x)
					}
				}
				om[k] = out
			} else {
				om[k] = deepCopy(pv)
			}
		default:
			om[k] = deepCopy(v)
		}
	}
	if hasRetain {
		for k := range om {
			if !contains(retain, k) {
				delete(om, k)
			}
		}
	}
	return om, nil
}

func listOfMaps(l []any) bool {
	for _, x := range l {
		if _, ok := x.(Obj); !ok {
			return false
		}
	}
	return true
}

func containsAny(l []any, x any) bool {
	for _, y := range l {
		if jsonEqual(x, y) {
			return true
		}
	}
	return false
}

func mergeKeyed(orig, patch []any, key string) ([]any, error) {
	out := make([]any, 0, len(orig))
	for _, x := range orig {
		out = append(out, deepCopy(x))
	}
	for _, p := range patch {
		pm := p.(Obj)
		if pm["$patch"] == "replace" {
			// the whole list is replaced by the patch's other items
			var l []any
			for _, q := range patch {
				if qm := q.(Obj); qm["$patch"] == nil {
					l = append(l, deepCopy(qm))
				}
			}
			return l, nil
		}
	}
	for _, p := range patch {
		pm := p.(Obj)
		kv, has := pm[key]
		if !has {
			return nil, fmt.Errorf("map: %v does not contain declared merge key: %s", pm, key)
		}
		idx := -1
		for i, x := range out {
			if xm, ok := x.(Obj); ok && jsonEqual(xm[key], kv) {
				idx = i
				break
			}
		}
		if pm["$patch"] == "delete" {
			if idx >= 0 {
				out = append(out[:idx], out[idx+1:]...)
			}
			continue
		}
		if idx < 0 {
			nv, err := strategicMerge(nil, pm)
			if err != nil {
				return nil, err
			}
			out = append(out, nv)
			continue
		}
		nv, err := strategicMerge(out[idx], pm)
		if err != nil {
			return nil, err
		}
		out[idx] = nv
	}
	return out, nil
}

// orderKeyed orders a merged keyed list as the strategic merge patch
// does: by $setElementOrder when given, else the patch's elements first (in
// patch order), then the elements only the server had (in their order).
func orderKeyed(merged, patch, orig []any, key string, setOrder any) []any {
	keyOf := func(x any) string {
		m, _ := x.(Obj)
		s, _ := jsonMarshal(m[key])
		return s
	}
	var order []string
	if so, ok := setOrder.([]any); ok {
		for _, x := range so {
			order = append(order, keyOf(x))
		}
	} else {
		for _, x := range patch {
			order = append(order, keyOf(x))
		}
	}
	byKey := map[string]any{}
	for _, x := range merged {
		byKey[keyOf(x)] = x
	}
	out := []any{}
	used := map[string]bool{}
	for _, k := range order {
		if x, ok := byKey[k]; ok && !used[k] {
			out = append(out, x)
			used[k] = true
		}
	}
	for _, x := range merged {
		if k := keyOf(x); !used[k] {
			out = append(out, x)
			used[k] = true
		}
	}
	return out
}

// ---- RFC 6902 JSON patch

type jsonPatchError struct{ msg string }

func (e *jsonPatchError) Error() string { return e.msg }

func parsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, &jsonPatchError{fmt.Sprintf("invalid JSON pointer %q", p)}
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

// jpGet follows a pointer.
func jpGet(doc any, path []string) (any, bool) {
	cur := doc
	for _, p := range path {
		switch t := cur.(type) {
		case Obj:
			v, ok := t[p]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			cur = t[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// jpSet sets (add semantics when insert) or removes the value at path,
// returning the new document.
func jpMutate(doc any, path []string, op string, val any) (any, error) {
	if len(path) == 0 {
		if op == "remove" {
			return nil, nil
		}
		return val, nil
	}
	head, rest := path[0], path[1:]
	switch t := doc.(type) {
	case Obj:
		if len(rest) == 0 {
			switch op {
			case "add":
				t[head] = val
			case "replace":
				if _, ok := t[head]; !ok {
					return nil, &jsonPatchError{fmt.Sprintf("replace operation does not apply: doc is missing key: /%s", head)}
				}
				t[head] = val
			case "remove":
				if _, ok := t[head]; !ok {
					return nil, &jsonPatchError{fmt.Sprintf("remove operation does not apply: doc is missing key: /%s", head)}
				}
				delete(t, head)
			}
			return t, nil
		}
		child, ok := t[head]
		if !ok {
			return nil, &jsonPatchError{fmt.Sprintf("doc is missing path: %q", "/"+strings.Join(path, "/"))}
		}
		nc, err := jpMutate(child, rest, op, val)
		if err != nil {
			return nil, err
		}
		t[head] = nc
		return t, nil
	case []any:
		if len(rest) == 0 {
			if head == "-" && op == "add" {
				return append(t, val), nil
			}
			i, err := strconv.Atoi(head)
			if err != nil || i < 0 || i > len(t) || (op != "add" && i == len(t)) {
				return nil, &jsonPatchError{fmt.Sprintf("Unable to access invalid index: %s", head)}
			}
			switch op {
			case "add":
				out := append([]any{}, t[:i]...)
				out = append(out, val)
				return append(out, t[i:]...), nil
			case "replace":
				t[i] = val
				return t, nil
			case "remove":
				return append(append([]any{}, t[:i]...), t[i+1:]...), nil
			}
		}
		i, err := strconv.Atoi(head)
		if err != nil || i < 0 || i >= len(t) {
			return nil, &jsonPatchError{fmt.Sprintf("Unable to access invalid index: %s", head)}
		}
		nc, err := jpMutate(t[i], rest, op, val)
		if err != nil {
			return nil, err
		}
		t[i] = nc
		return t, nil
	}
	return nil, &jsonPatchError{fmt.Sprintf("doc is missing path: %q", "/"+strings.Join(path, "/"))}
}

// jsonPatch applies RFC 6902 operations. A malformed patch is a 400; an
// operation that does not apply (or a failed test) is the real server's 422.
func jsonPatch(doc Obj, body []byte) (Obj, *apiError) {
	v, err := decodeJSON(body)
	if err != nil {
		return nil, errBadRequest("invalid JSON patch")
	}
	ops, ok := v.([]any)
	if !ok {
		return nil, errBadRequest(fmt.Sprintf("error decoding patch: json: cannot unmarshal %s into Go value of type []handlers.jsonPatchOp", jsonKind(v)))
	}
	if len(ops) > 10000 {
		return nil, &apiError{code: 413, reason: "RequestEntityTooLarge",
			message: fmt.Sprintf("Request entity too large: The allowed maximum operations in a JSON patch is %d, got %d", 10000, len(ops))}
	}
	var cur any = copyObj(doc)
	unprocessable := &apiError{code: 422, reason: "Invalid", details: Obj{},
		message: "the server rejected our request due to an error in our request"}
	for _, raw := range ops {
		op, ok := raw.(Obj)
		if !ok {
			return nil, errBadRequest("json: cannot unmarshal into Go value of type jsonpatch.Operation")
		}
		name, _ := op["op"].(string)
		path, err := parsePointer(fmt.Sprint(op["path"]))
		if err != nil {
			return nil, unprocessable
		}
		val := deepCopy(op["value"])
		switch name {
		case "add", "replace":
			if _, has := op["value"]; !has {
				return nil, unprocessable
			}
			cur, err = jpMutate(cur, path, name, val)
		case "remove":
			cur, err = jpMutate(cur, path, "remove", nil)
		case "test":
			got, ok := jpGet(cur, path)
			if !ok && op["value"] != nil {
				return nil, unprocessable
			}
			if !jsonEqual(got, op["value"]) {
				return nil, unprocessable
			}
		case "move", "copy":
			from, ferr := parsePointer(fmt.Sprint(op["from"]))
			if ferr != nil {
				return nil, unprocessable
			}
			got, ok := jpGet(cur, from)
			if !ok {
				return nil, unprocessable
			}
			got = deepCopy(got)
			if name == "move" {
				cur, err = jpMutate(cur, from, "remove", nil)
				if err != nil {
					return nil, unprocessable
				}
			}
			cur, err = jpMutate(cur, path, "add", got)
		default:
			return nil, unprocessable
		}
		if err != nil {
			return nil, unprocessable
		}
	}
	out, ok := cur.(Obj)
	if !ok {
		return nil, unprocessable
	}
	return out, nil
}

// ---- server-side apply (simplified; see the package documentation)

// applyMerge merges an applied configuration into the live object: maps are
// merged, keyed lists merged by key, other lists replaced.
func applyMerge(live, cfg any) any {
	cm, ok := cfg.(Obj)
	if !ok {
		return deepCopy(cfg)
	}
	lm, ok := live.(Obj)
	if !ok {
		lm = Obj{}
	} else {
		lm = copyObj(lm)
	}
	for k, v := range cm {
		if l, ok := v.([]any); ok {
			if mk, ok := mergeKeys[k]; ok && listOfMaps(l) {
				ol, _ := lm[k].([]any)
				nl, err := mergeKeyed(ol, l, mk)
				if err == nil {
					lm[k] = nl
					continue
				}
			}
		}
		lm[k] = applyMerge(lm[k], v)
	}
	return lm
}
