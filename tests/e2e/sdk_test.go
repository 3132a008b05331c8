package e2e

// The real Azure SDKs (pinned in tests/sdk: azure-identity for Python,
// @azure/identity for node) against the same fake Entra ID and IMDS as the
// controller, with the environment the controller gets:
//
//   - each SDK's token logs in to the token-validating PostgreSQL: the fake's
//     answers are what the SDKs parse, and the whole chain works;
//   - the token requests the SDKs send are compared field by field with the
//     controller's (and the IMDS requests likewise); the comparison tables are
//     printed with t.Logf, never a token.
//
// tests/sdk/run.sh installs the SDKs and runs these tests (PGTR_SDK=1); in a
// plain `go test ./e2e` they are skipped.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"pgtoken-rotator/tests/stack"
)

const (
	sdkScope = stack.DBAudience + "/.default"

	// A user-assigned managed identity added to the fake for the IMDS tests.
	sdkMIClient = "5dc0ffee-7a1b-4c2d-8e3f-1234567890ab"
	sdkMIOID    = "6e0b1ec7-0d1e-4f20-9a3b-abcdefabcdef"
	sdkMIResID  = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/sdk/providers/Microsoft.ManagedIdentity/userAssignedIdentities/sdk-mi"
	sdkMIRole   = "sdk-managed-identity"
	sdkMIDB     = "sdkmi"
)

// sdkPeer is one way applications get a token with a real Azure SDK: a
// credential of tests/sdk/sdk_token.py or tests/sdk/sdk_token.js.
type sdkPeer struct {
	name, lang, cred, what string
}

// Workload identity, configured by the environment the AKS webhook injects.
var sdkWorkloadPeers = []sdkPeer{
	{"py-wi", "python", "workload", "azure-identity WorkloadIdentityCredential(), environment only"},
	{"py-default", "python", "default", "azure-identity DefaultAzureCredential(), environment only"},
	{"py-default-aio", "python", "default-aio",
		"azure.identity.aio DefaultAzureCredential(), environment only (what prefect-azure builds)"},
	{"node-wi", "node", "workload",
		"@azure/identity WorkloadIdentityCredential({disableInstanceDiscovery: true}), otherwise environment"},
}

// Managed identity through IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST).
var sdkManagedPeers = []sdkPeer{
	{"py-mi", "python", "managed", "azure-identity ManagedIdentityCredential(client_id=...) (MSAL)"},
	{"py-mi-aio", "python", "managed-aio", "azure.identity.aio ManagedIdentityCredential(client_id=...)"},
	{"node-mi", "node", "managed", "@azure/identity ManagedIdentityCredential({clientId})"},
}

// Token-request form fields an SDK may send that the controller does not.
// Entra documents the client-credentials request with a federated (or
// certificate) assertion as six required parameters: the tenant in the path,
// client_id, scope, client_assertion_type, client_assertion and grant_type
// (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
// "Second case: Access token request with a certificate"); nothing else is
// required. The fields below are MSAL's own additions, which Entra accepts and
// does not need. Any other extra field fails the test until it is understood
// and listed here.
var sdkOptionalFormFields = map[string]string{
	"client-request-id": "MSAL: the request's correlation GUID (Entra logs it and returns it as " +
		"correlation_id); the controller lets Entra pick one",
	"x-client-SKU":               "MSAL telemetry: library name (msal.js.node)",
	"x-client-VER":               "MSAL telemetry: library version",
	"x-client-OS":                "MSAL telemetry: operating system",
	"x-client-CPU":               "MSAL telemetry: CPU architecture",
	"x-client-current-telemetry": "MSAL server telemetry: schema version, API id, cache status",
	"x-client-last-telemetry":    "MSAL server telemetry: errors of earlier requests",
	"x-ms-lib-capability": "MSAL capability flag 'retry-after, h429': tells Entra the client " +
		"honours Retry-After on 429 (the controller does, without saying so)",
	"x_client_os": "MSAL telemetry (some versions spell it this way)",
	"client_info": "asks Entra to add client_info (user identifiers) to the answer; " +
		"meaningful for user flows only",
	"claims": "claims request / client capabilities (CAE 'cp1'): only when the application opts in",
}

