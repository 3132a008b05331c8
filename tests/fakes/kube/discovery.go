package kube

import (
	"net/http"
	"sort"
	"strings"
)

// groups lists the served group names in a stable order ("" is core).
func (sv *Server) groups() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range sv.resList {
		if !seen[r.group] {
			seen[r.group] = true
			out = append(out, r.group)
		}
	}
	sort.Strings(out)
	return out
}

func (sv *Server) resourcesOf(group string) []*resInfo {
	var out []*resInfo
	for _, r := range sv.resList {
		if r.group == group {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].resource < out[j].resource })
	return out
}

func subresourceKind(r *resInfo, sub string) (group, version, kind string, verbs []string) {
	switch sub {
	case "token":
		return "authentication.k8s.io", "v1", "TokenRequest", []string{"create"}
	case "status":
		return r.group, r.version, r.kind, []string{"get", "patch", "update"}
	}
	return r.group, r.version, r.kind, nil
}

func anyList(l []string) []any {
	if l == nil {
		return nil
	}
	return toAny(l)
}

// apiResourceList is the legacy discovery document of one group version.
func (sv *Server) apiResourceList(group string) Obj {
	res := []any{}
	for _, r := range sv.resourcesOf(group) {
		e := Obj{"name": r.resource, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
			"verbs": toAny(r.verbs)}
		if len(r.shortNames) > 0 {
			e["shortNames"] = toAny(r.shortNames)
		}
		if len(r.categories) > 0 {
			e["categories"] = toAny(r.categories)
		}
		res = append(res, e)
		for _, sub := range r.subresources {
			g, v, k, verbs := subresourceKind(r, sub)
			se := Obj{"name": r.resource + "/" + sub, "singularName": "", "namespaced": r.namespaced, "kind": k, "verbs": toAny(verbs)}
			if g != r.group || v != r.version {
				se["group"] = g
				se["version"] = v
			}
			res = append(res, se)
		}
	}
	gv := "v1"
	if group != "" {
		gv = group + "/v1"
	}
	out := Obj{"kind": "APIResourceList", "groupVersion": gv, "resources": res}
	if group != "" {
		out["apiVersion"] = "v1"
	}
	return out
}

// aggregated discovery (apidiscovery.k8s.io/v2), which kubectl asks for first.
func (sv *Server) discoveryGroup(group string) Obj {
	res := []any{}
	for _, r := range sv.resourcesOf(group) {
		scope := "Cluster"
		if r.namespaced {
			scope = "Namespaced"
		}
		e := Obj{"resource": r.resource, "responseKind": Obj{"group": r.group, "version": r.version, "kind": r.kind},
			"scope": scope, "singularResource": r.singular, "verbs": toAny(r.verbs)}
		if len(r.shortNames) > 0 {
			e["shortNames"] = toAny(r.shortNames)
		}
		if len(r.categories) > 0 {
			e["categories"] = toAny(r.categories)
		}
		var subs []any
		for _, sub := range r.subresources {
			g, v, k, verbs := subresourceKind(r, sub)
			subs = append(subs, Obj{"subresource": sub, "responseKind": Obj{"group": g, "version": v, "kind": k}, "verbs": toAny(verbs)})
		}
		if subs != nil {
			e["subresources"] = subs
		}
		res = append(res, e)
	}
	md := Obj{}
	if group != "" {
		md["name"] = group
	}
	return Obj{"metadata": md, "versions": []any{Obj{"version": "v1", "resources": res, "freshness": "Current"}}}
}

func wantsAggregated(r *http.Request) (string, bool) {
	for _, clause := range strings.Split(r.Header.Get("Accept"), ",") {
		if strings.Contains(clause, "as=APIGroupDiscoveryList") && strings.Contains(clause, "g=apidiscovery.k8s.io") {
			v := "v2"
			if strings.Contains(clause, "v=v2beta1") {
				v = "v2beta1"
			}
			return v, true
		}
		if mt := strings.TrimSpace(strings.Split(clause, ";")[0]); mt == "application/json" && !strings.Contains(clause, "as=") {
			return "", false
		}
	}
	return "", false
}

func (sv *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	aggV, agg := wantsAggregated(r)
	switch {
	case p == "/api":
		if agg {
			sv.writeAggregated(w, r, aggV, []string{""})
			return
		}
		writeJSON(w, r, 200, Obj{"kind": "APIVersions", "versions": []any{"v1"},
			"serverAddressByClientCIDRs": []any{Obj{"clientCIDR": "0.0.0.0/0", "serverAddress": sv.addr}}})
	case p == "/apis":
		var groups []string
		for _, g := range sv.groups() {
			if g != "" {
				groups = append(groups, g)
			}
		}
		if agg {
			sv.writeAggregated(w, r, aggV, groups)
			return
		}
		gl := []any{}
		for _, g := range groups {
			gv := Obj{"groupVersion": g + "/v1", "version": "v1"}
			gl = append(gl, Obj{"name": g, "versions": []any{gv}, "preferredVersion": gv})
		}
		writeJSON(w, r, 200, Obj{"kind": "APIGroupList", "apiVersion": "v1", "groups": gl})
	case p == "/api/v1":
		writeJSON(w, r, 200, sv.apiResourceList(""))
	case strings.HasPrefix(p, "/apis/"):
		parts := strings.Split(strings.TrimPrefix(p, "/apis/"), "/")
		g := parts[0]
		if !contains(sv.groups(), g) || g == "" {
			http.NotFound(w, r)
			return
		}
		if len(parts) == 1 {
			gv := Obj{"groupVersion": g + "/v1", "version": "v1"}
			writeJSON(w, r, 200, Obj{"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": []any{gv}, "preferredVersion": gv})
			return
		}
		if len(parts) == 2 && parts[1] == "v1" {
			writeJSON(w, r, 200, sv.apiResourceList(g))
			return
		}
		http.NotFound(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (sv *Server) writeAggregated(w http.ResponseWriter, r *http.Request, v string, groups []string) {
	items := []any{}
	for _, g := range groups {
		items = append(items, sv.discoveryGroup(g))
	}
	out := Obj{"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/" + v, "metadata": Obj{}, "items": items}
	writeJSONType(w, r, 200, out, "application/json;g=apidiscovery.k8s.io;v="+v+";as=APIGroupDiscoveryList")
}
