package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

const (
	rel     = "pgtoken-rotator"
	relNS   = "pgtoken-system"
	cfgPath = "/etc/pgtoken-rotator/config.yaml"
)

// The rules every mode grants, and those each feature value adds.
var (
	featureRestart = []rule{{"apps", "deployments,statefulsets", "patch"}}
	featureSA      = []rule{{"", "serviceaccounts", "get"}, {"", "serviceaccounts/token", "create"}}
	featureLeases  = []rule{{"coordination.k8s.io", "leases", "get,create,update"}}
)

func (c *checker) valuesAll() string { return filepath.Join(c.root, "tests/chart/values-all.yaml") }

// rbacTruth returns the ClusterRole and ClusterRoleBinding of manifests/rbac.yaml.
func (c *checker) rbacTruth() (role, binding obj, err error) {
	objs, err := decodeFile(filepath.Join(c.root, "manifests/rbac.yaml"))
	if err != nil {
		return nil, nil, err
	}
	if role, err = one(objs, "ClusterRole"); err != nil {
		return nil, nil, fmt.Errorf("manifests/rbac.yaml: %v", err)
	}
	if binding, err = one(objs, "ClusterRoleBinding"); err != nil {
		return nil, nil, fmt.Errorf("manifests/rbac.yaml: %v", err)
	}
	if name(role) != "pgtoken-rotator" {
		return nil, nil, fmt.Errorf("manifests/rbac.yaml: the ClusterRole is %q, want pgtoken-rotator", name(role))
	}
	return role, binding, nil
}

// configOf returns the rendered config.yaml text and the pod's checksum annotation.
func configOf(objs []obj) (text, checksum string, err error) {
	var cms []obj
	for _, o := range ofKind(objs, "ConfigMap") {
		if get(o, "data", "config.yaml") != nil {
			cms = append(cms, o)
		}
	}
	if len(cms) != 1 {
		return "", "", fmt.Errorf("want one ConfigMap with config.yaml, have %d", len(cms))
	}
	cm := cms[0]
	text = str(cm, "data", "config.yaml")
	if text == "" {
		return "", "", fmt.Errorf("ConfigMap %s has no data key config.yaml", name(cm))
	}
	d, err := one(objs, "Deployment")
	if err != nil {
		return "", "", err
	}
	return text, str(d, "spec", "template", "metadata", "annotations", "checksum/config"), nil
}

