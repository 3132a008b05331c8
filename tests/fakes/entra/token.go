package entra

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"time"

	"pgtoken-rotator/tests/fakes/pki"
)

// aadError is an error of the Entra token service: HTTP status, OAuth error
// string, AADSTS code and message.
type aadError struct {
	status int
	err    string
	code   int
	msg    string
}

func badRequest(code int, msg string, args ...any) *aadError {
	return &aadError{http.StatusBadRequest, "invalid_request", code, fmt.Sprintf(msg, args...)}
}

func invalidClient(code int, msg string, args ...any) *aadError {
	return &aadError{http.StatusUnauthorized, "invalid_client", code, fmt.Sprintf(msg, args...)}
}

func missingParam(name string) *aadError {
	return badRequest(900144, "The request body must contain the following parameter: '%s'.", name)
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// entraHeaders sets the headers Entra puts on every answer and returns the
// trace and correlation ids. Entra takes the correlation id from the
// client-request-id header, and echoes it when return-client-request-id is
// true.
func entraHeaders(w http.ResponseWriter, r *http.Request) (trace, corr string) {
	trace = newGUID()
	corr = r.Header.Get("client-request-id")
	if !guidRE.MatchString(corr) {
		corr = newGUID()
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("x-ms-request-id", trace)
	if strings.EqualFold(r.Header.Get("return-client-request-id"), "true") {
		h.Set("client-request-id", corr)
	}
	return trace, corr
}

// writeAADError sends an error in Entra's format:
// {"error","error_description":"AADSTSn: msg\r\nTrace ID: ...\r\nCorrelation
// ID: ...\r\nTimestamp: ...","error_codes":[n],"timestamp","trace_id",
// "correlation_id","error_uri"}.
func (s *Server) writeAADError(w http.ResponseWriter, r *http.Request, rec *Record, e *aadError) {
	trace, corr := entraHeaders(w, r)
	ts := s.now().UTC().Format("2006-01-02 15:04:05Z")
	rec.Error, rec.ErrorCode = e.err, e.code
	writeJSON(w, e.status, aadErrorBody{
		Error: e.err,
		Description: fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			e.code, e.msg, trace, corr, ts),
		Codes:         []int{e.code},
		Timestamp:     ts,
		TraceID:       trace,
		CorrelationID: corr,
		URI:           fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", e.code),
	})
}

// aadErrorBody is an Entra error answer, fields in Entra's order.
type aadErrorBody struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	Codes         []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
	URI           string `json:"error_uri"`
}

