package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func perMs(cpuS float64, n int) float64 {
	if n <= 0 {
		return 0
	}
	return round3(1000 * cpuS / float64(n))
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return math.Round(100*a/b) / 100
}

// evaluate derives the ratios and checks the targets.
func (b *bench) evaluate() {
	bl := b.res.Baseline
	for _, r := range b.res.Runs {
		if r.Cold != nil {
			r.CPUPerSecretColdMs = perMs(r.Cold.CPUS, r.N)
		}
		if r.Steady != nil && r.Steady.Rotations > 0 {
			r.CPUPerRotationSteadyMs = perMs(r.Steady.CPUS, r.Steady.Rotations)
		}
		r.ColdMedianS, r.FloorMedianS = median(r.ColdSamplesS), median(r.FloorSamplesS)
		if r.ColdMedianS > 0 && r.FloorMedianS > 0 {
			r.ColdVsFloor = ratio(r.ColdMedianS, r.FloorMedianS)
		}
		if bl != nil && bl.Error == "" && bl.Secrets > 0 {
			r.ScriptWallExtrapolS = round3(bl.WallPerSecretMs * float64(r.N) / 1000)
			r.ScriptCPUExtrapolS = round3(bl.CPUPerSecretMs * float64(r.N) / 1000)
			r.ScriptVsSteadyCPU = ratio(bl.CPUPerSecretMs, r.CPUPerRotationSteadyMs)
			r.ScriptVsColdCPU = ratio(bl.CPUPerSecretMs, r.CPUPerSecretColdMs)
		}
	}
	var t []Target
	// 1. cold start of the largest N within 1.5x of the floor
	var big *Run
	for _, r := range b.res.Runs {
		if r.Cold != nil && r.Floor != nil && !r.Cold.TimedOut {
			big = r
		}
	}
	if big != nil {
		name := fmt.Sprintf("%d managed Secrets from a cold start within 1.5x of the floor's time", big.N)
		if big.N < 10000 {
			name += " (10,000 did not run)"
		}
		t = append(t, Target{name, big.ColdVsFloor > 0 && big.ColdVsFloor <= 1.5,
			fmt.Sprintf("median %.2fs %v vs floor %.2fs %v = %.2fx", big.ColdMedianS, big.ColdSamplesS,
				big.FloorMedianS, big.FloorSamplesS, big.ColdVsFloor)})
	}
	// 2. peak RSS under 20 MB
	var peak int64
	var peakAt string
	for _, r := range b.res.Runs {
		for _, p := range []*Phase{r.ColdM0, r.Cold, r.Idle, r.Steady} {
			if p != nil && p.PeakRSSKB > peak {
				peak, peakAt = p.PeakRSSKB, fmt.Sprintf("N=%d %s", r.N, p.Name)
			}
		}
	}
	if peak > 0 {
		t = append(t, Target{"peak RSS under 20 MB", peak < 20*1024,
			fmt.Sprintf("largest VmHWM %.1f MB (%s)", float64(peak)/1024, peakAt)})
	}
	// 3. no growth with the unmanaged Secrets
	for _, r := range b.res.Runs {
		if r.ColdM0 != nil && r.Cold != nil {
			d := r.Cold.PeakRSSKB - r.ColdM0.PeakRSSKB
			t = append(t, Target{fmt.Sprintf("no RSS growth with %d unmanaged Secrets", r.M),
				d <= 1024 && float64(d) <= 0.05*float64(r.ColdM0.PeakRSSKB),
				fmt.Sprintf("N=%d: peak %.1f MB with M=0, %.1f MB with M=%d (%+d kB)", r.N,
					float64(r.ColdM0.PeakRSSKB)/1024, float64(r.Cold.PeakRSSKB)/1024, r.M, d)})
		}
	}
	// 4. one token request per identity per lifetime share
	ok, fig := true, []string{}
	for _, r := range b.res.Runs {
		if r.Cold == nil {
			continue
		}
		s := fmt.Sprintf("N=%d cold %d for %d identities", r.N, r.Cold.TokenRequests, r.Identities)
		if r.Cold.TokenRequests != r.Identities {
			ok = false
		}
		if r.Steady != nil && r.Steady.Rotations > 0 {
			rounds := toInt(r.Steady.Extra["rounds"])
			s += fmt.Sprintf(", steady %d over %d round(s)", r.Steady.TokenRequests, rounds)
			if r.Steady.TokenRequests > r.Identities*(rounds+1) {
				ok = false
			}
		}
		fig = append(fig, s)
	}
	if len(fig) > 0 {
		t = append(t, Target{"one token request per identity per lifetime share, not per Secret", ok, strings.Join(fig, "; ")})
	}
	// 5. idle CPU effectively zero
	ok, fig = true, nil
	for _, r := range b.res.Runs {
		if r.Idle != nil && r.Idle.WallS > 0 {
			share := r.Idle.CPUS / r.Idle.WallS
			wakes := float64(r.Idle.CtxSwitches) / r.Idle.WallS
			if share > 0.001 || wakes > 5 {
				ok = false
			}
			fig = append(fig, fmt.Sprintf("N=%d %.3fs in %.0fs (%.3f%% of a core), %.1f wake-ups/s", r.N, r.Idle.CPUS,
				r.Idle.WallS, 100*share, wakes))
		}
	}
	if len(fig) > 0 {
		t = append(t, Target{"idle CPU effectively zero (< 0.1% of a core, <= 5 wake-ups/s: no polling loop)", ok, strings.Join(fig, "; ")})
	}
	// 6. 20x less CPU per rotation than the script
	ok, fig = true, nil
	for _, r := range b.res.Runs {
		if r.ScriptVsSteadyCPU > 0 {
			if r.ScriptVsSteadyCPU < 20 {
				ok = false
			}
			fig = append(fig, fmt.Sprintf("N=%d %.0fx (script %.1f ms/Secret, controller %.3f ms/rotation steady, %.3f ms/Secret cold)",
				r.N, r.ScriptVsSteadyCPU, bl.CPUPerSecretMs, r.CPUPerRotationSteadyMs, r.CPUPerSecretColdMs))
		}
	}
	if len(fig) > 0 {
		t = append(t, Target{"at least 20x less CPU per rotation than the script baseline", ok, strings.Join(fig, "; ")})
	}
	// 7. at most 0.5 ms of CPU per steady rotation at the largest N (the Event written)
	if n := len(b.res.Runs); n > 0 {
		r := b.res.Runs[n-1]
		if r.CPUPerRotationSteadyMs > 0 {
			fig := fmt.Sprintf("N=%d, M=%d: %.3f ms per rotation (steady), %.3f ms per Secret (cold)", r.N, r.M,
				r.CPUPerRotationSteadyMs, r.CPUPerSecretColdMs)
			for _, o := range b.res.Runs[:n-1] {
				if o.CPUPerRotationSteadyMs > 0 {
					fig += fmt.Sprintf("; N=%d: %.3f ms", o.N, o.CPUPerRotationSteadyMs)
				}
			}
			t = append(t, Target{"at most 0.5 ms of CPU per rotation at the largest N (steady state, its Event written)",
				r.CPUPerRotationSteadyMs <= 0.5 && r.CPUPerSecretColdMs <= 0.5, fig})
		}
	}
	// 8. the largest N against a real kube-apiserver: every managed Secret filled
	if rr := b.res.Real; rr != nil {
		fig := fmt.Sprintf("N=%d (%d filled before), M=%d: %d of %d unfilled, resync requeued %d", rr.N,
			rr.Prefilled, rr.M, rr.Unfilled, rr.Listed, rr.ResyncRequeued)
		if rr.Cold != nil {
			fig += fmt.Sprintf(", all filled in %.2fs", rr.Cold.WallS)
		}
		if rr.Error != "" {
			fig += ": " + rr.Error
		}
		t = append(t, Target{"every managed Secret filled against a real kube-apiserver, none lost and found again by the resync",
			rr.Error == "" && rr.Unfilled == 0 && rr.Listed == rr.N && rr.ResyncRequeued == 0, fig})
	}
	// 9. Secrets failing for one cause cost per cause
	if fc := b.res.Fail; fc != nil {
		if ft := fc.target(); ft != nil {
			t = append(t, *ft)
		}
	}
	b.res.Targets = t
}