func (c *checker) chartChecks() {
	def, defText, defErr := c.render(rel, relNS)
	all, _, allErr := c.render("all", "pgtr", "-f", c.valuesAll())
	need := func(f func() error) func() error {
		return func() error {
			if defErr != nil {
				return defErr
			}
			if allErr != nil {
				return allErr
			}
			return f()
		}
	}

	c.run("render: default values", func() error { return defErr })
	c.run("render: every documented option (tests/chart/values-all.yaml)", func() error { return allErr })
	c.run("render: default objects are exactly ServiceAccount, ConfigMap, ClusterRole, ClusterRoleBinding, Deployment, metrics Service",
		need(func() error {
			want := []string{"ClusterRole pgtoken-rotator", "ClusterRoleBinding pgtoken-rotator",
				"ConfigMap pgtoken-system/pgtoken-rotator", "Deployment pgtoken-system/pgtoken-rotator",
				"Service pgtoken-system/pgtoken-rotator-metrics", "ServiceAccount pgtoken-system/pgtoken-rotator"}
			if got := idents(def); !reflect.DeepEqual(got, want) {
				return fmt.Errorf("got %v", got)
			}
			return nil
		}))
	c.run("render: every option renders Service, ServiceMonitor, PrometheusRule, PodDisruptionBudget, NetworkPolicy",
		need(func() error {
			for _, k := range []string{"Service", "ServiceMonitor", "PrometheusRule", "PodDisruptionBudget", "NetworkPolicy"} {
				if _, err := one(all, k); err != nil {
					return err
				}
			}
			return nil
		}))

	c.monitoringChecks(all, allErr)

	c.run("values: every key in values.yaml has a comment", c.valuesDocumented)
	c.run("values: config keys are exactly the README's Configuration settings", c.configKeysMatchReadme)
	c.run("docs: the README's settings are exactly the controller's (lib/app/config.c), and its flag table exactly the controller's flags", c.settingsMatchCode)

	for _, v := range []struct {
		label string
		objs  *[]obj
	}{{"default", &def}, {"every option", &all}} {
		v := v
		c.run("security: pod security context ("+v.label+")", need(func() error { return podSecurity(*v.objs) }))
		c.run("security: container security context ("+v.label+")", need(func() error { return containerSecurity(*v.objs) }))
	}
	c.run("security: the container image runs as UID 65532 in the manifests too (restricted PSS fields)",
		need(func() error { return restrictedFields(def) }))

	c.run("rbac: default ClusterRole has exactly the rules of manifests/rbac.yaml", need(func() error {
		truth, _, err := c.rbacTruth()
		if err != nil {
			return err
		}
		cr, err := one(def, "ClusterRole")
		if err != nil {
			return err
		}
		if got, want := rules(cr), rules(truth); !reflect.DeepEqual(got, want) {
			return fmt.Errorf("chart %s, manifests/rbac.yaml %s (rbac.yaml is the source of truth: "+
				"update secretRules in templates/_helpers.tpl)", rulesString(got), rulesString(want))
		}
		return nil
	}))
	c.run("rbac: verbs are secrets get,list,watch,patch and events create,patch, nothing else", need(func() error {
		cr, _ := one(def, "ClusterRole")
		want := []rule{{"", "secrets", "get,list,watch,patch"}, {"", "events", "create,patch"}}
		if got := rules(cr); !reflect.DeepEqual(got, want) {
			return fmt.Errorf("got %s", rulesString(got))
		}
		return nil
	}))
	c.run("rbac: default ClusterRoleBinding binds the ServiceAccount as manifests/rbac.yaml does", need(func() error {
		_, truth, err := c.rbacTruth()
		if err != nil {
			return err
		}
		b, err := one(def, "ClusterRoleBinding")
		if err != nil {
			return err
		}
		for _, k := range []string{"roleRef", "subjects"} {
			if !reflect.DeepEqual(get(b, k), get(truth, k)) {
				return fmt.Errorf("%s: chart %s, rbac.yaml %s", k, yamlString(get(b, k)), yamlString(get(truth, k)))
			}
		}
		return nil
	}))
	c.run("rbac: feature rules appear only with their value on", c.featureRules)
	c.run("rbac: namespaced mode renders a Role and RoleBinding per namespace, no ClusterRole", c.namespacedMode)
	c.run("rbac: watchNamespaces with rbac.namespaced=false keeps the ClusterRole", c.clusterModeWithNamespaces)
	c.run("rbac: rbac.create=false renders no RBAC", func() error {
		objs, _, err := c.render(rel, relNS, "--set", "rbac.create=false", "--set", "replicaCount=2")
		if err != nil {
			return err
		}
		for _, k := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
			if n := len(ofKind(objs, k)); n != 0 {
				return fmt.Errorf("%d %s rendered", n, k)
			}
		}
		return nil
	})

	c.run("workload identity: pod label azure.workload.identity/use=\"true\"", need(func() error {
		for _, objs := range [][]obj{def, all} {
			d, _ := one(objs, "Deployment")
			if v := get(d, "spec", "template", "metadata", "labels", "azure.workload.identity/use"); v != "true" {
				return fmt.Errorf("%s: label is %v", ident(d), v)
			}
		}
		return nil
	}))
	c.run("workload identity: ServiceAccount annotated with client-id and tenant-id when set, not by default",
		need(func() error {
			sa, _ := one(def, "ServiceAccount")
			if a := get(sa, "metadata", "annotations"); a != nil {
				return fmt.Errorf("default ServiceAccount has annotations %v", a)
			}
			sa, _ = one(all, "ServiceAccount")
			want := map[string]any{
				"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555",
				"azure.workload.identity/tenant-id": "66666666-7777-8888-9999-000000000000",
				"example.com/owner":                 "platform",
			}
			if got := get(sa, "metadata", "annotations"); !reflect.DeepEqual(got, want) {
				return fmt.Errorf("annotations %v", got)
			}
			if name(sa) != "pgtr-sa" {
				return fmt.Errorf("ServiceAccount name %q, want pgtr-sa", name(sa))
			}
			pod, _, _ := controller(all)
			if str(pod, "serviceAccountName") != "pgtr-sa" {
				return fmt.Errorf("pod runs as %q", str(pod, "serviceAccountName"))
			}
			return nil
		}))
	c.run("workload identity: azureWorkloadIdentity.enabled=false drops the label and annotations", func() error {
		objs, _, err := c.render(rel, relNS, "--set", "serviceAccount.azureWorkloadIdentity.enabled=false",
			"--set", "serviceAccount.azureWorkloadIdentity.clientId=abc")
		if err != nil {
			return err
		}
		d, _ := one(objs, "Deployment")
		sa, _ := one(objs, "ServiceAccount")
		if get(d, "spec", "template", "metadata", "labels", "azure.workload.identity/use") != nil ||
			get(sa, "metadata", "annotations") != nil {
			return fmt.Errorf("label or annotation still rendered")
		}
		return nil
	})
	c.run("serviceAccount: create=false uses the named account and needs a name", func() error {
		objs, _, err := c.render(rel, relNS, "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=existing")
		if err != nil {
			return err
		}
		if n := len(ofKind(objs, "ServiceAccount")); n != 0 {
			return fmt.Errorf("%d ServiceAccounts rendered", n)
		}
		pod, _, err := controller(objs)
		if err != nil {
			return err
		}
		crb, _ := one(objs, "ClusterRoleBinding")
		if str(pod, "serviceAccountName") != "existing" || str(list(crb, "subjects")[0], "name") != "existing" {
			return fmt.Errorf("pod or binding does not use the named account")
		}
		if _, _, err := c.render(rel, relNS, "--set", "serviceAccount.create=false"); err == nil ||
			!strings.Contains(err.Error(), "serviceAccount.name is required") {
			return fmt.Errorf("no name: want the render to fail with a message, got %v", err)
		}
		return nil
	})

	c.run("deployment: runs `run --config "+cfgPath+"` with the ConfigMap mounted read-only there",
		need(func() error { return configMounted(def) }))
	c.run("deployment: POD_NAME and POD_NAMESPACE come from the downward API", need(func() error {
		for _, objs := range [][]obj{def, all} {
			_, ctr, err := controller(objs)
			if err != nil {
				return err
			}
			for n, path := range map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"} {
				if got := str(envVar(ctr, n), "valueFrom", "fieldRef", "fieldPath"); got != path {
					return fmt.Errorf("%s from %q, want fieldRef %s", n, got, path)
				}
			}
		}
		return nil
	}))
	c.run("deployment: image defaults to the chart's appVersion, which is /VERSION", need(func() error {
		ver, err := os.ReadFile(filepath.Join(c.root, "VERSION"))
		if err != nil {
			return err
		}
		var chart map[string]any
		b, err := os.ReadFile(filepath.Join(c.chart, "Chart.yaml"))
		if err != nil {
			return err
		}
		if err := yaml.Unmarshal(b, &chart); err != nil {
			return err
		}
		v := strings.TrimSpace(string(ver))
		if chart["appVersion"] != v {
			return fmt.Errorf("Chart.yaml appVersion %v, VERSION %s", chart["appVersion"], v)
		}
		_, ctr, _ := controller(def)
		if want := "ghcr.io/pgtoken-rotator/pgtoken-rotator:" + v; str(ctr, "image") != want {
			return fmt.Errorf("image %q, want %q", str(ctr, "image"), want)
		}
		objs, _, err := c.render(rel, relNS, "--set", "image.digest=sha256:"+strings.Repeat("ab", 32))
		if err != nil {
			return err
		}
		_, ctr, _ = controller(objs)
		if !strings.HasSuffix(str(ctr, "image"), "@sha256:"+strings.Repeat("ab", 32)) {
			return fmt.Errorf("digest not used: %q", str(ctr, "image"))
		}
		return nil
	}))
	c.run("chart: the licence is the project's (Apache-2.0, LICENSE at the root)", need(func() error {
		var chart struct {
			Annotations map[string]string `yaml:"annotations"`
		}
		b, err := os.ReadFile(filepath.Join(c.chart, "Chart.yaml"))
		if err != nil {
			return err
		}
		if err := yaml.Unmarshal(b, &chart); err != nil {
			return err
		}
		if got := chart.Annotations["artifacthub.io/license"]; got != "Apache-2.0" {
			return fmt.Errorf("Chart.yaml annotation artifacthub.io/license %q, want Apache-2.0", got)
		}
		lic, err := os.ReadFile(filepath.Join(c.root, "LICENSE"))
		if err != nil {
			return err
		}
		if !strings.Contains(string(lic), "Apache License") || !strings.Contains(string(lic), "Version 2.0, January 2004") {
			return fmt.Errorf("LICENSE is not the Apache License 2.0")
		}
		return nil
	}))
	c.run("deployment: defaults have one replica, no --leader-elect, the metrics port and both probes", need(func() error {
		d, _ := one(def, "Deployment")
		_, ctr, _ := controller(def)
		if r, _ := get(d, "spec", "replicas").(int); r != 1 {
			return fmt.Errorf("replicas %v", get(d, "spec", "replicas"))
		}
		if want := []string{"run", "--config", cfgPath, "--metrics-addr", ":9090"}; !reflect.DeepEqual(strList(get(ctr, "args")), want) {
			return fmt.Errorf("args %v, want %v", get(ctr, "args"), want)
		}
		for _, k := range []string{"ports", "livenessProbe", "readinessProbe"} {
			if get(ctr, k) == nil {
				return fmt.Errorf("%s not rendered", k)
			}
		}
		return nil
	}))
	c.run("config: checksum/config is the sha256 of the rendered config.yaml", need(func() error {
		text, sum, err := configOf(def)
		if err != nil {
			return err
		}
		h := sha256.Sum256([]byte(strings.TrimSuffix(text, "\n")))
		if want := hex.EncodeToString(h[:]); sum != want {
			return fmt.Errorf("annotation %q, sha256 of config.yaml %q", sum, want)
		}
		return nil
	}))
	c.run("config: checksum/config changes when config changes, not otherwise", need(func() error {
		_, base, _ := configOf(def)
		for _, set := range []string{"config.workers=5", "watchNamespaces={team-x}", "config.log.level=debug"} {
			objs, _, err := c.render(rel, relNS, "--set", set)
			if err != nil {
				return err
			}
			if _, sum, _ := configOf(objs); sum == base {
				return fmt.Errorf("--set %s left checksum/config unchanged", set)
			}
		}
		objs, _, err := c.render(rel, relNS, "--set", "podAnnotations.x=y", "--set", "resources.limits.memory=1Gi")
		if err != nil {
			return err
		}
		if _, sum, _ := configOf(objs); sum != base {
			return fmt.Errorf("a change outside config changed checksum/config")
		}
		return nil
	}))
	c.run("config: empty strings are left out, namespaces follow watchNamespaces", need(func() error {
		text, _, _ := configOf(def)
		var cfg map[string]any
		if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
			return err
		}
		keys := map[string]bool{}
		flatKeys("", cfg, keys)
		for _, k := range []string{"identity.authorityHost", "identity.caFile", "kubernetes.kubeconfig", "kubernetes.context"} {
			if keys[k] {
				return fmt.Errorf("%s rendered although empty", k)
			}
		}
		if ns, ok := cfg["namespaces"].([]any); !ok || len(ns) != 0 {
			return fmt.Errorf("namespaces %v, want []", cfg["namespaces"])
		}
		text, _, _ = configOf(all)
		cfg = nil
		if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
			return err
		}
		if got := strList(cfg["namespaces"]); !reflect.DeepEqual(got, []string{"team-a", "team-b"}) {
			return fmt.Errorf("every option: namespaces %v", got)
		}
		if get(cfg, "rotation", "minRemainingSeconds") != 1000000 {
			return fmt.Errorf("a large number is not rendered as an integer: %v", get(cfg, "rotation", "minRemainingSeconds"))
		}
		return nil
	}))
	c.run("schema: a misspelt or unknown value fails the render", func() error {
		for _, set := range []string{"replicaCont=2", "config.workerz=3", "image.tagg=x", "metrics.enable=true",
			"config.loginCheck.mode=sometimes", "config.namespaces={a}", "watchNamespaces={Not_A_Name}"} {
			if _, _, err := c.render(rel, relNS, "--set", set); err == nil || !strings.Contains(err.Error(), "schema") {
				return fmt.Errorf("--set %s: want a schema error, got %v", set, err)
			}
		}
		return nil
	})
	c.run("every option: each value reaches its object", need(func() error { return everyOption(all) }))
	c.run("networkPolicy: IMDS egress only with config.identity.source imds", func() error {
		for _, tc := range []struct {
			source string
			want   bool
		}{{"workload-identity", false}, {"imds", true}} {
			objs, _, err := c.render(rel, relNS, "--set", "networkPolicy.enabled=true",
				"--set", "config.identity.source="+tc.source)
			if err != nil {
				return err
			}
			np, err := one(objs, "NetworkPolicy")
			if err != nil {
				return err
			}
			if got := strings.Contains(netpolSummary(np), "80/TCP->169.254.169.254/32"); got != tc.want {
				return fmt.Errorf("source %s: IMDS egress %v (%s)", tc.source, got, netpolSummary(np))
			}
			if !strings.HasPrefix(netpolSummary(np), "53/UDP,53/TCP->peers; 443/TCP,6443/TCP->any; 443/TCP->0.0.0.0/0; 5432/TCP,6432/TCP->0.0.0.0/0") {
				return fmt.Errorf("default egress %s", netpolSummary(np))
			}
			for _, r := range list(np, "spec", "ingress") {
				if !strings.Contains(fmt.Sprint(r), "port:metrics") {
					return fmt.Errorf("ingress allowed beyond the metrics port: %v", r)
				}
			}
		}
		return nil
	})
	c.run("every option: leader election Role and --leader-elect with replicaCount 2", need(func() error {
		_, ctr, _ := controller(all)
		if !contains(strList(get(ctr, "args")), "--leader-elect") {
			return fmt.Errorf("no --leader-elect in %v", get(ctr, "args"))
		}
		for _, r := range ofKind(all, "Role") {
			if name(r) == "pgtr-all-leader-election" && namespace(r) == "pgtr" &&
				reflect.DeepEqual(rules(r), featureLeases) {
				return nil
			}
		}
		return fmt.Errorf("no Role pgtr/pgtr-all-leader-election with %s", rulesString(featureLeases))
	}))
	c.run("notes: NOTES.txt says how to label and annotate a Secret and where Events are", func() error {
		out, err := c.renderNotes()
		if err != nil {
			return err
		}
		for _, s := range []string{"label secret app-db pgtoken.io/managed=true", "pgtoken.io/host=",
			"pgtoken.io/user=", "describe secret app-db", "clientId is empty",
			"system:serviceaccount:" + relNS + ":" + rel} {
			if !strings.Contains(out, s) {
				return fmt.Errorf("NOTES lack %q", s)
			}
		}
		out, err = c.renderNotes("-f", c.valuesAll())
		if err != nil {
			return err
		}
		if strings.Contains(out, "clientId is empty") || !strings.Contains(out, "team-a, team-b") ||
			!strings.Contains(out, "--leader-elect") {
			return fmt.Errorf("NOTES with every option: no team-a, team-b or leader election note, or a clientId warning")
		}
		// The controller has --leader-elect: no warning that it lacks it.
		for _, stale := range []string{"refuses to start", "until it ships"} {
			if strings.Contains(out, stale) {
				return fmt.Errorf("NOTES say %q about leader election, which the controller has", stale)
			}
		}
		return nil
	})
	_ = defText
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func podSecurity(objs []obj) error {
	pod, _, err := controller(objs)
	if err != nil {
		return err
	}
	sc := get(pod, "securityContext")
	want := map[string]any{"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532}
	for k, v := range want {
		if get(sc, k) != v {
			return fmt.Errorf("securityContext.%s is %v, want %v", k, get(sc, k), v)
		}
	}
	if str(sc, "seccompProfile", "type") != "RuntimeDefault" {
		return fmt.Errorf("seccompProfile %v", get(sc, "seccompProfile"))
	}
	for _, k := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		if get(pod, k) == true {
			return fmt.Errorf("%s is on", k)
		}
	}
	return nil
}

