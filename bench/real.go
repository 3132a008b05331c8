package main

// The real kube-apiserver tier: the largest N once more, against a real kube-apiserver and
// etcd built from Kubernetes' Go modules (tests/realkube), in the shape a large cluster is
// found in: a tenth of the managed Secrets filled by an earlier run of the controller, the
// rest and every unmanaged Secret created while it is down, then one cold start. The fake API
// server answers lists and watches its own way; only a real one shows what a controller does
// with real pagination, a real watch cache and real request fairness. Every managed Secret
// must be filled: one left empty fails the bench.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// RealRun is what the real kube-apiserver tier measured.
type RealRun struct {
	N                int      `json:"n"`
	M                int      `json:"m"`
	Prefilled        int      `json:"prefilled"` // filled by an earlier run before the cold start
	Cold             *Phase   `json:"cold,omitempty"`
	Listed           int      `json:"listed"`   // managed Secrets the API server holds at the end
	Unfilled         int      `json:"unfilled"` // of them, without a password
	UnfilledExamples []string `json:"unfilled_examples,omitempty"`
	ResyncRequeued   int      `json:"resync_requeued"` // the controller's resync_requeued_total
	Error            string   `json:"error,omitempty"`
}

func pidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// grantTokenRequests lets the controller's ServiceAccount read ServiceAccounts and ask for
// their tokens (what a Secret naming pgtoken.io/service-account needs).
func (b *bench) grantTokenRequests() error {
	const name = "pgtoken-rotator-bench-tokens"
	role := map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
		"metadata": map[string]any{"name": name},
		"rules": []any{
			map[string]any{"apiGroups": []string{""}, "resources": []string{"serviceaccounts"}, "verbs": []string{"get"}},
			map[string]any{"apiGroups": []string{""}, "resources": []string{"serviceaccounts/token"}, "verbs": []string{"create"}},
		}}
	bind := map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]any{"name": name},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
		"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": "pgtoken-rotator", "namespace": "pgtoken-system"}}}
	if err := b.k.JSON("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", "application/json", role, nil); err != nil {
		return err
	}
	return b.k.JSON("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", "application/json", bind, nil)
}

// realTier runs the real kube-apiserver tier for n managed Secrets; its outcome goes into
// b.res.Real (and b.failures() reads it).
func (b *bench) realTier(n int) {
	rr := &RealRun{N: n, M: b.cfg.M}
	b.res.Real = rr
	rb := &bench{cfg: b.cfg, root: b.root, real: true}
	defer rb.close()
	if err := rb.realRun(rr); err != nil {
		rr.Error = err.Error()
		logf("real kube-apiserver tier: %v", err)
	}
}

func (b *bench) realRun(rr *RealRun) error {
	logf("==== real kube-apiserver: N=%d managed, M=%d unmanaged Secrets", rr.N, rr.M)
	if err := b.setup(); err != nil {
		return fmt.Errorf("setup: %v", err)
	}
	l := b.layout(rr.N)
	coldTimeout := b.scale(120*time.Second + time.Duration(rr.N)*30*time.Millisecond)

	// An earlier run fills a tenth of them.
	rr.Prefilled = rr.N / 10
	if rr.Prefilled > 0 {
		if err := b.createManaged(l[:rr.Prefilled]); err != nil {
			return err
		}
		p, err := b.cold(rr.Prefilled, 0, coldTimeout, "real: the earlier run")
		if err != nil {
			return err
		}
		logf("real: the earlier run filled %d Secrets in %.1fs", p.Completed, p.WallS)
		if _, err := b.stopController(); err != nil {
			return fmt.Errorf("controller did not stop cleanly: %v", err)
		}
	}
	// The rest, with the controller down.
	if err := b.createManaged(l[rr.Prefilled:]); err != nil {
		return err
	}
	if err := b.createUnmanaged(rr.M); err != nil {
		return err
	}
	tr, err := b.startTracker(rr.N)
	if err != nil {
		return err
	}
	defer tr.cancel()
	p, coldErr := b.coldTracked(tr, rr.N, b.unmanaged, coldTimeout, "real: cold")
	rr.Cold = p
	if b.ctrl != nil && b.metricsAddr != "" {
		if api, requeued, err := scrapeRequests("http://" + b.metricsAddr + "/metrics"); err == nil {
			p.API, p.APITotal = api, 0
			for _, v := range api {
				p.APITotal += v
			}
			rr.ResyncRequeued = requeued
		} else {
			p.Notes = append(p.Notes, "metrics scrape: "+err.Error())
		}
	}
	// What the API server holds, whatever the tracker saw.
	items, _, err := b.k.ListSecrets(selector, 500)
	if err != nil {
		return err
	}
	rr.Listed = len(items)
	for i := range items {
		if items[i].Data["password"] == "" {
			rr.Unfilled++
			if len(rr.UnfilledExamples) < 10 {
				rr.UnfilledExamples = append(rr.UnfilledExamples, items[i].Metadata.Namespace+"/"+items[i].Metadata.Name)
			}
		}
	}
	if _, err := b.stopController(); err != nil && coldErr == nil {
		coldErr = fmt.Errorf("controller did not stop cleanly: %v", err)
	}
	logf("real: %d listed, %d unfilled, resync requeued %d", rr.Listed, rr.Unfilled, rr.ResyncRequeued)
	if rr.Listed != rr.N {
		return fmt.Errorf("the API server holds %d managed Secrets, want %d", rr.Listed, rr.N)
	}
	return coldErr
}

