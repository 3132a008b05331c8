package kube

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"pgtoken-rotator/tests/fakes/pki"
)

// userInfo is an authenticated user.
type userInfo struct {
	Name   string   `json:"name"`
	UID    string   `json:"uid,omitempty"`
	Groups []string `json:"groups,omitempty"`
	Via    string   `json:"via"` // token, cert, serviceaccount
}

type tokenUser struct {
	name, uid string
	groups    []string
}

// loadTokens reads a kube-apiserver --token-auth-file: token,user,uid,"g1,g2".
func loadTokens(path string) (map[string]tokenUser, error) {
	out := map[string]tokenUser{}
	if path == "" {
		return out, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.Comment = '#'
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		if len(rec) < 3 {
			return nil, fmt.Errorf("%s: token file needs token,user,uid[,groups]: %v", path, rec)
		}
		tu := tokenUser{name: rec[1], uid: rec[2]}
		if len(rec) > 3 && rec[3] != "" {
			for _, g := range strings.Split(rec[3], ",") {
				if g = strings.TrimSpace(g); g != "" {
					tu.groups = append(tu.groups, g)
				}
			}
		}
		out[rec[0]] = tu
	}
	return out, nil
}

func withAuthenticated(groups []string) []string {
	out := append([]string{}, groups...)
	if !contains(out, "system:authenticated") {
		out = append(out, "system:authenticated")
	}
	return out
}

// authenticate returns the user or nil (401).
func (sv *Server) authenticate(r *http.Request) *userInfo {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			if t2, ok2 := strings.CutPrefix(h, "bearer "); ok2 {
				tok, ok = t2, true
			}
		}
		tok = strings.TrimSpace(tok)
		if !ok || tok == "" {
			return nil
		}
		sv.mu.Lock()
		tu, found := sv.tokens[tok]
		sv.mu.Unlock()
		if found {
			return &userInfo{Name: tu.name, UID: tu.uid, Groups: withAuthenticated(tu.groups), Via: "token"}
		}
		if u := sv.authSAToken(tok); u != nil {
			return u
		}
		return nil
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		c := r.TLS.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, ic := range r.TLS.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: sv.caPool, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return nil
		}
		return &userInfo{Name: c.Subject.CommonName, Groups: withAuthenticated(c.Subject.Organization), Via: "cert"}
	}
	return nil
}