func containerSecurity(objs []obj) error {
	_, ctr, err := controller(objs)
	if err != nil {
		return err
	}
	sc := get(ctr, "securityContext")
	want := map[string]any{"runAsNonRoot": true, "runAsUser": 65532, "readOnlyRootFilesystem": true,
		"allowPrivilegeEscalation": false}
	for k, v := range want {
		if get(sc, k) != v {
			return fmt.Errorf("securityContext.%s is %v, want %v", k, get(sc, k), v)
		}
	}
	if get(sc, "privileged") == true {
		return fmt.Errorf("privileged")
	}
	if d := strList(get(sc, "capabilities", "drop")); !reflect.DeepEqual(d, []string{"ALL"}) {
		return fmt.Errorf("capabilities.drop %v, want [ALL]", d)
	}
	if a := get(sc, "capabilities", "add"); a != nil {
		return fmt.Errorf("capabilities.add %v", a)
	}
	if str(sc, "seccompProfile", "type") != "RuntimeDefault" {
		return fmt.Errorf("seccompProfile %v", get(sc, "seccompProfile"))
	}
	return nil
}

// restrictedFields checks what the "restricted" Pod Security Standard forbids
// that the security contexts do not cover: host paths and host ports.
func restrictedFields(objs []obj) error {
	pod, ctr, err := controller(objs)
	if err != nil {
		return err
	}
	for _, v := range list(pod, "volumes") {
		if get(v, "hostPath") != nil {
			return fmt.Errorf("volume %s is a hostPath", str(v, "name"))
		}
	}
	for _, p := range list(ctr, "ports") {
		if get(p, "hostPort") != nil {
			return fmt.Errorf("a hostPort is used")
		}
	}
	return nil
}

