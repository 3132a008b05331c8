package e2e

import (
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
)

const (
	appAClient = "a0a0a0a0-0000-4000-8000-00000000000a"
	appAOID    = "0b0b0b0b-0000-4000-8000-00000000000a"
	miClient   = "mmmmmmmm-0000-4000-8000-0000000000mi"
	miOID      = "0c0c0c0c-0000-4000-8000-0000000000mi"
)

// entraConfig replaces the fake Entra's configuration with the stack's plus extra apps
// and managed identities.
func (w *world) entraConfig(apps, mis []any) {
	w.t.Helper()
	cfg := w.s.EntraConfig()
	cfg["apps"] = append(cfg["apps"].([]any), apps...)
	if len(mis) > 0 {
		cfg["managed_identities"] = mis
	}
	w.entra("PUT", "config", cfg)
}

func (w *world) serviceAccount(ns, name string, ann map[string]string) {
	w.t.Helper()
	if err := w.k.EnsureNamespace(ns); err != nil {
		w.t.Fatal(err)
	}
	if err := w.k.JSON("POST", "/api/v1/namespaces/"+ns+"/serviceaccounts", "application/json",
		map[string]any{"apiVersion": "v1", "kind": "ServiceAccount",
			"metadata": map[string]any{"name": name, "namespace": ns, "annotations": ann}}, nil); err != nil {
		w.t.Fatal(err)
	}
}

// grantServiceAccountTokens gives the controller what per-Secret identities
// need (the chart adds it when the feature is on): get ServiceAccounts and
// create their tokens.
func (w *world) grantServiceAccountTokens() {
	w.t.Helper()
	w.grant("pgtoken-rotator-sa-identity", "",
		rule("", []string{"serviceaccounts"}, "get"),
		rule("", []string{"serviceaccounts/token"}, "create"))
}

func lastErrorIs(prefix string) func(*stack.Secret) bool {
	return func(s *stack.Secret) bool {
		return strings.HasPrefix(s.Metadata.Annotations["pgtoken.io/status.last-error"], prefix)
	}
}

// A Secret in namespace a gets a token for a's own identity (its ServiceAccount's
// federated credential); a Secret in b cannot use a's identity by any trick.
func TestServiceAccountIdentity(t *testing.T) {
	w := newWorld(t, stack.Options{})
	w.grantServiceAccountTokens()
	w.entraConfig([]any{map[string]any{
		"client_id": appAClient, "object_id": appAOID, "display_name": "app-a",
		"federated_credentials": []any{map[string]any{"issuer": stack.Issuer,
			"subject": "system:serviceaccount:a:app-a", "audiences": []string{stack.Audience}}},
	}}, nil)
	if err := w.s.AddRole("app-a-role", appAOID, "appa"); err != nil {
		t.Fatal(err)
	}
	wi := map[string]string{"azure.workload.identity/client-id": appAClient}
	w.serviceAccount("a", "app-a", wi)

	w.managed("a", "db", w.pgAnn("pgtoken.io/service-account", "app-a",
		"pgtoken.io/user", "app-a-role", "pgtoken.io/database", "appa"))
	sec := w.waitSecret("a", "db", 30*time.Second, "written with a's identity", hasKeys("DATABASE_URL"))
	if user, err := w.psql(sec.Value("DATABASE_URL")); err != nil || user != "app-a-role" {
		t.Fatalf("login as a's role: %q %v", user, err)
	}
	if got := sec.Metadata.Annotations["pgtoken.io/status.identity"]; got != "sa:a/app-a:"+appAClient {
		t.Errorf("status.identity %q", got)
	}

	// b names a's ServiceAccount: it does not exist in b.
	w.managed("b", "plain", w.pgAnn("pgtoken.io/service-account", "app-a", "pgtoken.io/user", "app-a-role"))
	w.waitSecret("b", "plain", 30*time.Second, "refused: no such ServiceAccount in b", lastErrorIs("InvalidConfig"))
	// b reaches for another namespace: refused before any request.
	for i, trick := range []string{"a/app-a", "../a/app-a", "system:serviceaccount:a:app-a"} {
		name := []string{"slash", "dotdot", "subject"}[i]
		w.managed("b", name, w.pgAnn("pgtoken.io/service-account", trick, "pgtoken.io/user", "app-a-role"))
		w.waitSecret("b", name, 30*time.Second, "refused: "+trick, lastErrorIs("InvalidConfig"))
	}
	// b makes its own ServiceAccount claiming a's client id: Entra finds no
	// federated credential for system:serviceaccount:b:app-a and refuses.
	w.serviceAccount("b", "app-a", wi)
	w.managed("b", "impostor", w.pgAnn("pgtoken.io/service-account", "app-a", "pgtoken.io/user", "app-a-role"))
	bad := w.waitSecret("b", "impostor", 30*time.Second, "refused by Entra", lastErrorIs("TokenFailed"))
	if bad.Data["password"] != "" {
		t.Fatalf("an impostor ServiceAccount got a token for a's identity")
	}
	if !strings.Contains(bad.Metadata.Annotations["pgtoken.io/status.last-error"], "AADSTS") {
		t.Errorf("the refusal does not carry Entra's error code: %s", bad.Metadata.Annotations["pgtoken.io/status.last-error"])
	}
}

// With the controller's own identity switched off, a Secret must name a ServiceAccount.
func TestControllerIdentityForbidden(t *testing.T) {
	w := newWorld(t, stack.Options{}, "--allow-controller-identity=false")
	w.managed("nofallback", "db", w.pgAnn())
	sec := w.waitSecret("nofallback", "db", 30*time.Second, "refused", lastErrorIs("InvalidConfig"))
	if !strings.Contains(sec.Metadata.Annotations["pgtoken.io/status.last-error"], "pgtoken.io/service-account") {
		t.Errorf("the message does not say what to add: %s", sec.Metadata.Annotations["pgtoken.io/status.last-error"])
	}
	if sec.Data["password"] != "" {
		t.Fatalf("written with the controller's identity although forbidden")
	}
}

// A node's managed identity through IMDS (endpoint overridden as the Azure SDKs allow).
func TestIMDSIdentity(t *testing.T) {
	w := newWorld(t, stack.Options{})
	w.stopController()
	w.entraConfig(nil, []any{map[string]any{"client_id": miClient, "object_id": miOID, "default": true}})
	if err := w.s.AddRole("node-mi", miOID, ""); err != nil {
		t.Fatal(err)
	}
	p, err := w.s.Spawn("controller-imds", []string{"AZURE_POD_IDENTITY_AUTHORITY_HOST=" + w.s.IMDSURL},
		w.s.Bin, append(w.s.ControllerArgs(), "--identity-source", "imds")...)
	if err != nil {
		t.Fatal(err)
	}
	w.ctrl = p
	w.managed("imds", "db", w.pgAnn("pgtoken.io/user", "node-mi", "pgtoken.io/database", "postgres"))
	sec := w.waitSecret("imds", "db", 30*time.Second, "written with the managed identity", hasKeys("DATABASE_URL"))
	if user, err := w.psql(sec.Value("DATABASE_URL")); err != nil || user != "node-mi" {
		t.Fatalf("login as the managed identity's role: %q %v", user, err)
	}
	if got := sec.Metadata.Annotations["pgtoken.io/status.identity"]; got != "imds:default" {
		t.Errorf("status.identity %q", got)
	}
}
