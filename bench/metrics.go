package main

// Reading the controller's own /metrics: what it counts of its API requests and login
// checks (a real API server is not asked for counts, and a login that never reaches
// PostgreSQL leaves no line in its log).

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// metricSample is one sample line of the Prometheus text format.
type metricSample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// scrapeMetrics reads every sample of url (comments skipped).
func scrapeMetrics(url string) ([]metricSample, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	var out []metricSample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if s, ok := parseSample(sc.Text()); ok {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}

// parseSample reads `name{k="v",...} value` (label values with \" \\ \n escapes).
func parseSample(line string) (metricSample, bool) {
	s := metricSample{Labels: map[string]string{}}
	if line == "" || line[0] == '#' {
		return s, false
	}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, false
	}
	s.Name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for len(line) > 0 && line[0] != '}' {
			eq := strings.Index(line, `="`)
			if eq <= 0 {
				return s, false
			}
			key, rest := strings.TrimLeft(line[:eq], ","), line[eq+2:]
			var v strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					if rest[j] == 'n' {
						v.WriteByte('\n')
						continue
					}
				}
				v.WriteByte(rest[j])
			}
			if j == len(rest) {
				return s, false
			}
			s.Labels[key] = v.String()
			line = strings.TrimPrefix(rest[j+1:], ",")
		}
		if len(line) == 0 {
			return s, false
		}
		line = line[1:]
	}
	f := strings.Fields(line)
	if len(f) < 1 {
		return s, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, false
	}
	s.Value = v
	return s, true
}

// metricSum adds up the samples of name (every label set); by, when not empty, keys
// the sums by those labels' values joined with a space, e.g. "patch 200".
func metricSum(samples []metricSample, name string, by ...string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		var k []string
		for _, l := range by {
			k = append(k, s.Labels[l])
		}
		out[strings.Join(k, " ")] += s.Value
	}
	return out
}

// apiRequests is the controller's count of API requests by verb, with the HTTP status
// for those not answered 2xx ("patch 409", "get error").
func apiRequests(samples []metricSample) map[string]int {
	api := map[string]int{}
	for k, v := range metricSum(samples, "pgtoken_rotator_kube_api_requests_total", "verb", "code") {
		verb, code, _ := strings.Cut(k, " ")
		if v <= 0 {
			continue
		}
		if !strings.HasPrefix(code, "2") { // 200, 201: the verb alone
			verb += " " + code
		}
		api[verb] += int(v)
	}
	return api
}
