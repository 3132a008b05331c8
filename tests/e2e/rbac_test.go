package e2e

import (
	"testing"

	"pgtoken-rotator/tests/stack"
)

// The controller runs as its own ServiceAccount with exactly manifests/rbac.yaml:
// what it needs works, and nothing else is allowed.
func TestRBACLeastPrivilege(t *testing.T) {
	covers(t, "Security", "Least-privilege RBAC", "real kube-apiserver, the controller as its own ServiceAccount bound to manifests/rbac.yaml: what it needs works, everything else is Forbidden")
	if !realKube() {
		t.Skip("RBAC is enforced by the real kube-apiserver tier (PGTR_KUBE=real)")
	}
	w := newWorld(t, stack.Options{})
	w.managed("rbac", "db", w.pgAnn())
	w.waitSecret("rbac", "db", 30*1e9, "written by the controller under its own RBAC", hasKeys("password"))
	c, err := w.s.AsController()
	if err != nil {
		t.Fatal(err)
	}
	allowed := []struct{ method, path string }{
		{"GET", "/api/v1/secrets?labelSelector=pgtoken.io%2Fmanaged%3Dtrue"},
		{"GET", "/api/v1/namespaces/rbac/secrets/db"},
	}
	for _, a := range allowed {
		if st, _, err := c.Do(a.method, a.path, "", nil); err != nil || st != 200 {
			t.Errorf("%s %s as the controller: %d %v; want 200", a.method, a.path, st, err)
		}
	}
	denied := []struct{ method, path string }{
		{"GET", "/api/v1/configmaps"},
		{"GET", "/api/v1/pods"},
		{"DELETE", "/api/v1/namespaces/rbac/secrets/db"},
		{"POST", "/api/v1/namespaces/rbac/secrets"},
		{"GET", "/apis/apps/v1/deployments"},
		{"GET", "/api/v1/namespaces/rbac/events"},
	}
	for _, d := range denied {
		if st, _, err := c.Do(d.method, d.path, "application/json", []byte("{}")); err != nil || st != 403 {
			t.Errorf("%s %s as the controller: %d %v; want 403", d.method, d.path, st, err)
		}
	}
}