func configMounted(objs []obj) error {
	pod, ctr, err := controller(objs)
	if err != nil {
		return err
	}
	cm, err := one(objs, "ConfigMap")
	if err != nil {
		return err
	}
	args := strList(get(ctr, "args"))
	if len(args) < 3 || args[0] != "run" || args[1] != "--config" || args[2] != cfgPath {
		return fmt.Errorf("args %v", args)
	}
	vol := ""
	for _, v := range list(pod, "volumes") {
		if str(v, "configMap", "name") == name(cm) {
			vol = str(v, "name")
		}
	}
	if vol == "" {
		return fmt.Errorf("no volume from ConfigMap %s", name(cm))
	}
	for _, m := range list(ctr, "volumeMounts") {
		if str(m, "name") == vol && str(m, "mountPath")+"/config.yaml" == cfgPath && get(m, "readOnly") == true {
			return nil
		}
	}
	return fmt.Errorf("volume %s is not mounted read-only at %s", vol, filepath.Dir(cfgPath))
}

func (c *checker) featureRules() error {
	base := []rule{{"", "secrets", "get,list,watch,patch"}, {"", "events", "create,patch"}}
	cases := []struct {
		sets []string
		add  []rule
	}{
		{[]string{"restart.enabled=true"}, featureRestart},
		{[]string{"perSecretIdentity.enabled=true"}, featureSA},
		{[]string{"restart.enabled=true", "perSecretIdentity.enabled=true"}, append(append([]rule{}, featureRestart...), featureSA...)},
	}
	for _, tc := range cases {
		var args []string
		for _, s := range tc.sets {
			args = append(args, "--set", s)
		}
		objs, _, err := c.render(rel, relNS, args...)
		if err != nil {
			return err
		}
		cr, err := one(objs, "ClusterRole")
		if err != nil {
			return err
		}
		want := append(append([]rule{}, base...), tc.add...)
		if got := rules(cr); !reflect.DeepEqual(got, want) {
			return fmt.Errorf("%v: rules %s, want %s", tc.sets, rulesString(got), rulesString(want))
		}
		if n := len(ofKind(objs, "Role")); n != 0 {
			return fmt.Errorf("%v: %d Roles rendered (leader election is off)", tc.sets, n)
		}
	}
	// Leader election: the value forces it either way; null follows replicaCount.
	for _, tc := range []struct {
		sets []string
		on   bool
	}{
		{[]string{"replicaCount=1"}, false},
		{[]string{"replicaCount=2"}, true},
		{[]string{"replicaCount=2", "leaderElection.enabled=false"}, false},
		{[]string{"replicaCount=1", "leaderElection.enabled=true"}, true},
	} {
		var args []string
		for _, s := range tc.sets {
			args = append(args, "--set", s)
		}
		objs, _, err := c.render(rel, relNS, args...)
		if err != nil {
			return err
		}
		_, ctr, _ := controller(objs)
		flag := contains(strList(get(ctr, "args")), "--leader-elect")
		roles := ofKind(objs, "Role")
		if flag != tc.on || (len(roles) == 1) != tc.on {
			return fmt.Errorf("%v: --leader-elect %v, %d Roles; want leader election %v", tc.sets, flag, len(roles), tc.on)
		}
		if tc.on && (namespace(roles[0]) != relNS || !reflect.DeepEqual(rules(roles[0]), featureLeases)) {
			return fmt.Errorf("%v: lease Role %s with %s", tc.sets, ident(roles[0]), rulesString(rules(roles[0])))
		}
		cr, _ := one(objs, "ClusterRole")
		if !reflect.DeepEqual(rules(cr), base) {
			return fmt.Errorf("%v: ClusterRole rules %s", tc.sets, rulesString(rules(cr)))
		}
	}
	return nil
}

