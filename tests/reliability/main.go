// Command reliability builds the README's reliability table from a test run.
//
// Rows come from two places: the e2e tests declare theirs while they run
// (covers() in tests/e2e prints "RELIABILITY\ttier\ttest\tclass\tfault\thow",
// TestMain prints totals as "RELIABILITY-RESULT\ttier\tname\tPASS|FAIL\tdetail"),
// and rows.tsv names the unit tests and fuzzers that prove the rest. Every
// result is read from the logs tests/run wrote (build/test-logs/*.log): a row
// says what the run said, never what someone typed.
//
//	go run ./reliability -logs ../build/test-logs -rows reliability/rows.tsv -readme ../README.md [-write]
//
// The table goes to -out (build/test-logs/reliability.md). The test run checks
// that the README's table (between "<!-- reliability:begin -->" and
// "<!-- reliability:end -->") has this run's rows, in order (results and the
// heading change with every run; the rows only with the tests); `make
// reliability-table` (-write) puts the table of the last run in the README. It
// prints one TAP line: "ok - reliability table ..." or "not ok - ..." when the
// table cannot be built (no rows, a declared row without a result, no
// markers), when a row failed or has no result, or when the README's rows are
// not this run's.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

const (
	beginMark = "<!-- reliability:begin -->"
	endMark   = "<!-- reliability:end -->"
)

// result is one test's outcome in one tier.
type result struct {
	status string // PASS, FAIL, SKIP
	detail string // duration or totals
}

type row struct {
	class, fault, how, test string
	results                 map[string]result // by tier: fake, real, unit
	order                   int
}

