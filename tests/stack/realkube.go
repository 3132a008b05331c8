package stack

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildRealKube builds (or finds cached) the real kube-apiserver, etcd and
// kubectl. A cold build takes 10 to 20 minutes; later runs are instant.
func BuildRealKube(root string) error {
	cmd := exec.Command(filepath.Join(root, "tests/realkube/build.sh"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("tests/realkube/build.sh: %v\n%s", err, out)
	}
	return nil
}

// StartRealKube starts a real kube-apiserver (and etcd) for this stack, with
// the same ServiceAccount issuer and key as the fake. The controller gets a
// kubeconfig for its own ServiceAccount, bound to manifests/rbac.yaml only,
// and its federated token comes from the real TokenRequest API.
func (s *Stack) StartRealKube() error {
	if err := BuildRealKube(s.Root); err != nil {
		return err
	}
	start := exec.Command(filepath.Join(s.Root, "tests/realkube/start.sh"), s.Dir)
	start.Env = append(os.Environ(), "REALKUBE_ISSUER="+Issuer, "REALKUBE_AUDIT=0")
	s.realKube = true
	if out, err := start.CombinedOutput(); err != nil {
		return fmt.Errorf("tests/realkube/start.sh: %v\n%s", err, out)
	}
	env, err := readEnvFile(filepath.Join(s.Dir, "realkube.env"))
	if err != nil {
		return err
	}
	s.KubeURL = env["REALKUBE_URL"]
	s.AdminKubeconfig = env["REALKUBE_KUBECONFIG"]
	s.Kubectl = env["REALKUBE_KUBECTL"]
	k, err := s.Kube()
	if err != nil {
		return err
	}
	if err := k.EnsureNamespace(ControllerNS); err != nil {
		return err
	}
	if err := k.JSON("POST", "/api/v1/namespaces/"+ControllerNS+"/serviceaccounts", "application/json",
		map[string]any{"apiVersion": "v1", "kind": "ServiceAccount",
			"metadata": map[string]any{"name": ControllerSA, "namespace": ControllerNS}}, nil); err != nil {
		return err
	}
	if out, err := exec.Command(s.Kubectl, "--kubeconfig", s.AdminKubeconfig, "apply", "-f",
		filepath.Join(s.Root, "manifests/rbac.yaml")).CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl apply manifests/rbac.yaml: %v\n%s", err, out)
	}
	apiToken, err := k.TokenRequest(ControllerNS, ControllerSA, nil, 24*3600)
	if err != nil {
		return err
	}
	s.ControllerKubeconfig = filepath.Join(s.Dir, "controller.kubeconfig")
	if err := os.WriteFile(s.ControllerKubeconfig, []byte(tokenKubeconfig(s.KubeURL,
		filepath.Join(s.PKI, "ca.crt"), apiToken)), 0o600); err != nil {
		return err
	}
	fed, err := k.TokenRequest(ControllerNS, ControllerSA, []string{Audience}, 3600)
	if err != nil {
		return err
	}
	return os.WriteFile(s.FederatedTokenFile, []byte(fed), 0o600)
}

// TokenRequest asks the API server for a ServiceAccount token.
func (k *Kube) TokenRequest(ns, sa string, audiences []string, seconds int) (string, error) {
	spec := map[string]any{"expirationSeconds": seconds}
	if len(audiences) > 0 {
		spec["audiences"] = audiences
	}
	var tr struct {
		Status struct{ Token string }
	}
	err := k.JSON("POST", "/api/v1/namespaces/"+ns+"/serviceaccounts/"+sa+"/token", "application/json",
		map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}, &tr)
	if err == nil && tr.Status.Token == "" {
		err = fmt.Errorf("TokenRequest for %s/%s returned no token", ns, sa)
	}
	return tr.Status.Token, err
}

// AsController returns a client that authenticates with the controller's own
// kubeconfig token (for RBAC checks).
func (s *Stack) AsController() (*Kube, error) {
	tok, err := s.ControllerToken()
	if err != nil {
		return nil, err
	}
	return NewKubeWith(s.KubeURL, s.PKI, KubeOptions{Bearer: tok})
}

// ControllerToken is the bearer token of the controller's kubeconfig.
func (s *Stack) ControllerToken() (string, error) {
	b, err := os.ReadFile(s.ControllerKubeconfig)
	if err != nil {
		return "", err
	}
	if t := tokenFromKubeconfig(string(b)); t != "" {
		return t, nil
	}
	return "", fmt.Errorf("%s holds no token", s.ControllerKubeconfig)
}
