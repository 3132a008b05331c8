package kube

import (
	"fmt"
	"strconv"
	"strings"
)

// labelReq is one requirement of a label selector (k8s.io/apimachinery/pkg/labels).
type labelReq struct {
	key    string
	op     string // "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
	values []string
}

type labelSelector []labelReq

// parseLabelSelector parses the syntax of labels.Parse:
// a=b, a==b, a!=b, a in (x,y), a notin (x), a, !a, a>1, a<1.
func parseLabelSelector(s string) (labelSelector, error) {
	var out labelSelector
	p := &lsParser{s: s}
	p.skip()
	if p.eof() {
		return nil, nil
	}
	for {
		r, err := p.requirement()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
		p.skip()
		if p.eof() {
			return out, nil
		}
		if p.s[p.i] != ',' {
			return nil, fmt.Errorf("found '%s', expected: ',' or 'end of string'", p.word())
		}
		p.i++
		p.skip()
	}
}

type lsParser struct {
	s string
	i int
}

func (p *lsParser) eof() bool { return p.i >= len(p.s) }
func (p *lsParser) skip() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func isLabelChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_./", c) >= 0
}

func (p *lsParser) word() string {
	st := p.i
	for p.i < len(p.s) && isLabelChar(p.s[p.i]) {
		p.i++
	}
	return p.s[st:p.i]
}

func (p *lsParser) requirement() (labelReq, error) {
	p.skip()
	if !p.eof() && p.s[p.i] == '!' {
		p.i++
		p.skip()
		k := p.word()
		if k == "" {
			return labelReq{}, fmt.Errorf("unable to parse requirement: found '', expected: identifier")
		}
		if err := validLabelKey(k); err != nil {
			return labelReq{}, err
		}
		return labelReq{key: k, op: "!"}, nil
	}
	k := p.word()
	if k == "" {
		return labelReq{}, fmt.Errorf("unable to parse requirement: found '%s', expected: !, identifier, or 'end of string'", p.rest())
	}
	if err := validLabelKey(k); err != nil {
		return labelReq{}, err
	}
	p.skip()
	if p.eof() || p.s[p.i] == ',' {
		return labelReq{key: k, op: "exists"}, nil
	}
	switch {
	case strings.HasPrefix(p.s[p.i:], "=="):
		p.i += 2
		return p.single(k, "=")
	case strings.HasPrefix(p.s[p.i:], "!="):
		p.i += 2
		return p.single(k, "!=")
	case p.s[p.i] == '=':
		p.i++
		return p.single(k, "=")
	case p.s[p.i] == '>':
		p.i++
		return p.single(k, "gt")
	case p.s[p.i] == '<':
		p.i++
		return p.single(k, "lt")
	}
	w := p.word()
	switch w {
	case "in", "notin":
		p.skip()
		if p.eof() || p.s[p.i] != '(' {
			return labelReq{}, fmt.Errorf("found '%s', expected: '('", p.rest())
		}
		p.i++
		var vals []string
		for {
			p.skip()
			v := p.word()
			if err := validLabelValue(v); err != nil {
				return labelReq{}, err
			}
			vals = append(vals, v)
			p.skip()
			if p.eof() {
				return labelReq{}, fmt.Errorf("found 'end of string', expected: ',' or ')'")
			}
			if p.s[p.i] == ')' {
				p.i++
				break
			}
			if p.s[p.i] != ',' {
				return labelReq{}, fmt.Errorf("found '%s', expected: ',' or ')'", p.rest())
			}
			p.i++
		}
		return labelReq{key: k, op: w, values: vals}, nil
	}
	return labelReq{}, fmt.Errorf("found '%s', expected: in, notin, =, ==, !=, gt, lt", w+p.rest())
}

func (p *lsParser) rest() string {
	r := p.s[p.i:]
	if i := strings.IndexAny(r, " ,"); i > 0 {
		r = r[:i]
	}
	return r
}

func (p *lsParser) single(k, op string) (labelReq, error) {
	p.skip()
	v := p.word()
	if err := validLabelValue(v); err != nil {
		return labelReq{}, err
	}
	if op == "gt" || op == "lt" {
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return labelReq{}, fmt.Errorf("for 'Gt', 'Lt' operators, the value must be an integer")
		}
	}
	return labelReq{key: k, op: op, values: []string{v}}, nil
}