// goResultRe matches a top-level "go test -v" result line.
var goResultRe = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)`)

// tierMark is what tests/suites/e2e.sh prints before the real kube-apiserver tier.
const tierMark = "=== e2e against a real kube-apiserver"

// readE2E reads one log: declared rows and the results of the tests that declared them.
func readE2E(path string, rows map[string]*row, order *int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tier := "fake"
	suite := strings.TrimSuffix(filepath.Base(path), ".log")
	results := map[string]result{} // tier + "\x00" + test
	totals := map[string]bool{}    // results that are a suite's totals (RELIABILITY-RESULT)
	type decl struct{ tier, test, key string }
	var decls []decl
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if line == tierMark {
			tier = "real"
			continue
		}
		if m := goResultRe.FindStringSubmatch(line); m != nil {
			results[tier+"\x00"+m[2]] = result{m[1], m[3] + " s"}
			continue
		}
		fields := strings.Split(line, "\t")
		switch {
		case fields[0] == "RELIABILITY" && len(fields) == 6:
			key := fields[2] + "\x00" + fields[3] + "\x00" + fields[4]
			r := rows[key]
			if r == nil {
				*order++
				r = &row{class: fields[3], fault: fields[4], how: fields[5], test: fields[2],
					results: map[string]result{}, order: *order}
				rows[key] = r
			}
			decls = append(decls, decl{fields[1], fields[2], key})
		case fields[0] == "RELIABILITY-RESULT" && len(fields) == 5:
			results[fields[1]+"\x00"+fields[2]] = result{fields[3], suite + " suite: " + fields[4]}
			totals[fields[1]+"\x00"+fields[2]] = true
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	var missing []string
	for _, d := range decls {
		res, ok := results[d.tier+"\x00"+d.test]
		if !ok {
			missing = append(missing, d.tier+"/"+d.test)
			continue
		}
		// Totals of the same check from several suites (e2e, sdk) add up: it
		// passes only if it passed in each.
		if prev, ok := rows[d.key].results[d.tier]; ok && totals[d.tier+"\x00"+d.test] &&
			prev.detail != res.detail {
			if prev.status != "PASS" {
				res.status = prev.status
			}
			res.detail = prev.detail + "; " + res.detail
		}
		rows[d.key].results[d.tier] = res
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: rows declared without a result: %s", path, strings.Join(missing, ", "))
	}
	return nil
}

// tapRe matches a TAP line of the unit tests and fuzzers.
var tapRe = regexp.MustCompile(`^(ok|not ok) - (.*)$`)

// readRows adds the rows of rows.tsv, their results from the named logs.
func readRows(path, logs string, rows map[string]*row, order *int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for n, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			return fmt.Errorf("%s:%d: want 5 tab-separated fields, have %d", path, n+1, len(f))
		}
		re, err := regexp.Compile(f[4])
		if err != nil {
			return fmt.Errorf("%s:%d: %v", path, n+1, err)
		}
		logb, err := os.ReadFile(filepath.Join(logs, f[3]+".log"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		pass, fail := 0, 0
		names := map[string]int{} // what the lines name before their first ": "
		var nameOrder []string
		for _, l := range strings.Split(string(logb), "\n") {
			m := tapRe.FindStringSubmatch(l)
			if m == nil || !re.MatchString(m[2]) {
				continue
			}
			name, _, _ := strings.Cut(m[2], ": ")
			if names[name] == 0 {
				nameOrder = append(nameOrder, name)
			}
			names[name]++
			if m[1] == "ok" {
				pass++
			} else {
				fail++
			}
		}
		var parts []string
		for _, n := range nameOrder {
			if names[n] > 1 {
				parts = append(parts, fmt.Sprintf("%s (%d)", n, names[n]))
			} else {
				parts = append(parts, n)
			}
		}
		test := "(none ran)"
		if len(parts) > 0 {
			test = strings.Join(parts, ", ")
		}
		r := &row{class: f[0], fault: f[1], how: f[2], test: "`" + f[3] + "`: " + test,
			results: map[string]result{}}
		switch {
		case fail > 0:
			r.results["unit"] = result{"FAIL", fmt.Sprintf("%d of %d failed", fail, pass+fail)}
		case pass > 0:
			r.results["unit"] = result{"PASS", fmt.Sprintf("%d passed", pass)}
		}
		*order++
		r.order = *order
		rows["rows.tsv\x00"+f[0]+"\x00"+f[1]] = r
	}
	return nil
}

func cell(r *row, tier string) string {
	res, ok := r.results[tier]
	if !ok {
		return "not run"
	}
	switch res.status {
	case "PASS":
		return "pass (" + res.detail + ")"
	case "SKIP":
		return "skipped"
	default:
		return "**FAIL** (" + res.detail + ")"
	}
}

func esc(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// preferredClasses come first, in this order; others follow as first seen.
var preferredClasses = []string{"Kubernetes API", "Entra ID", "PostgreSQL", "Clock", "Process",
	"Bad input: annotations", "Bad input: responses", "Bad input: parsers", "Security"}

// render writes the table, sorted by class, rows of a class in the order first seen.
func render(rows map[string]*row, rev string, when time.Time) (string, [3]int) {
	list := make([]*row, 0, len(rows))
	for _, r := range rows {
		list = append(list, r)
	}
	classOrder := map[string]int{}
	for i, c := range preferredClasses {
		classOrder[c] = i - len(preferredClasses)
	}
	for _, r := range list {
		if o, ok := classOrder[r.class]; !ok || r.order < o {
			classOrder[r.class] = r.order
		}
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.class != b.class {
			return classOrder[a.class] < classOrder[b.class]
		}
		return a.order < b.order
	})
	var counts [3]int // pass, fail, other
	var sb strings.Builder
	sb.WriteString("| Class | Fault or bad input | How it is tested | Test | Local stack (fake API server) | Real kube-apiserver |\n")
	sb.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range list {
		var a, b string
		if _, unit := r.results["unit"]; unit || strings.HasPrefix(r.test, "`") {
			a, b = cell(r, "unit"), "n/a"
		} else {
			a, b = cell(r, "fake"), cell(r, "real")
		}
		for _, c := range []string{a, b} {
			switch {
			case strings.HasPrefix(c, "pass"):
				counts[0]++
			case strings.HasPrefix(c, "**FAIL"):
				counts[1]++
			}
		}
		test := r.test
		if !strings.HasPrefix(test, "`") {
			test = "`" + test + "`"
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s |\n", esc(r.class), esc(r.fault), esc(r.how),
			esc(test), a, b)
	}
	head := fmt.Sprintf("Generated by `tests/reliability` from the `./run test` run of %s at revision %s: "+
		"%d rows, %d results passed, %d failed.\n\n", when.UTC().Format("2006-01-02 15:04 MST"), rev,
		len(list), counts[0], counts[1])
	return head + sb.String(), counts
}

