package kube

import (
	"fmt"
	"sort"
	"strings"
)

// Field ownership, a simplified server-side apply: each (manager,
// operation) owns a set of leaf field paths (".data.k", ".metadata.labels.a";
// lists are leaves). Update operations (POST, PUT, non-apply PATCH) take the
// fields they change from everyone; apply managers own what their applied
// configuration names, as sent (so a Secret applied through stringData owns
// .stringData.* paths, as on the real server). managedFields are not
// rendered.

type mgrEntry struct {
	manager string
	op      string // "Apply" or "Update"
	paths   map[string]bool
}

// printManager is the real fieldmanager's rendering of a manager in
// conflict messages.
func (e *mgrEntry) print(apiVersion string) string {
	if e.op == "Update" {
		return fmt.Sprintf("%q using %s", e.manager, apiVersion)
	}
	return fmt.Sprintf("%q", e.manager)
}

func (b *bucket) entry(key, manager, op string) *mgrEntry {
	for _, e := range b.managed[key] {
		if e.manager == manager && e.op == op {
			return e
		}
	}
	e := &mgrEntry{manager: manager, op: op, paths: map[string]bool{}}
	b.managed[key] = append(b.managed[key], e)
	return e
}

func (b *bucket) prune(key string) {
	var keep []*mgrEntry
	for _, e := range b.managed[key] {
		if len(e.paths) > 0 {
			keep = append(keep, e)
		}
	}
	if keep == nil {
		delete(b.managed, key)
		return
	}
	b.managed[key] = keep
}

var systemPaths = []string{".kind", ".apiVersion", ".metadata.name", ".metadata.namespace", ".metadata.uid",
	".metadata.resourceVersion", ".metadata.generation", ".metadata.creationTimestamp", ".metadata.deletionTimestamp",
	".metadata.deletionGracePeriodSeconds", ".metadata.managedFields", ".metadata.selfLink", ".metadata.generateName", ".status"}

// A field path is kept as segments joined by \x00: "f:name" for a field,
// "k:name=\"c\"" for the element of a keyed list; renderPath gives the
// real fieldpath text (.spec.containers[name="c"].image).
const pathSep = "\x00"

func renderPath(p string) string {
	var b strings.Builder
	for _, seg := range strings.Split(p, pathSep) {
		switch {
		case strings.HasPrefix(seg, "f:"):
			b.WriteString("." + seg[2:])
		case strings.HasPrefix(seg, "k:"):
			b.WriteString("[" + seg[2:] + "]")
		}
	}
	return b.String()
}

func isSystemPath(p string) bool {
	r := renderPath(p)
	for _, s := range systemPaths {
		if r == s || strings.HasPrefix(r, s+".") {
			return true
		}
	}
	return false
}

// leaves maps each owned leaf path of o to its value. Maps are walked;
// lists of maps with a known merge key (containers by name, ...) are walked
// element by element; other lists are leaves.
func leaves(o Obj) map[string]any {
	out := map[string]any{}
	var walk func(v any, prefix, field string)
	walk = func(v any, prefix, field string) {
		join := func(seg string) string {
			if prefix == "" {
				return seg
			}
			return prefix + pathSep + seg
		}
		switch t := v.(type) {
		case Obj:
			if len(t) > 0 {
				for k, x := range t {
					walk(x, join("f:"+k), k)
				}
				return
			}
		case []any:
			if mk, ok := mergeKeys[field]; ok && len(t) > 0 && listOfMaps(t) {
				for _, el := range t {
					kv, has := el.(Obj)[mk]
					if !has {
						continue
					}
					jb, _ := jsonMarshal(kv)
					walk(el, join("k:"+mk+"="+jb), "")
				}
				return
			}
		}
		if prefix != "" && !isSystemPath(prefix) {
			out[prefix] = v
		}
	}
	walk(o, "", "")
	return out
}

func jsonMarshal(v any) (string, error) {
	b := encodeJSON(v)
	return strings.TrimSpace(string(b)), nil
}

// pathDelete removes the field at p; a keyed-list element left without its
// key goes too.
func pathDelete(o Obj, p string) {
	segs := strings.Split(p, pathSep)
	var del func(v any, segs []string) any
	del = func(v any, segs []string) any {
		seg := segs[0]
		switch {
		case strings.HasPrefix(seg, "f:"):
			m, ok := v.(Obj)
			if !ok {
				return v
			}
			k := seg[2:]
			if len(segs) == 1 {
				delete(m, k)
			} else if c, ok := m[k]; ok {
				m[k] = del(c, segs[1:])
			}
			return m
		case strings.HasPrefix(seg, "k:"):
			l, ok := v.([]any)
			if !ok {
				return v
			}
			key, val, _ := strings.Cut(seg[2:], "=")
			var out []any
			for _, el := range l {
				em, _ := el.(Obj)
				if jb, _ := jsonMarshal(em[key]); em != nil && jb == val {
					if len(segs) > 1 {
						el = del(em, segs[1:])
					}
					if _, has := el.(Obj)[key]; !has || len(segs) == 1 {
						continue
					}
				}
				out = append(out, el)
			}
			if out == nil {
				out = []any{}
			}
			return out
		}
		return v
	}
	del(o, segs)
}