func (c *checker) namespacedMode() error {
	objs, _, err := c.render(rel, relNS, "--set", "watchNamespaces={team-a,team-b}")
	if err != nil {
		return err
	}
	if n := len(ofKind(objs, "ClusterRole")) + len(ofKind(objs, "ClusterRoleBinding")); n != 0 {
		return fmt.Errorf("%d cluster-scoped RBAC objects rendered", n)
	}
	truth, _, err := c.rbacTruth()
	if err != nil {
		return err
	}
	got := map[string]bool{}
	for _, r := range ofKind(objs, "Role") {
		if !reflect.DeepEqual(rules(r), rules(truth)) {
			return fmt.Errorf("%s rules %s", ident(r), rulesString(rules(r)))
		}
		got["Role "+namespace(r)] = true
	}
	for _, b := range ofKind(objs, "RoleBinding") {
		s := list(b, "subjects")
		if str(b, "roleRef", "kind") != "Role" || len(s) != 1 || str(s[0], "name") != rel ||
			str(s[0], "namespace") != relNS {
			return fmt.Errorf("%s: roleRef %v subjects %v", ident(b), get(b, "roleRef"), s)
		}
		got["RoleBinding "+namespace(b)] = true
	}
	want := map[string]bool{"Role team-a": true, "Role team-b": true, "RoleBinding team-a": true, "RoleBinding team-b": true}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("got %v", sortedKeys(got))
	}
	if n := len(ofKind(objs, "Role")) + len(ofKind(objs, "RoleBinding")); n != 4 {
		return fmt.Errorf("%d Roles and RoleBindings, want 4", n)
	}
	text, _, _ := configOf(objs)
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		return err
	}
	if ns := strList(cfg["namespaces"]); !reflect.DeepEqual(ns, []string{"team-a", "team-b"}) {
		return fmt.Errorf("config namespaces %v", ns)
	}
	return nil
}