func validLabelKey(k string) error {
	name := k
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		name = k[i+1:]
		if i == 0 || len(k[:i]) > 253 {
			return fmt.Errorf("key: Invalid value: %q: prefix part must be non-empty", k)
		}
	}
	if name == "" || len(name) > 63 || !alnum(name[0]) || !alnum(name[len(name)-1]) {
		return fmt.Errorf("key: Invalid value: %q: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')", k)
	}
	return nil
}

func validLabelValue(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 63 || !alnum(v[0]) || !alnum(v[len(v)-1]) || strings.Contains(v, "/") {
		return fmt.Errorf("values[0][%s]: Invalid value: %q: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')", v, v)
	}
	return nil
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }

func (s labelSelector) matches(labels map[string]string) bool {
	for _, r := range s {
		v, has := labels[r.key]
		switch r.op {
		case "=":
			if !has || v != r.values[0] {
				return false
			}
		case "!=":
			if has && v == r.values[0] {
				return false
			}
		case "in":
			if !has || !contains(r.values, v) {
				return false
			}
		case "notin":
			if has && contains(r.values, v) {
				return false
			}
		case "exists":
			if !has {
				return false
			}
		case "!":
			if has {
				return false
			}
		case "gt", "lt":
			if !has {
				return false
			}
			a, err1 := strconv.ParseInt(v, 10, 64)
			b, _ := strconv.ParseInt(r.values[0], 10, 64)
			if err1 != nil || (r.op == "gt" && !(a > b)) || (r.op == "lt" && !(a < b)) {
				return false
			}
		}
	}
	return true
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// fieldReq is one term of a field selector: key=value, key==value, key!=value.
type fieldReq struct {
	key, value string
	neq        bool
}

type fieldSelector []fieldReq

func parseFieldSelector(s string) (fieldSelector, error) {
	var out fieldSelector
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, term := range splitTerms(s) {
		term = strings.TrimSpace(term)
		if term == "" {
			continue
		}
		var r fieldReq
		switch {
		case strings.Contains(term, "!="):
			i := strings.Index(term, "!=")
			r = fieldReq{key: term[:i], value: term[i+2:], neq: true}
		case strings.Contains(term, "=="):
			i := strings.Index(term, "==")
			r = fieldReq{key: term[:i], value: term[i+2:]}
		case strings.Contains(term, "="):
			i := strings.Index(term, "=")
			r = fieldReq{key: term[:i], value: term[i+1:]}
		default:
			return nil, fmt.Errorf("invalid selector: '%s'; can't understand '%s'", s, term)
		}
		r.key = strings.TrimSpace(r.key)
		r.value = unescapeFieldValue(strings.TrimSpace(r.value))
		out = append(out, r)
	}
	return out, nil
}

// splitTerms splits on commas not escaped with a backslash.
func splitTerms(s string) []string {
	var out []string
	st := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == ',' {
			out = append(out, s[st:i])
			st = i + 1
		}
	}
	return append(out, s[st:])
}

func unescapeFieldValue(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// exact returns the value the selector requires key to equal, if any.
func (s fieldSelector) exact(key string) (string, bool) {
	for _, r := range s {
		if r.key == key && !r.neq {
			return r.value, true
		}
	}
	return "", false
}

func (s fieldSelector) matches(fields map[string]string) bool {
	for _, r := range s {
		v := fields[r.key]
		if r.neq == (v == r.value) {
			return false
		}
	}
	return true
}

// selector is a watch/list predicate.
type selector struct {
	labels labelSelector
	fields fieldSelector
	info   *resInfo
}

func (s *selector) empty() bool { return len(s.labels) == 0 && len(s.fields) == 0 }

func (s *selector) matches(o Obj) bool {
	if o == nil {
		return false
	}
	if len(s.labels) > 0 && !s.labels.matches(objLabels(o)) {
		return false
	}
	if len(s.fields) > 0 && !s.fields.matches(s.info.fieldSet(o)) {
		return false
	}
	return true
}

func objLabels(o Obj) map[string]string {
	out := map[string]string{}
	for k, v := range getMap(o, "metadata", "labels") {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}