// recordUpdate gives manager's Update entry the fields the write changed,
// taking them from every other entry.
func (b *bucket) recordUpdate(key, manager string, old, cur Obj) {
	if manager == "" {
		return
	}
	nl, ol := leaves(cur), leaves(old)
	var moved []string
	for p, v := range nl {
		if ov, ok := ol[p]; !ok || !jsonEqual(ov, v) {
			moved = append(moved, p)
		}
	}
	for p := range ol {
		if _, ok := nl[p]; !ok {
			moved = append(moved, p)
		}
	}
	if len(moved) == 0 {
		return
	}
	mine := b.entry(key, manager, "Update")
	for _, e := range b.managed[key] {
		if e == mine {
			continue
		}
		for _, p := range moved {
			delete(e.paths, p)
		}
	}
	for _, p := range moved {
		if _, ok := nl[p]; ok {
			mine.paths[p] = true
		}
	}
	b.prune(key)
}

type fieldConflict struct {
	e    *mgrEntry
	path string
}

// applyConflicts lists fields of cfg that another manager owns with another
// value in live.
func (b *bucket) applyConflicts(key, manager string, live, cfg Obj) []fieldConflict {
	cl := leaves(cfg)
	ll := leaves(live)
	var out []fieldConflict
	for _, e := range b.managed[key] {
		if e.manager == manager && e.op == "Apply" {
			continue
		}
		for p, cv := range cl {
			if !e.paths[p] {
				continue
			}
			if lv, ok := ll[p]; !ok || !jsonEqual(lv, cv) {
				out = append(out, fieldConflict{e, p})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, c := out[i], out[j]
		if a.e.manager != c.e.manager {
			return a.e.manager < c.e.manager
		}
		if a.e.op != c.e.op {
			return a.e.op < c.e.op
		}
		return a.path < c.path
	})
	return out
}

// errApplyConflict is the real fieldmanager's NewConflictError.
func errApplyConflict(cs []fieldConflict, apiVersion string) *apiError {
	causes := []any{}
	for _, c := range cs {
		causes = append(causes, Obj{"reason": "FieldManagerConflict", "message": "conflict with " + c.e.print(apiVersion), "field": renderPath(c.path)})
	}
	var msg string
	if len(cs) == 1 {
		msg = fmt.Sprintf("Apply failed with 1 conflict: conflict with %s: %s", cs[0].e.print(apiVersion), renderPath(cs[0].path))
	} else {
		var lines []string
		var last *mgrEntry
		for _, c := range cs {
			if c.e != last {
				lines = append(lines, fmt.Sprintf("conflicts with %s:", c.e.print(apiVersion)))
				last = c.e
			}
			lines = append(lines, "- "+renderPath(c.path))
		}
		msg = fmt.Sprintf("Apply failed with %d conflicts: %s", len(cs), strings.Join(lines, "\n"))
	}
	return &apiError{code: 409, reason: "Conflict", details: Obj{"causes": causes}, message: msg}
}

// recordApply sets manager's Apply entry to the paths of cfg; with force the
// conflicting fields leave their previous owners.
func (b *bucket) recordApply(key, manager string, cfg Obj, forced []fieldConflict) {
	e := b.entry(key, manager, "Apply")
	e.paths = map[string]bool{}
	for p := range leaves(cfg) {
		e.paths[p] = true
	}
	for _, c := range forced {
		delete(c.e.paths, c.path)
	}
	b.prune(key)
}

// droppedByApply lists fields manager applied before, no longer applies and
// nobody else owns: the apply removes them.
func (b *bucket) droppedByApply(key, manager string, cfg Obj) []string {
	cl := leaves(cfg)
	var mine *mgrEntry
	for _, e := range b.managed[key] {
		if e.manager == manager && e.op == "Apply" {
			mine = e
		}
	}
	if mine == nil {
		return nil
	}
	var out []string
	for p := range mine.paths {
		if _, ok := cl[p]; ok {
			continue
		}
		other := false
		for _, e := range b.managed[key] {
			if e != mine && e.paths[p] {
				other = true
			}
		}
		if !other {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}