func gitRev(dir string) string {
	out, err := exec.Command("git", "-C", dir, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// tableCells splits the rows of a rendered table (not its header) into their six
// cells; an escaped "\|" inside a cell is kept as "\x00".
func tableCells(table string) [][]string {
	var out [][]string
	for _, l := range strings.Split(table, "\n") {
		if !strings.HasPrefix(l, "| ") || strings.HasPrefix(l, "| Class |") {
			continue
		}
		cells := strings.Split(strings.ReplaceAll(l, `\|`, "\x00"), " | ")
		if len(cells) >= 6 {
			cells[5] = strings.TrimSuffix(cells[5], " |")
			out = append(out, cells)
		}
	}
	return out
}

// tableRows returns the rows of a rendered table as their first four cells: class,
// fault, how, test. Results and the heading line (date, revision, counts) differ
// from run to run; the rows do not.
func tableRows(table string) []string {
	var out []string
	for _, cells := range tableCells(table) {
		out = append(out, strings.Join(cells[:4], " | "))
	}
	return out
}

// problems lists the rows whose results fail the run: a failed result, or none
// where one was due ("not run"; the real tier's column only when it ran).
func problems(table string, realTier bool) []string {
	var out []string
	for _, cells := range tableCells(table) {
		name := strings.ReplaceAll(cells[3], "\x00", "|")
		switch {
		case strings.HasPrefix(cells[4], "**FAIL") || strings.HasPrefix(cells[5], "**FAIL"):
			out = append(out, name+" failed")
		case cells[4] == "not run" || (realTier && cells[5] == "not run"):
			out = append(out, name+" has no result")
		}
	}
	return out
}

// realTierSkipped reports whether the run skipped the real kube-apiserver tier on
// purpose (tests/suites/e2e.sh prints this line then).
func realTierSkipped(logs string) bool {
	b, err := os.ReadFile(filepath.Join(logs, "e2e.log"))
	return err == nil && bytes.Contains(b, []byte("--- SKIP: RealKubeTier"))
}

func run() (string, error) {
	logs := flag.String("logs", "../build/test-logs", "the test run's logs")
	rowsPath := flag.String("rows", "reliability/rows.tsv", "rows proven by unit tests and fuzzers")
	readme := flag.String("readme", "../README.md", "README whose table is checked (or written with -write)")
	write := flag.Bool("write", false, "put the table in the README (make reliability-table) instead of checking it")
	out := flag.String("out", "", "also write the table here (default: LOGS/reliability.md)")
	flag.Parse()

	rows := map[string]*row{}
	order := 0
	logFiles, _ := filepath.Glob(filepath.Join(*logs, "*.log"))
	sort.Strings(logFiles)
	for _, l := range logFiles {
		if err := readE2E(l, rows, &order); err != nil {
			return "", err
		}
	}
	declared := len(rows)
	if declared == 0 {
		return "", fmt.Errorf("no test declared a row in %s (did the e2e suite run?)", *logs)
	}
	if err := readRows(*rowsPath, *logs, rows, &order); err != nil {
		return "", err
	}
	table, counts := render(rows, gitRev(filepath.Dir(*readme)), time.Now())
	if *out == "" {
		*out = filepath.Join(*logs, "reliability.md")
	}
	if err := os.WriteFile(*out, []byte(table), 0o644); err != nil {
		return "", err
	}
	if bad := problems(table, !realTierSkipped(*logs)); len(bad) > 0 {
		return "", fmt.Errorf("%d rows did not pass (table in %s): %s", len(bad), *out, strings.Join(bad, "; "))
	}
	b, err := os.ReadFile(*readme)
	if err != nil {
		return "", err
	}
	i, j := bytes.Index(b, []byte(beginMark)), bytes.Index(b, []byte(endMark))
	if i < 0 || j < i {
		return "", fmt.Errorf("%s has no %s ... %s block", *readme, beginMark, endMark)
	}
	if *write {
		var nb bytes.Buffer
		nb.Write(b[:i+len(beginMark)])
		nb.WriteString("\n" + table)
		nb.Write(b[j:])
		if err := os.WriteFile(*readme, nb.Bytes(), 0o644); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d rows (%d from e2e tests), %d results passed; written to %s and %s",
			len(rows), declared, counts[0], *out, *readme), nil
	}
	// The test run only checks: the README's rows are this run's rows.
	have, want := tableRows(string(b[i:j])), tableRows(table)
	if d := diffRows(have, want); d != "" {
		return "", fmt.Errorf("the README's table is not this run's (update it: make reliability-table): %s", d)
	}
	return fmt.Sprintf("%d rows (%d from e2e tests), %d results passed, the README's rows are current; table in %s",
		len(rows), declared, counts[0], *out), nil
}

// diffRows names the first few rows only one of the two lists has, or the first
// place their order differs; "" when they are the same.
func diffRows(have, want []string) string {
	inHave, inWant := map[string]bool{}, map[string]bool{}
	for _, r := range have {
		inHave[r] = true
	}
	for _, r := range want {
		inWant[r] = true
	}
	var d []string
	for _, r := range want {
		if !inHave[r] && len(d) < 5 {
			d = append(d, "missing from the README: "+strings.ReplaceAll(r, "\x00", "|"))
		}
	}
	for _, r := range have {
		if !inWant[r] && len(d) < 10 {
			d = append(d, "in the README, not in this run: "+strings.ReplaceAll(r, "\x00", "|"))
		}
	}
	if len(d) == 0 {
		for k := range want {
			if k >= len(have) || have[k] != want[k] {
				return fmt.Sprintf("row %d differs in order: %s", k+1, strings.ReplaceAll(want[k], "\x00", "|"))
			}
		}
		if len(have) != len(want) {
			return fmt.Sprintf("the README has %d rows, this run %d", len(have), len(want))
		}
		return ""
	}
	return strings.Join(d, "; ")
}

func main() {
	msg, err := run()
	if err != nil {
		fmt.Printf("not ok - reliability table: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("ok - reliability table: %s\n", msg)
}
