#!/usr/bin/env bash
# The alert rules (charts/pgtoken-rotator/files/prometheus-rules.yaml) under promtool:
# `promtool check rules`, `promtool test rules` of every tests/alerts/*.test.yaml, and a
# firing and a quiet case there for every rule of the file. promtool comes from Debian's
# prometheus package, unpacked and never installed (tests/promtool.sh). Prints TAP lines
# ("ok - NAME", "not ok - NAME: WHY") and exits 1 when one fails.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
RULES=charts/pgtoken-rotator/files/prometheus-rules.yaml
failed=0
ok() { echo "ok - $1"; }
not_ok() {
    echo "not ok - $1: $2"
    failed=1
}
oneline() { grep -v '^\s*$' | tail -n "${1:-4}" | tr -s ' \n' ' '; }

mkdir -p build/tests
if ! promtool=$(tests/promtool.sh 2>build/tests/promtool.log); then
    not_ok "alerts: promtool from Debian's prometheus package (tests/promtool.sh)" "$(oneline 2 <build/tests/promtool.log)"
    exit 1
fi
ok "alerts: $("$promtool" --version 2>&1 | head -n 1) (tests/promtool.sh)"

if out=$("$promtool" check rules "$RULES" 2>&1); then
    ok "alerts: promtool check rules $RULES ($(echo "$out" | grep -o '[0-9]* rules found'))"
else
    not_ok "alerts: promtool check rules $RULES" "$(echo "$out" | oneline)"
fi
if out=$(yamllint -s "$RULES" tests/alerts 2>&1); then
    ok "alerts: yamllint $RULES tests/alerts"
else
    not_ok "alerts: yamllint $RULES tests/alerts" "$(echo "$out" | oneline)"
fi

tests=(tests/alerts/*.test.yaml)
if [ ! -e "${tests[0]}" ]; then
    not_ok "alerts: promtool test rules" "no tests/alerts/*.test.yaml"
    exit 1
fi
for t in "${tests[@]}"; do
    # promtool reads rule_files relative to the test file.
    if out=$(cd "$(dirname "$t")" && "$promtool" test rules "$(basename "$t")" 2>&1); then
        ok "alerts: promtool test rules $t"
    else
        not_ok "alerts: promtool test rules $t" "$(echo "$out" | grep -v '^\s*$' | head -n 12 | tr -s ' \n' ' ')"
    fi
done

# Every rule has a case where it fires and one where it stays quiet; every tested
# alert is a rule of the file.
python3 - "$RULES" "${tests[@]}" <<'EOF' || failed=1
import sys, yaml
rules_file, tests = sys.argv[1], sys.argv[2:]
with open(rules_file) as f:
    rules = [r["alert"] for g in yaml.safe_load(f)["groups"] for r in g["rules"] if "alert" in r]
fires, quiet = set(), set()
for t in tests:
    with open(t) as f:
        doc = yaml.safe_load(f)
    for group in doc.get("tests") or []:
        for case in group.get("alert_rule_test") or []:
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
bad = 0
if not rules:
    print(f"not ok - alerts: {rules_file} has alert rules: none found")
    bad = 1
for r in rules:
    lack = [w for w, s in (("a firing case", fires), ("a quiet case", quiet)) if r not in s]
    if lack:
        print(f"not ok - alerts: {r} has a firing and a quiet case in tests/alerts: no {' and no '.join(lack)}")
        bad = 1
    else:
        print(f"ok - alerts: {r} has a firing and a quiet case in tests/alerts")
for name in sorted((fires | quiet) - set(rules)):
    print(f"not ok - alerts: tests/alerts tests {name}, which is no rule of {rules_file}")
    bad = 1
sys.exit(bad)
EOF
exit $failed