func (c *checker) clusterModeWithNamespaces() error {
	objs, _, err := c.render(rel, relNS, "--set", "watchNamespaces={team-a}", "--set", "rbac.namespaced=false")
	if err != nil {
		return err
	}
	if len(ofKind(objs, "ClusterRole")) != 1 || len(ofKind(objs, "Role")) != 0 {
		return fmt.Errorf("got %v", idents(objs))
	}
	return nil
}

// everyOption checks that each value of tests/chart/values-all.yaml reached
// the rendered objects.
func everyOption(objs []obj) error {
	d, _ := one(objs, "Deployment")
	pod, ctr, err := controller(objs)
	if err != nil {
		return err
	}
	meta := get(d, "spec", "template", "metadata")
	checks := []struct {
		what      string
		got, want any
	}{
		{"name (fullnameOverride)", name(d), "pgtr-all"},
		{"app name label (nameOverride)", get(d, "metadata", "labels", "app.kubernetes.io/name"), "pgtr"},
		{"image", str(ctr, "image"), "registry.example.com/platform/pgtoken-rotator:0.1.0-test"},
		{"pullPolicy", str(ctr, "imagePullPolicy"), "Always"},
		{"pullSecrets", get(pod, "imagePullSecrets"), fromYAML(`[{name: regcred}]`)},
		{"replicas", get(d, "spec", "replicas"), 2},
		{"extraEnv", str(envVar(ctr, "EXTRA_SETTING"), "value"), "1"},
		{"resources", get(ctr, "resources", "limits", "cpu"), "200m"},
		{"nodeSelector", get(pod, "nodeSelector", "agentpool"), "system"},
		{"tolerations", str(list(pod, "tolerations")[0], "key"), "CriticalAddonsOnly"},
		{"affinity", get(pod, "affinity", "nodeAffinity") != nil, true},
		{"topologySpreadConstraints gets the pod selector",
			get(list(pod, "topologySpreadConstraints")[0], "labelSelector"),
			fromYAML(`{matchLabels: {app.kubernetes.io/instance: all, app.kubernetes.io/name: pgtr}}`)},
		{"priorityClassName", str(pod, "priorityClassName"), "system-cluster-critical"},
		{"podAnnotations", get(meta, "annotations", "example.com/team"), "platform"},
		{"podLabels", get(meta, "labels", "example.com/tier"), "controllers"},
		{"terminationGracePeriodSeconds", get(pod, "terminationGracePeriodSeconds"), 15},
		{"extraVolumes", str(list(pod, "volumes")[2], "configMap", "name"), "db-ca"},
		{"extraVolumeMounts", str(list(ctr, "volumeMounts")[2], "mountPath"), "/etc/pgtoken-rotator-ca"},
		{"metrics port", get(ctr, "ports"), fromYAML(`[{containerPort: 9090, name: metrics, protocol: TCP}]`)},
		{"liveness probe", str(ctr, "livenessProbe", "httpGet", "path") + " " + fmt.Sprint(get(ctr, "livenessProbe", "httpGet", "port")) +
			" " + fmt.Sprint(get(ctr, "livenessProbe", "periodSeconds")), "/healthz metrics 20"},
		{"readiness probe", str(ctr, "readinessProbe", "httpGet", "path") + " " + fmt.Sprint(get(ctr, "readinessProbe", "httpGet", "port")) +
			" " + fmt.Sprint(get(ctr, "readinessProbe", "failureThreshold")), "/readyz metrics 2"},
	}
	svc, _ := one(objs, "Service")
	sm, _ := one(objs, "ServiceMonitor")
	pdb, _ := one(objs, "PodDisruptionBudget")
	np, _ := one(objs, "NetworkPolicy")
	checks = append(checks, []struct {
		what      string
		got, want any
	}{
		{"Service port", get(svc, "spec", "ports"), fromYAML(`[{name: metrics, port: 9090, protocol: TCP, targetPort: metrics}]`)},
		{"Service annotations", get(svc, "metadata", "annotations", "example.com/scrape"), "true"},
		{"ServiceMonitor", fmt.Sprint(str(sm, "apiVersion"), " ", get(sm, "metadata", "labels", "release"), " ",
			str(list(sm, "spec", "endpoints")[0], "interval")), "azmonitoring.coreos.com/v1 prometheus 15s"},
		{"PodDisruptionBudget", fmt.Sprint(get(pdb, "spec", "minAvailable"), " ", get(pdb, "spec", "maxUnavailable")), "1 <nil>"},
		{"NetworkPolicy egress", netpolSummary(np),
			"53/UDP,53/TCP->peers; 443/TCP->20.1.2.3/32; 443/TCP->0.0.0.0/0; 5432/TCP,6432/TCP->10.20.0.0/16; 8443/TCP->10.30.0.0/16"},
		{"NetworkPolicy ingress", get(np, "spec", "ingress"), fromYAML(`
- from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
  ports:
    - {port: metrics, protocol: TCP}`)},
	}...)
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			return fmt.Errorf("%s: got %#v, want %#v", ch.what, ch.got, ch.want)
		}
	}
	return nil
}

