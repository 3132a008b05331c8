package e2e

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs the tests, then prints the run's totals of the two checks that
// span every test: the search for minted tokens in everything the controllers
// showed, and the sanitizer reports of every controller stopped. tests/reliability
// puts these lines in the README's reliability table.
func TestMain(m *testing.M) {
	code := m.Run()
	tier := "fake"
	if realKube() {
		tier = "real"
	}
	result := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	fmt.Printf("RELIABILITY\t%s\tLeakScan\tSecurity\tNo token in any log line, Event, annotation, label or metric\t"+
		"every token the fake Entra minted (whole, and its signature alone) searched for in every controller log, Event, "+
		"Secret annotation and label, and /metrics scrape of each e2e test\n", tier)
	fmt.Printf("RELIABILITY-RESULT\t%s\tLeakScan\t%s\t%d tokens searched in %d texts (%d KB) of %d tests; %d found\n",
		tier, result(leaks.found == 0 && leaks.worlds > 0), leaks.tokens, leaks.places, leaks.bytes/1024,
		leaks.worlds, leaks.found)
	fmt.Printf("RELIABILITY\t%s\tSanitizers\tSecurity\tMemory errors, leaks, undefined behaviour\t"+
		"every e2e test runs the AddressSanitizer+UndefinedBehaviorSanitizer build; each controller stopped "+
		"with SIGTERM must exit 0 with no report (leak check at exit)\n", tier)
	fmt.Printf("RELIABILITY-RESULT\t%s\tSanitizers\t%s\t%d controller runs stopped, %d unclean, %d sanitizer reports\n",
		tier, result(sanitized.unclean == 0 && len(sanitized.reports) == 0 && sanitized.stops > 0),
		sanitized.stops, sanitized.unclean, len(sanitized.reports))
	for _, r := range sanitized.reports {
		fmt.Printf("sanitizer report: %s\n", r)
	}
	os.Exit(code)
}
