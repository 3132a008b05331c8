package main

// Secrets failing for one cause: N Secrets that cannot be filled for the same reason
// (BENCH_FAIL_CAUSE: a role the server does not have, or a server that is down), for
// BENCH_FAIL_S, measured minute by minute; then the same N Secrets healthy over the same
// time. A failure should cost per cause, not per Secret: one login per kept failure shared
// by every Secret, each Secret's Event repeated at most once a minute, the status not
// written again with the same text.

import (
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"time"
)

// failCauses: BENCH_FAIL_CAUSE -> what it does.
var failCauses = map[string]string{
	"role": "they name a role the server does not have: every login is refused",
	"down": "they name a port where no server listens: every login is unreachable",
}

const failRole = "bench-no-such-role"

// FailCase is the failing Secrets and the healthy ones beside them.
type FailCase struct {
	N       int       `json:"n"`
	M       int       `json:"m"`
	Cause   string    `json:"cause"`
	PeriodS float64   `json:"period_s"` // of each half
	Failing *FailHalf `json:"failing,omitempty"`
	Healthy *FailHalf `json:"healthy,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// FailHalf is one controller run over the period.
type FailHalf struct {
	Minutes []FailMinute `json:"minutes"` // from the controller's start
	Total   FailMinute   `json:"total"`
	// At the end: Secrets whose status names the failure (failing) or that hold
	// values (healthy), the Events about them and the sum of their counts.
	Reported      int            `json:"reported"`
	Events        int            `json:"events"`
	EventCountSum int            `json:"event_count_sum"`
	EventReasons  map[string]int `json:"event_reasons"`
	ScrapeCPUS    float64        `json:"metrics_scrape_cpu_s"` // the scrapes' controller CPU, not in the minutes'
	Notes         []string       `json:"notes,omitempty"`
}

// FailMinute is what one minute (or the last, shorter, stretch) cost.
type FailMinute struct {
	EndS          float64        `json:"end_s"`                   // seconds from the controller's start
	CPUS          float64        `json:"cpu_s"`                   // controller utime+stime, /metrics scrapes excluded
	PGLogins      int            `json:"pg_logins"`               // connections PostgreSQL received over TCP
	PGRefused     int            `json:"pg_refused"`              // of them, refused (FATAL lines)
	LoginChecks   map[string]int `json:"login_checks"`            // the controller's login_checks_total by result
	SharedFails   int            `json:"login_failures_shared"`   // login_check_cache_failures_shared_total
	Failures      map[string]int `json:"rotation_failures"`       // rotation_failures_total by reason
	CtrlAPI       map[string]int `json:"controller_api_requests"` // kube_api_requests_total by verb (and code when not 2xx)
	StatusWrites  int            `json:"status_writes"`           // PATCH secrets (the fake API server's count)
	EventsCreated int            `json:"events_created"`          // POST events
	EventUpdates  int            `json:"event_updates"`           // PATCH/PUT events: a repeat's count
	TokenRequests int            `json:"token_requests"`
	API           map[string]int `json:"api_requests"` // the fake API server's count by verb and resource
}

// failSecrets is the layout of the case: n Secrets over the namespaces, all on the
// controller's identity and one role (one login to share), healthy or failing.
func (b *bench) failSecrets(n int, failing bool) []managedSecret {
	l := make([]managedSecret, n)
	port := 0
	if failing && b.cfg.FailCause == "down" {
		port = freePort()
	}
	for i := range l {
		l[i] = managedSecret{NS: nsName(i % b.cfg.Namespaces), Name: fmt.Sprintf("db-%05d", i), User: "bench-role-0", Port: port}
		if failing && b.cfg.FailCause == "role" {
			l[i].User = failRole
		}
	}
	return l
}

// failCase runs both halves for n Secrets; the outcome goes into b.res.Fail.
func (b *bench) failCase(n int) {
	fc := &FailCase{N: n, M: b.unmanaged, Cause: b.cfg.FailCause, PeriodS: b.cfg.FailS}
	b.res.Fail = fc
	logf("==== %d Secrets failing for one cause (%s), %.0fs; then the same %d healthy", n, failCauses[fc.Cause], fc.PeriodS, n)
	var err error
	if fc.Failing, err = b.failHalf(b.failSecrets(n, true), true); err == nil {
		fc.Healthy, err = b.failHalf(b.failSecrets(n, false), false)
	}
	if err != nil {
		fc.Error = err.Error()
		logf("failing Secrets: %v", err)
		if b.ctrl != nil {
			b.stopController()
		}
	}
}

// failHalf starts the controller on l (created unfilled) and measures every minute.
func (b *bench) failHalf(l []managedSecret, failing bool) (*FailHalf, error) {
	name := map[bool]string{true: "failing", false: "healthy"}[failing]
	if err := b.deleteManaged(); err != nil {
		return nil, err
	}
	if err := b.createManaged(l); err != nil {
		return nil, err
	}
	h := &FailHalf{}
	b.withMetrics = true
	defer func() { b.withMetrics = false }()
	a := b.snap()
	ctrl, err := b.startController()
	if err != nil {
		return h, err
	}
	pid := ctrl.Cmd.Process.Pid
	start := time.Now()
	period := time.Duration(b.cfg.FailS * float64(time.Second))
	var prevMetrics []metricSample // nothing counted before the start
	var prevCPU float64            // the controller's CPU after the last scrape
	var scrapes float64
	for i := 1; ; i++ {
		end := time.Duration(i) * time.Minute
		if end > period {
			end = period
		}
		time.Sleep(time.Until(start.Add(end)))
		if ctrl.Exited() {
			return h, fmt.Errorf("%s: the controller exited:\n%s", name, tailLines(ctrl.Output(), 20))
		}
		c0, _ := readCPU(pid)
		z := b.snap()
		samples, err := scrapeMetrics("http://" + b.metricsAddr + "/metrics")
		if err != nil { // this minute's controller counts go into the next one's
			h.Notes = append(h.Notes, fmt.Sprintf("minute %d: %v", i, err))
			samples = prevMetrics
		}
		c1, _ := readCPU(pid)
		scrapes += c1.Own() - c0.Own()
		m := failMinute(a, z, prevMetrics, samples)
		m.EndS = round3(time.Since(start).Seconds())
		m.CPUS = round3(c0.Own() - prevCPU)
		h.Minutes = append(h.Minutes, m)
		logf("%s minute %d: cpu %.3fs, %d logins at PostgreSQL (%d refused), login checks: %s (%d answered by the kept failure), %d failed reconciles, %d status writes, %d Events created, %d Event updates, controller API requests: %s",
			name, i, m.CPUS, m.PGLogins, m.PGRefused, orNone(apiSummary(m.LoginChecks)), m.SharedFails, sumValues(m.Failures),
			m.StatusWrites, m.EventsCreated, m.EventUpdates, orNone(apiSummary(m.CtrlAPI)))
		a, prevMetrics, prevCPU = z, samples, c1.Own()
		if end >= period {
			break
		}
	}
	h.ScrapeCPUS = round3(scrapes)
	h.Total = sumMinutes(h.Minutes)
	if _, err := b.stopController(); err != nil {
		return h, fmt.Errorf("%s: controller did not stop cleanly: %v", name, err)
	}
	return h, b.failOutcome(h, l, failing)
}

// failMinute is what happened between two snapshots and two scrapes of /metrics.
func failMinute(a, z snapshot, before, after []metricSample) FailMinute {
	m := FailMinute{PGLogins: z.pgConns - a.pgConns, PGRefused: z.pgFatal - a.pgFatal, TokenRequests: z.tokens - a.tokens}
	m.API, _ = apiDelta(a, z)
	for k, v := range m.API {
		switch {
		case strings.HasPrefix(k, "patch secrets"):
			m.StatusWrites += v
		case strings.HasPrefix(k, "create events"):
			m.EventsCreated += v
		case strings.HasPrefix(k, "patch events"), strings.HasPrefix(k, "update events"):
			m.EventUpdates += v
		}
	}
	diff := func(name string, by ...string) map[string]int {
		out := map[string]int{}
		was := metricSum(before, name, by...)
		for k, v := range metricSum(after, name, by...) {
			if d := int(math.Round(v - was[k])); d != 0 {
				out[k] = d
			}
		}
		return out
	}
	m.LoginChecks = diff("pgtoken_rotator_login_checks_total", "result")
	m.SharedFails = diff("pgtoken_rotator_login_check_cache_failures_shared_total")[""]
	m.Failures = diff("pgtoken_rotator_rotation_failures_total", "reason")
	m.CtrlAPI = subCounts(apiRequests(after), apiRequests(before))
	return m
}

func subCounts(z, a map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range z {
		if d := v - a[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func addCounts(to *map[string]int, from map[string]int) {
	if *to == nil {
		*to = map[string]int{}
	}
	for k, v := range from {
		(*to)[k] += v
	}
}

func sumMinutes(ms []FailMinute) FailMinute {
	var t FailMinute
	for _, m := range ms {
		t.EndS = m.EndS
		t.CPUS = round3(t.CPUS + m.CPUS)
		t.PGLogins += m.PGLogins
		t.PGRefused += m.PGRefused
		t.SharedFails += m.SharedFails
		t.StatusWrites += m.StatusWrites
		t.EventsCreated += m.EventsCreated
		t.EventUpdates += m.EventUpdates
		t.TokenRequests += m.TokenRequests
		addCounts(&t.LoginChecks, m.LoginChecks)
		addCounts(&t.Failures, m.Failures)
		addCounts(&t.CtrlAPI, m.CtrlAPI)
		addCounts(&t.API, m.API)
	}
	return t
}

// failOutcome reads what the Secrets and their Events say at the end: every failing
// Secret must report the failure (else the case measured something else), every
// healthy one hold its values.
func (b *bench) failOutcome(h *FailHalf, l []managedSecret, failing bool) error {
	items, _, err := b.k.ListSecrets(selector, 500)
	if err != nil {
		return err
	}
	for i := range items {
		s := &items[i]
		if failing && s.Metadata.Annotations["pgtoken.io/status.last-error"] != "" ||
			!failing && s.Data["password"] != "" {
			h.Reported++
		}
	}
	h.EventReasons = map[string]int{}
	for i := 0; i < b.cfg.Namespaces; i++ {
		evs, err := b.k.Events(nsName(i))
		if err != nil {
			return err
		}
		for _, e := range evs {
			h.Events++
			h.EventCountSum += max(e.Count, 1)
			h.EventReasons[e.Reason]++
		}
	}
	what := map[bool]string{true: "report the failure in their status", false: "hold their values"}[failing]
	logf("%s: %d of %d Secrets %s; %d Events (counts sum to %d) %v", map[bool]string{true: "failing", false: "healthy"}[failing],
		h.Reported, len(l), what, h.Events, h.EventCountSum, h.EventReasons)
	if h.Reported != len(l) {
		return fmt.Errorf("%d of %d Secrets %s at the end", h.Reported, len(l), what)
	}
	return nil
}

// freePort is a loopback port nothing listens on (just now).
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// target checks the case against the expectation: after the first minute, the
// failing Secrets cost per cause: no status write, at most one login per kept failure
// (5 s, doubling: at most 12 a minute whatever N), Events repeated at most once a
// minute per Secret.
func (fc *FailCase) target() *Target {
	f := fc.Failing
	if f == nil || len(f.Minutes) < 2 {
		return nil
	}
	later := sumMinutes(f.Minutes[1:])
	mins := (later.EndS - f.Minutes[0].EndS) / 60
	logins := later.PGLogins
	if fc.Cause == "down" { // nothing reaches the server: the controller's own count
		logins = sumValues(later.LoginChecks)
	}
	perMin := float64(logins) / mins
	eventsPerSecretMin := float64(later.EventsCreated+later.EventUpdates) / float64(fc.N) / mins
	fig := fmt.Sprintf("N=%d, after the first minute (%.1f min): %d status writes, %.1f logins a minute, %.2f Event writes per Secret a minute, controller CPU %.3fs a minute",
		fc.N, mins, later.StatusWrites, perMin, eventsPerSecretMin, later.CPUS/mins)
	if h := fc.Healthy; h != nil && len(h.Minutes) > 1 {
		hl := sumMinutes(h.Minutes[1:])
		fig += fmt.Sprintf(" (healthy: %.3fs)", hl.CPUS/((hl.EndS-h.Minutes[0].EndS)/60))
	}
	return &Target{Name: "Secrets failing for one cause cost per cause: no status rewrite, a login per kept failure (<= 12 a minute at any N), Events at most once a minute per Secret",
		Met: later.StatusWrites == 0 && perMin <= 12 && eventsPerSecretMin <= 1, Figure: fig}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func sumValues(m map[string]int) int {
	t := 0
	for _, v := range m {
		t += v
	}
	return t
}

// prefixSum adds the counts whose key starts with prefix ("patch": "patch", "patch 409").
func prefixSum(m map[string]int, prefix string) int {
	t := 0
	for k, v := range m {
		if k == prefix || strings.HasPrefix(k, prefix+" ") {
			t += v
		}
	}
	return t
}

// failTable renders the case's lines of the report.
func (b *bench) failTable(w *strings.Builder) {
	fc := b.res.Fail
	if fc == nil {
		return
	}
	fmt.Fprintf(w, "\nSecrets failing for one cause: N=%d (M=%d unmanaged), all on the controller's identity and one role; %s (BENCH_FAIL_CAUSE=%s); %.0fs, then the same %d Secrets healthy for %.0fs. Per minute from the controller's start:\n\n",
		fc.N, fc.M, failCauses[fc.Cause], fc.Cause, fc.PeriodS, fc.N, fc.PeriodS)
	if fc.Failing == nil || len(fc.Failing.Minutes) == 0 {
		fmt.Fprintf(w, "did not run: %s\n", fc.Error)
		return
	}
	fmt.Fprintf(w, "| minute | failing: logins at PostgreSQL (refused) | login checks (answered by the kept failure) | failed reconciles | status writes | Events created / updated | API writes patch / post (controller) | controller CPU s | healthy: logins at PostgreSQL | status writes | Events created / updated | API writes patch / post | controller CPU s |\n")
	fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	half := func(m FailMinute) string {
		return fmt.Sprintf("%d | %d / %d | %d / %d | %.3f", m.StatusWrites, m.EventsCreated, m.EventUpdates,
			prefixSum(m.CtrlAPI, "patch"), prefixSum(m.CtrlAPI, "post"), m.CPUS)
	}
	row := func(label string, f FailMinute, h *FailMinute) {
		hs := "- | - | - | - | -"
		if h != nil {
			hs = fmt.Sprintf("%d | %s", h.PGLogins, half(*h))
		}
		fmt.Fprintf(w, "| %s | %d (%d) | %d (%d) | %d | %s | %s |\n", label, f.PGLogins, f.PGRefused, sumValues(f.LoginChecks), f.SharedFails,
			sumValues(f.Failures), half(f), hs)
	}
	for i, f := range fc.Failing.Minutes {
		var h *FailMinute
		if fc.Healthy != nil && i < len(fc.Healthy.Minutes) {
			h = &fc.Healthy.Minutes[i]
		}
		row(fmt.Sprintf("%d (to %.0fs)", i+1, f.EndS), f, h)
	}
	var ht *FailMinute
	if fc.Healthy != nil {
		ht = &fc.Healthy.Total
	}
	row("total", fc.Failing.Total, ht)
	for _, x := range []struct {
		name string
		h    *FailHalf
	}{{"failing", fc.Failing}, {"healthy", fc.Healthy}} {
		if x.h == nil {
			continue
		}
		var reasons []string
		for r, n := range x.h.EventReasons {
			reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
		}
		sort.Strings(reasons)
		fmt.Fprintf(w, "\n%s at the end: %d of %d Secrets %s; %d Events (%s), counts summing to %d; login checks by result: %s; failed reconciles by reason: %s; token requests %d; the /metrics scrapes (one a minute) cost the controller %.3fs, not in the CPU column",
			x.name, x.h.Reported, fc.N, map[string]string{"failing": "report the failure", "healthy": "hold values"}[x.name],
			x.h.Events, strings.Join(reasons, ", "), x.h.EventCountSum, orNone(apiSummary(x.h.Total.LoginChecks)),
			orNone(apiSummary(x.h.Total.Failures)), x.h.Total.TokenRequests, x.h.ScrapeCPUS)
		for _, n := range x.h.Notes {
			fmt.Fprintf(w, "; %s", n)
		}
		fmt.Fprintf(w, "\n")
	}
	if fc.Error != "" {
		fmt.Fprintf(w, "\nFAILED: %s\n", fc.Error)
	}
}