func netpolSummary(np obj) string {
	var parts []string
	for _, e := range list(np, "spec", "egress") {
		var ports, to []string
		for _, p := range list(e, "ports") {
			ports = append(ports, fmt.Sprintf("%v/%v", get(p, "port"), get(p, "protocol")))
		}
		for _, t := range list(e, "to") {
			if c := str(t, "ipBlock", "cidr"); c != "" {
				to = append(to, c)
			} else if !contains(to, "peers") {
				to = append(to, "peers")
			}
		}
		if len(to) == 0 {
			to = []string{"any"}
		}
		parts = append(parts, strings.Join(ports, ",")+"->"+strings.Join(to, ","))
	}
	return strings.Join(parts, "; ")
}

// passthrough values hold Kubernetes structures, documented as a whole.
var passthrough = []string{"resources.", "podSecurityContext.", "securityContext.", "nodeSelector.",
	"networkPolicy.egress.dns.to."}

func (c *checker) valuesDocumented() error {
	b, err := os.ReadFile(filepath.Join(c.chart, "values.yaml"))
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	var missing []string
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := prefix + k.Value
			skip := false
			for _, pt := range passthrough {
				if strings.HasPrefix(p, pt) {
					skip = true
				}
			}
			if !skip && k.HeadComment == "" && k.LineComment == "" {
				missing = append(missing, fmt.Sprintf("%s (line %d)", p, k.Line))
			}
			walk(v, p+".")
		}
	}
	walk(doc.Content[0], "")
	if len(missing) > 0 {
		return fmt.Errorf("no comment on %s", strings.Join(missing, ", "))
	}
	return nil
}

