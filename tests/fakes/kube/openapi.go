package kube

import (
	"net/http"
	"strings"
)

// A minimal OpenAPI v3 publication: the index at /openapi/v3 and one
// document per group version listing each resource's PATCH operation with its
// query parameters. It is only what kubectl needs to learn that the server
// supports fieldValidation (kubectl apply/create -f validate that way); it
// has no schemas, so kubectl explain does not work. /openapi/v2 is 404.

func gvPath(group string) string {
	if group == "" {
		return "api/v1"
	}
	return "apis/" + group + "/v1"
}

func (sv *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) bool {
	p := strings.TrimSuffix(r.URL.Path, "/")
	if p == "/openapi/v3" {
		paths := Obj{}
		for _, g := range sv.groups() {
			gp := gvPath(g)
			paths[gp] = Obj{"serverRelativeURL": "/openapi/v3/" + gp + "?hash=" + sv.version}
		}
		writeJSON(w, r, 200, Obj{"paths": paths})
		return true
	}
	rest, ok := strings.CutPrefix(p, "/openapi/v3/")
	if !ok {
		return false
	}
	for _, g := range sv.groups() {
		if gvPath(g) != rest {
			continue
		}
		paths := Obj{}
		for _, res := range sv.resourcesOf(g) {
			base := "/" + gvPath(g) + "/"
			if res.namespaced {
				base += "namespaces/{namespace}/"
			}
			opParams := []any{}
			for _, n := range []string{"dryRun", "fieldManager", "fieldValidation", "force"} {
				opParams = append(opParams, Obj{"name": n, "in": "query", "schema": Obj{"type": "string", "uniqueItems": true}})
			}
			params := []any{Obj{"name": "pretty", "in": "query", "schema": Obj{"type": "string", "uniqueItems": true}}}
			params = append(params, Obj{"name": "name", "in": "path", "required": true, "schema": Obj{"type": "string", "uniqueItems": true}})
			if res.namespaced {
				params = append(params, Obj{"name": "namespace", "in": "path", "required": true, "schema": Obj{"type": "string", "uniqueItems": true}})
			}
			paths[base+res.resource+"/{name}"] = Obj{
				"parameters": params,
				"patch": Obj{
					"operationId":                     "patch" + res.kind,
					"parameters":                      opParams,
					"x-kubernetes-action":             "patch",
					"x-kubernetes-group-version-kind": Obj{"group": res.group, "version": res.version, "kind": res.kind},
					"responses":                       Obj{"200": Obj{"description": "OK"}},
				},
			}
		}
		writeJSON(w, r, 200, Obj{"openapi": "3.0.0", "info": Obj{"title": "Kubernetes", "version": sv.version},
			"paths": paths, "components": Obj{"schemas": Obj{}}})
		return true
	}
	http.NotFound(w, r)
	return true
}