// tokenBody is a token endpoint answer, fields in Entra's order.
type tokenBody struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	ExtExpiresIn int    `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
}

func tenantMatches(cfg *Config, tenant string) bool {
	return strings.EqualFold(tenant, cfg.TenantID)
}

func tenantNotFound(tenant string) *aadError {
	return badRequest(90002, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenant)
}

const (
	jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	wifDocs   = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
)

// handleToken is POST /{tenant}/oauth2/v2.0/token: the client credentials
// grant with a federated client assertion.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request, rec *Record, tenant string) {
	cfg := s.config()
	if !tenantMatches(cfg, tenant) {
		s.writeAADError(w, r, rec, tenantNotFound(tenant))
		return
	}
	if r.Method != http.MethodPost {
		s.writeAADError(w, r, rec, badRequest(900561, "The endpoint only accepts POST, OPTIONS requests. Received a %s request.", r.Method))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		rec.Detail = err.Error()
		s.writeAADError(w, r, rec, badRequest(90023, "The authentication service request is not valid."))
		return
	}
	recordForm(rec, r)
	res, app, e := s.exchange(r, cfg, rec)
	if e != nil {
		s.writeAADError(w, r, rec, e)
		return
	}
	lifetime := cfg.tokenLifetime()
	if cfg.TokenLifetimeJitterS > 0 {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(cfg.TokenLifetimeJitterS)+1))
		lifetime += int(n.Int64())
	}
	tok, err := s.issue(cfg, rec, res, app.ClientID, app.ObjectID, "", lifetime)
	if err != nil {
		rec.Detail = err.Error()
		s.writeAADError(w, r, rec, &aadError{http.StatusInternalServerError, "server_error", 50000, "There was an error issuing a token."})
		return
	}
	entraHeaders(w, r)
	writeJSON(w, http.StatusOK, tokenBody{"Bearer", lifetime, lifetime, tok})
}

// exchange validates a client credentials request and returns the resource
// and the application, or the error Entra would give.
func (s *Server) exchange(r *http.Request, cfg *Config, rec *Record) (string, *App, *aadError) {
	f := r.PostForm
	grant := f.Get("grant_type")
	if grant == "" {
		return "", nil, missingParam("grant_type")
	}
	if grant != "client_credentials" {
		rec.Detail = "the fake supports only client_credentials"
		return "", nil, &aadError{http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'.", grant)}
	}
	clientID := f.Get("client_id")
	if clientID == "" {
		return "", nil, missingParam("client_id")
	}
	if f.Get("scope") == "" {
		return "", nil, missingParam("scope")
	}
	app := cfg.app(clientID)
	if app == nil {
		return "", nil, &aadError{http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf(
			"Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
			clientID, cfg.tenantName())}
	}
	resource, e := scopeResource(f.Get("scope"))
	if e != nil {
		return "", nil, e
	}
	if !cfg.resourceAllowed(resource) {
		return "", nil, &aadError{http.StatusBadRequest, "invalid_resource", 500011, fmt.Sprintf(
			"The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
			resource, cfg.tenantName())}
	}
	if f.Get("client_secret") != "" {
		return "", nil, invalidClient(7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)
	}
	assertion, atype := f.Get("client_assertion"), f.Get("client_assertion_type")
	switch {
	case assertion == "" && atype == "":
		return "", nil, invalidClient(7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	case assertion == "":
		return "", nil, missingParam("client_assertion")
	case atype == "":
		return "", nil, missingParam("client_assertion_type")
	case atype != jwtBearer:
		return "", nil, badRequest(90011, "Unexpected client assertion type.")
	}
	if e := s.checkAssertion(r, cfg, app, assertion, rec); e != nil {
		return "", nil, e
	}
	return resource, app, nil
}

// Scopes an OpenID client may add that name no resource.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "offline_access": true, "email": true}

// scopeResource turns the client credentials scope into the resource: every
// scope must be "<resource>/.default" and name the same resource.
func scopeResource(scope string) (string, *aadError) {
	var resource string
	for _, sc := range strings.Fields(scope) {
		if oidcScopes[sc] {
			continue
		}
		res, ok := strings.CutSuffix(sc, "/.default")
		if !ok {
			return "", &aadError{http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf(
				"The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", sc)}
		}
		if res == "" {
			return "", &aadError{http.StatusBadRequest, "invalid_scope", 70011, fmt.Sprintf(
				"The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", sc)}
		}
		if resource != "" && res != resource {
			return "", &aadError{http.StatusBadRequest, "invalid_scope", 700022,
				"The provided value for the input parameter scope is not valid because it contains more than one resource."}
		}
		resource = res
	}
	if resource == "" {
		return "", &aadError{http.StatusBadRequest, "invalid_scope", 70011, fmt.Sprintf(
			"The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", scope)}
	}
	return resource, nil
}

// audiences reads a JWT aud claim (a string or a list of strings).
func audiences(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func numClaim(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	return int64(f), err == nil
}

func aadTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

// checkAssertion validates a federated client assertion the way Entra does:
// find the app's federated credentials for the token's issuer, subject and
// audience, verify the signature with the issuer's published keys, and
// check its validity period.
func (s *Server) checkAssertion(r *http.Request, cfg *Config, app *App, assertion string, rec *Record) *aadError {
	malformed := invalidClient(50027, "JWT token is invalid or malformed.")
	d := decodeJWT(assertion)
	if d.Error != "" {
		rec.Detail = d.Error
		return malformed
	}
	if alg, _ := d.Header["alg"].(string); alg != "RS256" {
		rec.Detail = fmt.Sprintf("alg %q: the fake accepts RS256 only", alg)
		return malformed
	}
	iss, _ := d.Claims["iss"].(string)
	sub, _ := d.Claims["sub"].(string)
	auds := audiences(d.Claims["aud"])
	if iss == "" || sub == "" || len(auds) == 0 {
		rec.Detail = "assertion lacks iss, sub or aud"
		return malformed
	}
	if e := matchFederated(cfg, app, iss, sub, auds); e != nil {
		return e
	}

	is := cfg.issuer(iss)
	oidcFailed := badRequest(90061, "Request to External OIDC endpoint failed.")
	if is == nil {
		rec.Detail = fmt.Sprintf("issuer %s is not among the fake's issuers", iss)
		return oidcFailed
	}
	kid, _ := d.Header["kid"].(string)
	keys, err := s.keys.keys(r.Context(), is, false)
	if err == nil {
		err = verifyWith(assertion, kid, keys)
		if errors.Is(err, errUnknownKid) && (is.JWKSURL != "" || is.OIDCDiscovery) {
			// A key this new may have been published since the last fetch.
			if keys, err = s.keys.keys(r.Context(), is, true); err == nil {
				err = verifyWith(assertion, kid, keys)
			}
		}
		switch {
		case errors.Is(err, errUnknownKid):
			rec.Detail = "no published key has kid " + kid
			return invalidClient(7000272, "The certificate with identifier %s used to sign the federated credential could not be found in the metadata of identity provider %s. Please validate that your Identity Provider's metadata exposes the key used to sign the incoming token.", kid, iss)
		case err != nil:
			rec.Detail = err.Error()
			return invalidClient(700027, "Client assertion failed signature validation.")
		}
	} else {
		rec.Detail = "fetching keys: " + err.Error()
		return oidcFailed
	}

	now := s.now()
	skew := time.Duration(cfg.ClockSkewS) * time.Second
	exp, ok := numClaim(d.Claims["exp"])
	if !ok {
		rec.Detail = "assertion has no exp"
		return malformed
	}
	from := time.Unix(0, 0)
	if nbf, ok := numClaim(d.Claims["nbf"]); ok {
		from = time.Unix(nbf, 0)
	}
	expT := time.Unix(exp, 0)
	if now.After(expT.Add(skew)) || now.Add(skew).Before(from) {
		return invalidClient(700024, "Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
			aadTime(now), aadTime(from), aadTime(expT))
	}
	return nil
}

// matchFederated finds a federated credential of app for the assertion's
// issuer, subject and audiences (exact, case-sensitive comparison).
func matchFederated(cfg *Config, app *App, iss, sub string, auds []string) *aadError {
	var byIss, bySub []FederatedCredential
	for _, fc := range app.FederatedCredentials {
		if fc.Issuer == iss {
			byIss = append(byIss, fc)
		}
	}
	for _, fc := range byIss {
		if fc.Subject == sub {
			bySub = append(bySub, fc)
		}
	}
	found := false
	for _, fc := range bySub {
		for _, want := range fc.Audiences {
			for _, got := range auds {
				found = found || want == got
			}
		}
	}
	if found {
		return nil
	}
	aud := strings.Join(auds, ",")
	if cfg.FederationErrors == "legacy" {
		return badRequest(70021, "No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'. %s", iss, sub, aud, wifDocs)
	}
	const check = "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. " + wifDocs
	switch {
	case len(byIss) == 0:
		return invalidClient(700211, "No matching federated identity record found for presented assertion issuer '%s'. %s", iss, check)
	case len(bySub) == 0:
		return invalidClient(700213, "No matching federated identity record found for presented assertion subject '%s'. %s", sub, check)
	default:
		return invalidClient(700212, "No matching federated identity record found for presented assertion audience '%s'. %s", aud, check)
	}
}

// issue signs an access token (a v1.0 app-only token, the kind Azure
// Database for PostgreSQL receives) and records its claims and hash.
func (s *Server) issue(cfg *Config, rec *Record, resource, appID, objectID, miResourceID string, lifetime int) (string, error) {
	now := s.now().Unix() + int64(cfg.ClockOffsetS)
	iat := now - int64(cfg.backdate())
	tid := cfg.TenantID
	iss := "https://sts.windows.net/" + tid + "/"
	claims := map[string]any{
		"aud":      resource,
		"iss":      iss,
		"iat":      iat,
		"nbf":      iat,
		"exp":      now + int64(lifetime),
		"aio":      randomB64(48),
		"appid":    appID,
		"appidacr": "2",
		"idp":      iss,
		"idtyp":    "app",
		"oid":      objectID,
		"rh":       "0." + randomB64(60) + ".",
		"sub":      objectID,
		"tid":      tid,
		"uti":      randomB64(16),
		"ver":      "1.0",
	}
	if miResourceID != "" {
		claims["xms_mirid"] = miResourceID
	}
	tok, err := pki.Sign(s.idpKey, claims)
	if err != nil {
		return "", err
	}
	rec.Issued = &IssuedToken{SHA256: TokenSHA256(tok), Claims: claims}
	s.remember(rec.Endpoint, tok)
	return tok, nil
}