// authSAToken checks a service account token as kube-apiserver's
// serviceaccount authenticator does for bound tokens: signature by the SA
// key, issuer, audience (one of the API audiences), time, and that the
// ServiceAccount still exists with the uid the token names.
func (sv *Server) authSAToken(tok string) *userInfo {
	claims, err := pki.Verify(tok, &sv.saKey.PublicKey)
	if err != nil {
		return nil
	}
	if claims["iss"] != sv.issuer {
		return nil
	}
	now := time.Now().Unix()
	num := func(k string) (int64, bool) {
		n, ok := claims[k].(json.Number)
		if !ok {
			return 0, false
		}
		v, err := n.Int64()
		return v, err == nil
	}
	if exp, ok := num("exp"); !ok || now > exp {
		return nil
	}
	if nbf, ok := num("nbf"); ok && now+60 < nbf {
		return nil
	}
	audOK := false
	switch a := claims["aud"].(type) {
	case string:
		audOK = contains(sv.apiAudiences(), a)
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && contains(sv.apiAudiences(), s) {
				audOK = true
			}
		}
	}
	if !audOK {
		return nil
	}
	sub, _ := claims["sub"].(string)
	rest, ok := strings.CutPrefix(sub, "system:serviceaccount:")
	if !ok {
		return nil
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok || ns == "" || name == "" {
		return nil
	}
	k8s, _ := claims["kubernetes.io"].(map[string]any)
	claimUID := ""
	if sa, ok := k8s["serviceaccount"].(map[string]any); ok {
		claimUID, _ = sa["uid"].(string)
	}
	if !sv.lenientSA {
		sa := sv.store.get(sv.res["/serviceaccounts"], ns, name)
		if sa == nil || getStr(sa, "metadata", "uid") != claimUID {
			return nil
		}
		// a token bound to a secret dies with it
		if sec, ok := k8s["secret"].(map[string]any); ok {
			so := sv.store.get(sv.res["/secrets"], ns, fmt.Sprint(sec["name"]))
			if so == nil || getStr(so, "metadata", "uid") != sec["uid"] {
				return nil
			}
		}
	}
	return &userInfo{Name: sub, UID: claimUID, Via: "serviceaccount",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
}

// tokenRequest serves POST .../serviceaccounts/NAME/token.
func (sv *Server) tokenRequest(ns, name string, body []byte) (Obj, *apiError) {
	req, err := decodeObj(body)
	if err != nil {
		return nil, errBadRequest(fmt.Sprintf("the object provided is unrecognized (must be of type TokenRequest): %v (%s)", err, summarize(body)))
	}
	if av, _ := req["apiVersion"].(string); av != "" && av != "authentication.k8s.io/v1" {
		return nil, errBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (authentication.k8s.io/v1)", av))
	}
	md := getMap(req, "metadata")
	if n := getStr(md, "name"); n != "" && n != name {
		return nil, errInvalid("authentication.k8s.io", "TokenRequest", name, []fieldErr{fieldInvalid("metadata.name", n, "must match the service account name if specified")})
	}
	if n := getStr(md, "namespace"); n != "" && n != ns {
		return nil, errInvalid("authentication.k8s.io", "TokenRequest", name, []fieldErr{fieldInvalid("metadata.namespace", n, "must match the service account namespace if specified")})
	}
	spec := ensureMap(req, "spec")
	exp := int64(3600)
	if v, ok := getInt(spec, "expirationSeconds"); ok {
		exp = v
	}
	auds := strList(spec["audiences"])
	if len(auds) == 0 {
		auds = sv.apiAudiences()
	}
	var errs []fieldErr
	if exp < 600 {
		errs = append(errs, fieldInvalid("spec.expirationSeconds", exp, "may not specify a duration less than 10 minutes"))
	}
	if exp > 1<<32 {
		errs = append(errs, fieldInvalid("spec.expirationSeconds", exp, "may not specify a duration larger than 2^32 seconds"))
	}
	if len(errs) > 0 {
		return nil, errInvalid("authentication.k8s.io", "TokenRequest", "", errs)
	}
	sa := sv.store.get(sv.res["/serviceaccounts"], ns, name)
	if sa == nil {
		return nil, errNotFound("", "serviceaccounts", name)
	}
	now := time.Now()
	k8s := map[string]any{"namespace": ns,
		"serviceaccount": map[string]any{"name": name, "uid": getStr(sa, "metadata", "uid")}}
	if ref := getMap(spec, "boundObjectRef"); ref != nil {
		kind := getStr(ref, "kind")
		refName := getStr(ref, "name")
		switch kind {
		case "Secret":
			so := sv.store.get(sv.res["/secrets"], ns, refName)
			if so == nil {
				return nil, errNotFound("", "secrets", refName)
			}
			uid := getStr(so, "metadata", "uid")
			if u := getStr(ref, "uid"); u != "" && u != uid {
				return nil, errConflict("", "secrets", refName, fmt.Sprintf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", u))
			}
			k8s["secret"] = map[string]any{"name": refName, "uid": uid}
		case "Pod":
			return nil, errNotFound("", "pods", refName)
		case "Node":
			return nil, errNotFound("", "nodes", refName)
		default:
			return nil, errInvalid("authentication.k8s.io", "TokenRequest", name, []fieldErr{fieldNotSupported("spec.boundObjectRef.kind", kind, []string{"Pod", "Node", "Secret"})})
		}
	}
	claims := map[string]any{
		"aud": auds, "exp": now.Unix() + exp, "iat": now.Unix(), "nbf": now.Unix(),
		"iss": sv.issuer, "jti": newUID(), "kubernetes.io": k8s,
		"sub": "system:serviceaccount:" + ns + ":" + name,
	}
	tok, serr := signJWT(sv.saKey, claims)
	if serr != nil {
		return nil, errInternal(serr.Error())
	}
	// the real answer's metadata: the service account's name, namespace and
	// uid, and the time of the request
	md = copyObj(md)
	if md == nil {
		md = Obj{}
	}
	md["name"], md["namespace"], md["uid"] = name, ns, getStr(sa, "metadata", "uid")
	md["creationTimestamp"] = now.UTC().Format(time.RFC3339)
	out := Obj{"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": md,
		"spec":   Obj{"audiences": toAny(auds), "expirationSeconds": exp, "boundObjectRef": spec["boundObjectRef"]},
		"status": Obj{"token": tok, "expirationTimestamp": now.Add(time.Duration(exp) * time.Second).UTC().Format(time.RFC3339)}}
	return normalize(out).(Obj), nil
}

func toAny(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// apiAudiences is kube-apiserver's --api-audiences (default: the issuer).
func (sv *Server) apiAudiences() []string {
	if len(sv.audiences) > 0 {
		return sv.audiences
	}
	return []string{sv.issuer}
}

// anonymousAllowed is what the default RBAC lets system:anonymous see.
func anonymousAllowed(path string) bool {
	switch path {
	case "/version", "/version/", "/healthz", "/livez", "/readyz",
		"/.well-known/openid-configuration", "/openid/v1/jwks":
		return true
	}
	return false
}

// serveOIDC serves the service account issuer discovery documents.
func (sv *Server) serveOIDC(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		writeJSONType(w, r, 200, Obj{"issuer": sv.issuer, "jwks_uri": strings.TrimSuffix(sv.issuer, "/") + "/openid/v1/jwks",
			"response_types_supported": []any{"id_token"}, "subject_types_supported": []any{"public"},
			"id_token_signing_alg_values_supported": []any{"RS256"}}, "application/json")
		return true
	case "/openid/v1/jwks":
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(pki.JWKS(&sv.saKey.PublicKey))
		return true
	}
	return false
}

// signJWT signs as kube-apiserver's token generator does: header
// {"alg":"RS256","kid":...} (no "typ"), kid as pki.KeyID derives it.
func signJWT(key *rsa.PrivateKey, claims map[string]any) (string, error) {
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": pki.KeyID(&key.PublicKey)})
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	in := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