// Query parameters an SDK may put on the token request's URL.
var sdkOptionalTokenQuery = map[string]string{
	"client-request-id": "msal-node repeats the correlation GUID in the URL (see the form field)",
}

// IMDS query parameters an SDK may send that the controller does not.
var sdkOptionalIMDSQuery = map[string]string{}

func sdkOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("PGTR_SDK") != "1" {
		t.Skip("the real Azure SDKs run from tests/sdk/run.sh (it installs them and sets PGTR_SDK=1)")
	}
}

func sdkEnvOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// sdkBaseEnv is this process's environment without anything that would point
// an SDK elsewhere (Azure settings, proxies, CA bundles), trusting the pki CA.
func sdkBaseEnv(pkiDir string) []string {
	drop := func(k string) bool {
		u := strings.ToUpper(k)
		for _, p := range []string{"AZURE_", "IDENTITY_", "MSI_", "IMDS_", "MSAL_"} {
			if strings.HasPrefix(u, p) {
				return true
			}
		}
		switch u {
		case "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
			"SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "NODE_OPTIONS", "NODE_TLS_REJECT_UNAUTHORIZED",
			"PYTHONPATH", "PYTHONHOME":
			return true
		}
		return false
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop(k) {
			env = append(env, kv)
		}
	}
	ca := filepath.Join(pkiDir, "ca.crt")
	return append(env, "REQUESTS_CA_BUNDLE="+ca, "SSL_CERT_FILE="+ca, "NODE_EXTRA_CA_CERTS="+ca,
		"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
}

type sdkToken struct {
	Credential string `json:"credential"`
	Token      string `json:"token"`
	ExpiresOn  int64  `json:"expires_on"`
}

// sdkRun gets a token with one SDK peer in env (added to sdkBaseEnv); t logs.
func (w *world) sdkRun(t *testing.T, p sdkPeer, env []string) (*sdkToken, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	switch p.lang {
	case "python":
		py := sdkEnvOr("PGTR_SDK_PYTHON", filepath.Join(w.s.Root, ".venv-sdk/bin/python"))
		cmd = exec.CommandContext(ctx, py, filepath.Join(w.s.Root, "tests/sdk/sdk_token.py"), p.cred, sdkScope)
	case "node":
		dir := sdkEnvOr("PGTR_SDK_NODE_DIR", filepath.Join(w.s.Root, "tests/sdk"))
		cmd = exec.CommandContext(ctx, "node", filepath.Join(dir, "sdk_token.js"), p.cred, sdkScope)
		cmd.Dir = dir
	default:
		return nil, fmt.Errorf("unknown language %q", p.lang)
	}
	cmd.Env = append(sdkBaseEnv(w.s.PKI), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	w.checkNoLeak(stderr.String(), p.name+" stderr")
	if err != nil {
		return nil, fmt.Errorf("%s [%s]: %v: %s", p.name, p.what, err, redact(strings.TrimSpace(stderr.String())))
	}
	var tok sdkToken
	if err := json.Unmarshal(stdout.Bytes(), &tok); err != nil || tok.Token == "" {
		return nil, fmt.Errorf("%s printed no token (%d bytes on stdout)", p.name, stdout.Len())
	}
	t.Logf("%s: %s returned a %d-byte token in %v", p.name, tok.Credential, len(tok.Token),
		time.Since(start).Round(time.Millisecond))
	return &tok, nil
}

// sdkLogin logs in to the stack's PostgreSQL as role with token as the password.
func (w *world) sdkLogin(role, db, token string) error {
	user, err := w.psql(fmt.Sprintf("postgresql://%s:%s@localhost:%d/%s?sslmode=verify-full",
		url.PathEscape(role), token, w.s.PGPort, db))
	if err != nil {
		return err
	}
	if user != role {
		return fmt.Errorf("logged in as %q, want %q", user, role)
	}
	return nil
}

// sdkRecord is what the fake recorded of one request (GET /_fake/requests).
type sdkRecord struct {
	Seq        int64             `json:"seq"`
	Endpoint   string            `json:"endpoint"`
	Method     string            `json:"method"`
	Path       string            `json:"path"`
	Query      map[string]string `json:"query"`
	Headers    map[string]string `json:"headers"`
	FormFields []string          `json:"form_fields"`
	Form       map[string]string `json:"form"`
	Assertion  *struct {
		Header map[string]any `json:"header"`
		Claims map[string]any `json:"claims"`
		Error  string         `json:"error"`
	} `json:"client_assertion"`
	Status    int    `json:"status"`
	Error     string `json:"error"`
	ErrorCode int    `json:"error_code"`
	Detail    string `json:"detail"`
	Issued    *struct {
		SHA256 string         `json:"sha256"`
		Claims map[string]any `json:"claims"`
	} `json:"issued"`
}

func (r *sdkRecord) String() string {
	s := fmt.Sprintf("#%d %s %s %s -> %d", r.Seq, r.Endpoint, r.Method, r.Path, r.Status)
	if r.Error != "" {
		s += fmt.Sprintf(" %s AADSTS%d %s", r.Error, r.ErrorCode, r.Detail)
	}
	return s
}

// sdkRecords returns the requests the fake recorded after sequence number since.
func (w *world) sdkRecords(since int64) []sdkRecord {
	w.t.Helper()
	var recs []sdkRecord
	w.entraJSON("GET", fmt.Sprintf("requests?since=%d", since), nil, &recs)
	return recs
}

func sdkLastSeq(recs []sdkRecord, since int64) int64 {
	for _, r := range recs {
		if r.Seq > since {
			since = r.Seq
		}
	}
	return since
}

// sdkClient is one client's requests for the comparison: the request that got
// the token (token endpoint or IMDS) and the others it made.
type sdkClient struct {
	name, what string
	req        *sdkRecord
	others     []sdkRecord
}

// sdkSplit finds the one request of endpoint sent by an SDK (User-Agent
// azsdk-..., which tells it from the controller's own) and the SDK's others.
func sdkSplit(recs []sdkRecord, endpoint string) (got, others []sdkRecord) {
	for _, r := range recs {
		if !strings.HasPrefix(r.Headers["User-Agent"], "azsdk-") {
			continue
		}
		if r.Endpoint == endpoint {
			got = append(got, r)
		} else {
			others = append(others, r)
		}
	}
	return got, others
}

func sdkTokenSHA(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// sdkCheckIssued checks that the token an SDK returned is the one the fake
// issued for its request, and that its lifetime was read right.
func sdkCheckIssued(t *testing.T, name string, r *sdkRecord, tok *sdkToken) {
	t.Helper()
	if r.Status != 200 || r.Issued == nil {
		t.Errorf("%s: the fake answered %s", name, r)
		return
	}
	if r.Issued.SHA256 != sdkTokenSHA(tok.Token) {
		t.Errorf("%s: the token the SDK returned is not the one the fake issued", name)
	}
	exp, _ := r.Issued.Claims["exp"].(float64)
	if d := tok.ExpiresOn - int64(exp); d < -300 || d > 300 {
		t.Errorf("%s: the SDK says the token expires at %d, its exp is %d", name, tok.ExpiresOn, int64(exp))
	}
}

func sdkFederatedClaims(t *testing.T, file string) (header, claims map[string]any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimSpace(string(b)), ".")
	if len(parts) != 3 {
		t.Fatalf("%s is not a JWT", file)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func sdkMediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}

func sdkKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sdkOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// sdkTable prints rows (label + one cell per client) as an aligned table.
func sdkTable(t *testing.T, title string, clients []sdkClient, rows [][]string) {
	t.Helper()
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	head := []string{""}
	for _, c := range clients {
		head = append(head, c.name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	tw.Flush()
	legend := ""
	for _, c := range clients {
		legend += fmt.Sprintf("  %s = %s\n", c.name, c.what)
	}
	t.Logf("%s\n%s%s", title, legend, redact(b.String()))
}

// sdkRow makes a table row from a label and a cell function.
func sdkRow(label string, clients []sdkClient, cell func(c sdkClient) string) []string {
	row := []string{label}
	for _, c := range clients {
		row = append(row, cell(c))
	}
	return row
}

func sdkOthers(c sdkClient) string {
	var s []string
	for _, o := range c.others {
		s = append(s, fmt.Sprintf("%s %s %d", o.Method, o.Endpoint, o.Status))
	}
	return sdkOr(strings.Join(s, ", "), "-")
}

// sdkHeaderRows are rows for every header any client sent.
func sdkHeaderRows(clients []sdkClient) [][]string {
	seen := map[string]bool{}
	for _, c := range clients {
		for k := range c.req.Headers {
			seen[k] = true
		}
	}
	var names []string
	for k := range seen {
		names = append(names, k)
	}
	sort.Strings(names)
	var rows [][]string
	for _, h := range names {
		h := h
		rows = append(rows, sdkRow("header "+h, clients, func(c sdkClient) string {
			v, ok := c.req.Headers[h]
			if !ok {
				return "-"
			}
			if strings.EqualFold(h, "x-ms-client-request-id") || strings.EqualFold(h, "client-request-id") {
				return "<guid>"
			}
			if strings.EqualFold(h, "User-Agent") { // without the platform comment
				if i := strings.Index(v, " ("); i > 0 {
					v = v[:i]
				}
			}
			return v
		}))
	}
	return rows
}

// sdkCompareToken compares the SDKs' token requests with the controller's
// (clients[0]) and prints the table.
func sdkCompareToken(t *testing.T, s *stack.Stack, clients []sdkClient) {
	t.Helper()
	ref := clients[0].req
	fedHeader, fedClaims := sdkFederatedClaims(t, s.FederatedTokenFile)
	if ref.Assertion == nil || !reflect.DeepEqual(ref.Assertion.Claims, fedClaims) ||
		!reflect.DeepEqual(ref.Assertion.Header, fedHeader) {
		t.Errorf("controller: its client_assertion is not the federated token file's JWT")
	}
	valued := []string{"client_id", "scope", "grant_type", "client_assertion_type"}
	refFields := map[string]bool{}
	for _, f := range ref.FormFields {
		refFields[f] = true
	}
	sentBy := map[string]int{} // controller field -> SDKs sending it
	extras := map[string][]string{}
	for _, c := range clients[1:] {
		r := c.req
		if r.Method != ref.Method {
			t.Errorf("%s: method %s, the controller's %s", c.name, r.Method, ref.Method)
		}
		if r.Path != ref.Path {
			t.Errorf("%s: path %s, the controller's %s", c.name, r.Path, ref.Path)
		}
		for k, v := range r.Query {
			if rv, ok := ref.Query[k]; ok && rv != v {
				t.Errorf("%s: query %s=%q, the controller's %q", c.name, k, v, rv)
			} else if !ok && sdkOptionalTokenQuery[k] == "" {
				t.Errorf("%s: sends query parameter %s, not in the allow-list (sdkOptionalTokenQuery)", c.name, k)
			}
		}
		for k := range ref.Query {
			if _, ok := r.Query[k]; !ok {
				t.Errorf("%s: does not send the controller's query parameter %s", c.name, k)
			}
		}
		if a, b := sdkMediaType(r.Headers["Content-Type"]), sdkMediaType(ref.Headers["Content-Type"]); a != b {
			t.Errorf("%s: content type %s, the controller's %s", c.name, a, b)
		}
		fields := map[string]bool{}
		for _, f := range r.FormFields {
			fields[f] = true
			if refFields[f] {
				sentBy[f]++
			} else if sdkOptionalFormFields[f] == "" {
				t.Errorf("%s: sends form field %s, which the controller does not and which is not in "+
					"the allow-list of optional fields (sdkOptionalFormFields)", c.name, f)
			} else {
				extras[f] = append(extras[f], c.name)
			}
		}
		for _, k := range valued {
			if fields[k] && r.Form[k] != ref.Form[k] {
				t.Errorf("%s: %s=%q, the controller's %q", c.name, k, r.Form[k], ref.Form[k])
			}
		}
		if fields["client_assertion"] && (r.Assertion == nil ||
			!reflect.DeepEqual(r.Assertion.Claims, ref.Assertion.Claims) ||
			!reflect.DeepEqual(r.Assertion.Header, ref.Assertion.Header)) {
			t.Errorf("%s: client_assertion is not the controller's federated token", c.name)
		}
	}
	for _, f := range ref.FormFields {
		switch n := sentBy[f]; {
		case n == 0:
			t.Errorf("the controller sends form field %s, which no SDK sends", f)
		case n < len(clients)-1:
			t.Logf("note: form field %s is sent by the controller and %d of %d SDKs", f, n, len(clients)-1)
		}
	}

	tenant := func(p string) string { return strings.Replace(p, stack.TenantID, "{tenant}", 1) }
	rows := [][]string{
		sdkRow("other requests", clients, sdkOthers),
		sdkRow("method", clients, func(c sdkClient) string { return c.req.Method }),
		sdkRow("path", clients, func(c sdkClient) string { return tenant(c.req.Path) }),
		sdkRow("query", clients, func(c sdkClient) string {
			return sdkOr(strings.Join(sdkKeys(c.req.Query), ","), "-")
		}),
		sdkRow("content type", clients, func(c sdkClient) string { return c.req.Headers["Content-Type"] }),
	}
	for _, f := range ref.FormFields {
		f := f
		rows = append(rows, sdkRow("form "+f, clients, func(c sdkClient) string {
			if !sdkHas(c.req.FormFields, f) {
				return "-"
			}
			if f == "client_assertion" {
				if c.req.Assertion == nil || !reflect.DeepEqual(c.req.Assertion.Claims, fedClaims) {
					return "DIFFERENT JWT"
				}
				return "the federated token"
			}
			return c.req.Form[f]
		}))
	}
	for _, f := range sdkKeys(sdkMap(extras)) {
		f := f
		rows = append(rows, sdkRow("form "+f+" (extra)", clients, func(c sdkClient) string {
			if !sdkHas(c.req.FormFields, f) {
				return "-"
			}
			if f == "client-request-id" {
				return "<guid>"
			}
			return sdkOr(c.req.Form[f], "<sent>")
		}))
	}
	rows = append(rows, sdkHeaderRows(clients)...)
	rows = append(rows, sdkRow("status", clients, func(c sdkClient) string { return fmt.Sprint(c.req.Status) }))
	sdkTable(t, fmt.Sprintf("token requests: the controller and the Azure SDKs (the fake's records; "+
		"the federated token is the file's JWT: iss %v, sub %v)", fedClaims["iss"], fedClaims["sub"]), clients, rows)
	for _, f := range sdkKeys(sdkMap(extras)) {
		t.Logf("allowed extra form field %s (sent by %s): %s", f, strings.Join(extras[f], ", "),
			sdkOptionalFormFields[f])
	}
}

func sdkHas(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sdkMap(m map[string][]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = strings.Join(v, ",")
	}
	return out
}

// 1. The SDKs' workload identity credentials get a token from the fake Entra
// with the controller's environment, and it logs in.
func TestSDKWorkloadIdentityLogin(t *testing.T) {
	sdkOnly(t)
	w := newWorld(t, stack.Options{})
	for _, p := range sdkWorkloadPeers {
		p := p
		t.Run(p.name, func(t *testing.T) {
			tok, err := w.sdkRun(t, p, w.s.ControllerEnv())
			if err != nil {
				t.Fatal(err)
			}
			if err := w.sdkLogin(stack.ControllerRole, "app", tok.Token); err != nil {
				t.Fatalf("%s: login with the SDK's token: %v", p.name, err)
			}
		})
	}
}

// 2. ManagedIdentityCredential gets a token from the fake IMDS for a
// user-assigned identity, and it logs in as that identity's role. The
// controller (--identity-source imds) asks IMDS the same way.
func TestSDKManagedIdentityLogin(t *testing.T) {
	sdkOnly(t)
	w := newWorld(t, stack.Options{})
	w.stopController()
	var cfg map[string]any
	w.entraJSON("GET", "config", nil, &cfg)
	cfg["managed_identities"] = []any{map[string]any{
		"client_id": sdkMIClient, "object_id": sdkMIOID, "resource_id": sdkMIResID}}
	w.entraJSON("PUT", "config", cfg, nil)
	if err := w.s.AddRole(sdkMIRole, sdkMIOID, sdkMIDB); err != nil {
		t.Fatal(err)
	}
	env := []string{"AZURE_CLIENT_ID=" + sdkMIClient, "AZURE_POD_IDENTITY_AUTHORITY_HOST=" + w.s.IMDSURL}

	seq := sdkLastSeq(w.sdkRecords(0), 0)
	var clients []sdkClient
	for _, p := range sdkManagedPeers {
		p := p
		t.Run(p.name, func(t *testing.T) {
			tok, err := w.sdkRun(t, p, env)
			recs := w.sdkRecords(seq)
			seq = sdkLastSeq(recs, seq)
			if err != nil {
				for _, r := range recs {
					t.Logf("fake: %s", &r)
				}
				t.Fatal(err)
			}
			got, others := sdkSplit(recs, "imds")
			if len(got) != 1 {
				t.Fatalf("%s made %d IMDS requests, want 1", p.name, len(got))
			}
			sdkCheckIssued(t, p.name, &got[0], tok)
			if got[0].Issued == nil {
				t.FailNow()
			}
			c := got[0].Issued.Claims
			if c["oid"] != sdkMIOID || c["xms_mirid"] != sdkMIResID || c["aud"] != stack.DBAudience {
				t.Errorf("%s: token for oid %v, mirid %v, aud %v", p.name, c["oid"], c["xms_mirid"], c["aud"])
			}
			if err := w.sdkLogin(sdkMIRole, sdkMIDB, tok.Token); err != nil {
				t.Fatalf("%s: login with the SDK's token: %v", p.name, err)
			}
			clients = append(clients, sdkClient{name: p.name, what: p.what, req: &got[0], others: others})
		})
	}

	// The controller asks IMDS for the same identity.
	p, err := w.s.Spawn("controller-imds", []string{"AZURE_POD_IDENTITY_AUTHORITY_HOST=" + w.s.IMDSURL},
		w.s.Bin, append(w.s.ControllerArgs(), "--identity-source", "imds", "--client-id", sdkMIClient)...)
	if err != nil {
		t.Fatal(err)
	}
	w.ctrl = p
	w.managed("sdk-mi", "db", w.pgAnn("pgtoken.io/user", sdkMIRole, "pgtoken.io/database", sdkMIDB))
	w.waitSecret("sdk-mi", "db", 30*time.Second, "written with the managed identity", hasKeys("DATABASE_URL"))
	var ctrl *sdkRecord
	for _, r := range w.sdkRecords(seq) {
		if r.Endpoint == "imds" && r.Status == 200 && !strings.HasPrefix(r.Headers["User-Agent"], "azsdk-") {
			r := r
			ctrl = &r
			break
		}
	}
	if ctrl == nil {
		t.Fatalf("no IMDS request from the controller was recorded")
	}
	all := append([]sdkClient{{name: "controller", what: "pgtoken-rotator --identity-source imds (lib/idp/imds.c)",
		req: ctrl}}, clients...)
	sdkCompareIMDS(t, all)
}

// sdkCompareIMDS compares the SDKs' IMDS requests with the controller's
// (clients[0]) and prints the table.
func sdkCompareIMDS(t *testing.T, clients []sdkClient) {
	t.Helper()
	ref := clients[0].req
	for _, c := range clients {
		if c.req.Headers["Metadata"] != "true" {
			t.Errorf("%s: header Metadata %q, want true", c.name, c.req.Headers["Metadata"])
		}
	}
	sentBy := map[string]int{}
	for _, c := range clients[1:] {
		r := c.req
		if r.Method != ref.Method {
			t.Errorf("%s: method %s, the controller's %s", c.name, r.Method, ref.Method)
		}
		// msal-node asks for .../token/ (trailing slash); IMDS answers both.
		if strings.TrimSuffix(r.Path, "/") != strings.TrimSuffix(ref.Path, "/") {
			t.Errorf("%s: path %s, the controller's %s", c.name, r.Path, ref.Path)
		}
		for k, v := range r.Query {
			if rv, ok := ref.Query[k]; ok {
				sentBy[k]++
				if rv != v {
					t.Errorf("%s: query %s=%q, the controller's %q", c.name, k, v, rv)
				}
			} else if sdkOptionalIMDSQuery[k] == "" {
				t.Errorf("%s: sends IMDS query parameter %s=%q, which the controller does not", c.name, k, v)
			}
		}
	}
	for k := range ref.Query {
		if sentBy[k] == 0 {
			t.Errorf("the controller sends IMDS query parameter %s, which no SDK sends", k)
		}
	}
	names := map[string]string{}
	for _, c := range clients {
		for k := range c.req.Query {
			names[k] = ""
		}
	}
	rows := [][]string{
		sdkRow("other requests", clients, sdkOthers),
		sdkRow("method", clients, func(c sdkClient) string { return c.req.Method }),
		sdkRow("path", clients, func(c sdkClient) string { return c.req.Path }),
	}
	for _, k := range sdkKeys(names) {
		k := k
		rows = append(rows, sdkRow("query "+k, clients, func(c sdkClient) string {
			return sdkOr(c.req.Query[k], "-")
		}))
	}
	rows = append(rows, sdkHeaderRows(clients)...)
	rows = append(rows, sdkRow("status", clients, func(c sdkClient) string { return fmt.Sprint(c.req.Status) }))
	sdkTable(t, "IMDS requests: the controller and the Azure SDKs", clients, rows)
}

// 3. The token requests of the controller and of each SDK, field by field.
func TestSDKTokenRequestMatchesController(t *testing.T) {
	sdkOnly(t)
	w := newWorld(t, stack.Options{})
	w.entraJSON("DELETE", "requests", nil, nil)
	w.managed("sdk-compare", "db", w.pgAnn())
	w.waitSecret("sdk-compare", "db", 30*time.Second, "password written", hasKeys("password"))
	recs := w.sdkRecords(0)
	seq := sdkLastSeq(recs, 0)
	ctrl := sdkClient{name: "controller", what: "pgtoken-rotator (lib/idp/idp.c)"}
	for _, r := range recs {
		r := r
		switch {
		case r.Endpoint == "token" && ctrl.req == nil:
			ctrl.req = &r
		default:
			ctrl.others = append(ctrl.others, r)
		}
	}
	if ctrl.req == nil || ctrl.req.Status != 200 {
		t.Fatalf("the controller's token request was not recorded or failed: %v", recs)
	}
	clients := []sdkClient{ctrl}
	for _, p := range sdkWorkloadPeers {
		tok, err := w.sdkRun(t, p, w.s.ControllerEnv())
		recs := w.sdkRecords(seq)
		seq = sdkLastSeq(recs, seq)
		if err != nil {
			for _, r := range recs {
				t.Logf("fake: %s", &r)
			}
			t.Errorf("%v", err)
			continue
		}
		got, others := sdkSplit(recs, "token")
		if len(got) != 1 {
			t.Errorf("%s made %d token requests, want 1", p.name, len(got))
			continue
		}
		sdkCheckIssued(t, p.name, &got[0], tok)
		clients = append(clients, sdkClient{name: p.name, what: p.what, req: &got[0], others: others})
	}
	if len(clients) < 2 {
		t.Fatal("no SDK request to compare")
	}
	sdkCompareToken(t, w.s, clients)
}