// scrapeRequests reads the controller's own count of API requests (apiRequests) and its
// resync_requeued_total from /metrics: a real API server is not asked for counts.
func scrapeRequests(url string) (map[string]int, int, error) {
	samples, err := scrapeMetrics(url)
	if err != nil {
		return nil, 0, err
	}
	return apiRequests(samples), int(metricSum(samples, "pgtoken_rotator_resync_requeued_total")[""]), nil
}

// failures lists what makes the bench fail: an N that did not complete, a failing-Secrets
// case that could not be measured (an error, or a Secret that never reported the failure),
// and a real kube-apiserver tier with an error or a managed Secret left unfilled.
func (b *bench) failures() []string {
	var out []string
	for _, r := range b.res.Runs {
		if r.Error != "" {
			out = append(out, fmt.Sprintf("N=%d: %s", r.N, r.Error))
		}
	}
	if fc := b.res.Fail; fc != nil && fc.Error != "" {
		out = append(out, "failing Secrets: "+fc.Error)
	}
	if rr := b.res.Real; rr != nil {
		if rr.Unfilled > 0 {
			out = append(out, fmt.Sprintf("real kube-apiserver: %d of %d managed Secrets left unfilled, e.g. %s",
				rr.Unfilled, rr.Listed, strings.Join(rr.UnfilledExamples, ", ")))
		}
		if rr.Error != "" {
			out = append(out, "real kube-apiserver: "+rr.Error)
		}
	}
	return out
}

// realTable renders the real tier's lines of the report.
func (b *bench) realTable(w *strings.Builder) {
	rr := b.res.Real
	if rr == nil {
		return
	}
	fmt.Fprintf(w, "\nReal kube-apiserver and etcd (tests/realkube), N=%d managed (%d filled by an earlier run), M=%d unmanaged, created while the controller was down:",
		rr.N, rr.Prefilled, rr.M)
	if rr.Cold == nil {
		fmt.Fprintf(w, " did not run: %s\n", rr.Error)
		return
	}
	c := rr.Cold
	fmt.Fprintf(w, " every Secret filled in %.2fs, controller CPU %.2fs (%.3f ms/Secret), peak RSS %s MB, API server CPU %.2fs; %d of %d left unfilled; resync requeued %d; API requests: %s\n",
		c.WallS, c.CPUS, perMs(c.CPUS, rr.N-rr.Prefilled), mb(c.PeakRSSKB), c.KubeCPUS, rr.Unfilled, rr.Listed, rr.ResyncRequeued, apiSummary(c.API))
	for _, note := range c.Notes {
		if strings.HasPrefix(note, "controller log:") {
			fmt.Fprintf(w, "  %s\n", note)
		}
	}
	if rr.Error != "" {
		fmt.Fprintf(w, "  FAILED: %s\n", rr.Error)
	}
}