// toInt reads a number kept in an Extra map (an int when measured, a float64 when read back from JSON).
func toInt(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case float64:
		return int(x)
	}
	return 0
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return round3((s[len(s)/2-1] + s[len(s)/2]) / 2)
}

func mb(kb int64) string {
	if kb == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(kb)/1024)
}

func apiSummary(api map[string]int) string {
	keys := make([]string, 0, len(api))
	for k := range api {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if api[keys[i]] != api[keys[j]] {
			return api[keys[i]] > api[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, api[k]))
	}
	return strings.Join(parts, ", ")
}

// table renders the report (Markdown, readable on a terminal too).
func (b *bench) table() string {
	var w strings.Builder
	m := b.res.Machine
	fmt.Fprintf(&w, "\npgtoken-rotator benchmark, %s: %d CPUs (%s), kernel %s, load %s -> %s; controller: %s (tree at %s)\n",
		m.Date, m.Nproc, m.CPUModel, m.Kernel, m.LoadAvg, m.LoadAvgEnd, b.res.ControllerVersion, m.GitRev)
	c := b.res.Config
	fmt.Fprintf(&w, "Secrets over %d namespaces; %d roles on the controller's identity + %d ServiceAccount identities; %d workers; fake API server\n\n",
		c.Namespaces, c.Roles, c.SAIdentities, c.Workers)

	fmt.Fprintf(&w, "Times are medians of %d cold starts and %d floors per N (samples below); the other controller figures are from the first cold start.\n\n", c.Repeat, c.Repeat)
	fmt.Fprintf(&w, "| N managed | M unmanaged | cold start s | floor s | cold/floor | ctrl CPU s (cold) | CPU ms/Secret (cold) | CPU ms/rotation (steady) | peak RSS MB | API requests (cold) | token requests (cold / steady) | login checks (cold / steady) | idle CPU s | API server CPU s (ctrl / floor) |\n")
	fmt.Fprintf(&w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range b.res.Runs {
		if r.Cold == nil {
			fmt.Fprintf(&w, "| %d | %d | did not run: %s |\n", r.N, r.M, r.Error)
			continue
		}
		cold := r.Cold
		floorS, ratioS, kubeF := "-", "-", "-"
		if r.Floor != nil {
			floorS = fmt.Sprintf("%.2f", r.FloorMedianS)
			ratioS = fmt.Sprintf("%.2fx", r.ColdVsFloor)
			kubeF = fmt.Sprintf("%.2f", r.Floor.KubeCPUS)
		}
		steadyMs, tokS, logS, idle := "-", "-", "-", "-"
		peak := cold.PeakRSSKB
		if r.Steady != nil {
			steadyMs = fmt.Sprintf("%.3f (%d rot.)", r.CPUPerRotationSteadyMs, r.Steady.Rotations)
			tokS = fmt.Sprint(r.Steady.TokenRequests)
			logS = fmt.Sprint(r.Steady.LoginChecks)
			if r.Steady.PeakRSSKB > peak {
				peak = r.Steady.PeakRSSKB
			}
		}
		if r.Idle != nil {
			idle = fmt.Sprintf("%.3f / %.0fs", r.Idle.CPUS, r.Idle.WallS)
		}
		timed := ""
		if cold.TimedOut {
			timed = fmt.Sprintf(" (timed out, %d done)", cold.Completed)
		}
		fmt.Fprintf(&w, "| %d | %d | %.2f%s | %s | %s | %.2f | %.3f | %s | %s | %d | %d / %s | %d / %s | %s | %.2f / %s |\n",
			r.N, r.M, r.ColdMedianS, timed, floorS, ratioS, cold.CPUS, r.CPUPerSecretColdMs, steadyMs, mb(peak),
			cold.APITotal, cold.TokenRequests, tokS, cold.LoginChecks, logS, idle, cold.KubeCPUS, kubeF)
	}

	fmt.Fprintf(&w, "\nExpected per full rotation: token requests = identities, login checks = distinct (user, identity) pairs:\n\n")
	for _, r := range b.res.Runs {
		if r.Cold == nil {
			continue
		}
		fmt.Fprintf(&w, "- N=%d: %d identities, %d pairs. Cold starts %v s (CPU %v s), floors %v s. Cold API requests: %s\n",
			r.N, r.Identities, r.LoginPairs, r.ColdSamplesS, r.ColdCPUSamplesS, r.FloorSamplesS, apiSummary(r.Cold.API))
		for _, note := range r.Cold.Notes {
			if strings.HasPrefix(note, "controller log:") {
				fmt.Fprintf(&w, "  cold start: %s\n", note)
			}
		}
		if r.Steady != nil {
			fmt.Fprintf(&w, "  steady (period %vs, %v round(s), restart round cpu %vs): %s\n", r.Steady.Extra["period_s"],
				r.Steady.Extra["rounds"], r.Steady.Extra["restart_round_cpu_s"], apiSummary(r.Steady.API))
		}
		if r.Floor != nil {
			fmt.Fprintf(&w, "  floor: list %vs, then the writes %vs (workers waited %vs in all for tokens, %vs for logins); client cpu %.2fs; %s\n",
				r.Floor.Extra["list_s"], r.Floor.Extra["writes_s"], r.Floor.Extra["tokens_s"], r.Floor.Extra["logins_s"], r.Floor.CPUS, apiSummary(r.Floor.API))
		}
		if r.Idle != nil {
			fmt.Fprintf(&w, "  idle: %d wake-ups (context switches) in %.0fs, %d API requests, %d threads, RSS %s MB (anon %s, file %s)",
				r.Idle.CtxSwitches, r.Idle.WallS, r.Idle.APITotal, r.Idle.Threads, mb(r.Idle.RSSKB), mb(r.Idle.RssAnonKB), mb(r.Idle.RssFileKB))
			if sc, ok := r.Idle.Extra["metrics_scrape"].(map[string]any); ok {
				fmt.Fprintf(&w, "; one /metrics scrape: %d bytes, %v ms, controller CPU %v ms", toInt(sc["bytes"]), sc["wall_ms"], sc["controller_cpu_ms"])
			}
			fmt.Fprintf(&w, "\n")
		}
		if r.ColdM0 != nil {
			fmt.Fprintf(&w, "  memory flatness: cold start with M=0: %.2fs, cpu %.2fs, peak RSS %s MB; with M=%d: %.2fs, cpu %.2fs, peak RSS %s MB\n",
				r.ColdM0.WallS, r.ColdM0.CPUS, mb(r.ColdM0.PeakRSSKB), r.M, r.Cold.WallS, r.Cold.CPUS, mb(r.Cold.PeakRSSKB))
		}
	}

	if bl := b.res.Baseline; bl != nil {
		fmt.Fprintf(&w, "\nBaseline (bench/baseline.sh: curl + psql + kubectl patch per Secret), run on %d Secrets", bl.Secrets)
		if bl.Error != "" {
			fmt.Fprintf(&w, ": FAILED: %s\n", bl.Error)
		} else {
			fmt.Fprintf(&w, ": %.1fs wall, %.2fs CPU (user %.2f + sys %.2f) = %.1f ms wall and %.1f ms CPU per Secret; %d API requests, %d token requests, %d logins\n",
				bl.WallS, bl.CPUS, bl.UserS, bl.SysS, bl.WallPerSecretMs, bl.CPUPerSecretMs, bl.APITotal, bl.TokenRequests, bl.LoginChecks)
			fmt.Fprintf(&w, "\n| N | script wall s (extrapolated) | script CPU s (extrapolated) | controller CPU s (cold) | script/controller CPU (cold) | script/controller CPU per rotation (steady) |\n|---:|---:|---:|---:|---:|---:|\n")
			for _, r := range b.res.Runs {
				if r.Cold == nil {
					continue
				}
				fmt.Fprintf(&w, "| %d | %.0f | %.1f | %.2f | %.0fx | %.0fx |\n", r.N, r.ScriptWallExtrapolS, r.ScriptCPUExtrapolS,
					r.Cold.CPUS, r.ScriptVsColdCPU, r.ScriptVsSteadyCPU)
			}
			fmt.Fprintf(&w, "\n(script figures for N > %d are extrapolated per Secret from the %d-Secret run)\n", bl.Secrets, bl.Secrets)
		}
	}

	b.realTable(&w)
	b.failTable(&w)

	fmt.Fprintf(&w, "\nTargets:\n\n")
	for _, t := range b.res.Targets {
		mark := "MET"
		if !t.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(&w, "- [%s] %s: %s\n", mark, t.Name, t.Figure)
	}
	for _, r := range b.res.Runs {
		if r.Error != "" {
			fmt.Fprintf(&w, "\nN=%d did not complete: %s\n", r.N, r.Error)
		}
	}
	return w.String()
}

// report re-renders a saved results file (left as it is) and puts the table into the
// READMEs BENCH_README names (none by default; `make bench-readme` names both).
func report(path string) error {
	js, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	b := &bench{}
	if err := json.Unmarshal(js, &b.res); err != nil {
		return err
	}
	b.cfg = b.res.Config
	b.cfg.Readme = readmes()
	b.evaluate()
	table := b.table()
	fmt.Print(table)
	return b.writeReadmes(table)
}

const (
	readmeBegin = "<!-- bench:latest:begin -->"
	readmeEnd   = "<!-- bench:latest:end -->"
)

// write saves the JSON and puts the table into the READMEs BENCH_README names.
func (b *bench) write(table string) error {
	if err := os.MkdirAll(filepath.Dir(b.cfg.Out), 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(&b.res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(b.cfg.Out, append(js, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "results: %s\n", b.cfg.Out)
	return b.writeReadmes(table)
}

// writeReadmes puts the table into each README of BENCH_README between the markers.
func (b *bench) writeReadmes(table string) error {
	for _, readme := range strings.Fields(b.cfg.Readme) {
		rd, err := os.ReadFile(readme)
		if err != nil {
			continue // no README to update
		}
		s := string(rd)
		i, j := strings.Index(s, readmeBegin), strings.Index(s, readmeEnd)
		if i < 0 || j < i {
			continue
		}
		s = s[:i+len(readmeBegin)] + "\n" + strings.TrimSpace(table) + "\n" + s[j:]
		if err := os.WriteFile(readme, []byte(s), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "updated %s\n", readme)
	}
	return nil
}