// readmeConfigKeys reads the settings from the README's Configuration example.
func (c *checker) readmeConfigKeys() (map[string]bool, error) {
	b, err := os.ReadFile(filepath.Join(c.root, "README.md"))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.Index(s, "\n## Configuration")
	if i < 0 {
		return nil, fmt.Errorf("README.md has no Configuration section")
	}
	s = s[i:]
	j := strings.Index(s, "```yaml\n")
	if j < 0 {
		return nil, fmt.Errorf("README.md's Configuration section has no yaml block")
	}
	s = s[j+len("```yaml\n"):]
	s = s[:strings.Index(s, "```")]
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(s), &cfg); err != nil {
		return nil, fmt.Errorf("README.md's config example: %v", err)
	}
	keys := map[string]bool{}
	flatKeys("", cfg, keys)
	return keys, nil
}

func (c *checker) configKeysMatchReadme() error {
	want, err := c.readmeConfigKeys()
	if err != nil {
		return err
	}
	var values map[string]any
	b, err := os.ReadFile(filepath.Join(c.chart, "values.yaml"))
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		return err
	}
	got := map[string]bool{"namespaces": true} // from watchNamespaces
	flatKeys("", values["config"], got)
	var extra, lacking []string
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	for k := range want {
		if !got[k] {
			lacking = append(lacking, k)
		}
	}
	if len(extra)+len(lacking) > 0 {
		return fmt.Errorf("values.yaml config has %v not in the README and lacks %v", extra, lacking)
	}
	return nil
}

func (c *checker) helmOut(args ...string) (string, error) {
	out, err := execOut(c.helm, args...)
	if err != nil {
		return "", fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, firstLine(out))
	}
	return out, nil
}

// fieldRe matches a row of the settings table in lib/app/config.c: path, then NULL or a flag.
var fieldRe = regexp.MustCompile(`\{ "([A-Za-z.]+)", (?:NULL|"(--[a-z-]+)")`)

// flagRowRe matches a row of the README's flag table: | `--flag ...` | `setting` ... |
var flagRowRe = regexp.MustCompile("(?m)^\\| `(--[a-z-]+)[^`]*`[^|]*\\| `([A-Za-z.]+)`")

// settingsMatchCode holds the README against the code: every setting the controller reads
// from its file (the fields table of lib/app/config.c) is in the README's example, and
// nothing else is; every flag bound to a setting is in the README's flag table with that
// setting, and the table names no other flag.
func (c *checker) settingsMatchCode() error {
	src, err := os.ReadFile(filepath.Join(c.root, "lib/app/config.c"))
	if err != nil {
		return err
	}
	code, flags := map[string]bool{}, map[string]string{}
	for _, m := range fieldRe.FindAllStringSubmatch(string(src), -1) {
		code[m[1]] = true
		if m[2] != "" {
			flags[m[2]] = m[1]
		}
	}
	if len(code) < 10 {
		return fmt.Errorf("read only %d settings from lib/app/config.c: has its table changed shape?", len(code))
	}
	doc, err := c.readmeConfigKeys()
	if err != nil {
		return err
	}
	var problems []string
	for k := range code {
		if !doc[k] {
			problems = append(problems, "setting "+k+" is not in the README's example")
		}
	}
	for k := range doc {
		if !code[k] {
			problems = append(problems, "the README's example has "+k+", which the controller does not read")
		}
	}
	readme, err := os.ReadFile(filepath.Join(c.root, "README.md"))
	if err != nil {
		return err
	}
	rows := map[string]string{}
	for _, m := range flagRowRe.FindAllStringSubmatch(string(readme), -1) {
		rows[m[1]] = m[2]
	}
	for f, path := range flags {
		if got, ok := rows[f]; !ok {
			problems = append(problems, "flag "+f+" is not in the README's flag table")
		} else if got != path {
			problems = append(problems, fmt.Sprintf("the README's flag table gives %s the setting %s; the code, %s", f, got, path))
		}
	}
	for f := range rows {
		if _, ok := flags[f]; !ok && f != "--config" {
			problems = append(problems, "the README's flag table has "+f+", which the controller does not take")
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}
