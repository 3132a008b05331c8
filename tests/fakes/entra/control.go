package entra

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
)

// Requests returns the recorded requests (oldest first) of the given
// endpoint ("" for all) with a sequence number above since.
func (s *Server) Requests(endpoint string, since int64) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Record{}
	for _, r := range s.records {
		if r.Seq > since && (endpoint == "" || r.Endpoint == endpoint) {
			out = append(out, r)
		}
	}
	return out
}

// ClearRequests forgets the recorded requests.
func (s *Server) ClearRequests() {
	s.mu.Lock()
	s.records = nil
	s.mu.Unlock()
}

// Stats is what GET /_fake/stats returns: request counts by endpoint, then
// by HTTP status ("0" for requests that got no answer) and "total".
type Stats struct {
	Total     int                       `json:"total"`
	Endpoints map[string]map[string]int `json:"endpoints"`
}

// Stats counts the requests served since the start or the last reset.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Endpoints: map[string]map[string]int{}}
	for e, by := range s.stats {
		c := map[string]int{}
		for k, v := range by {
			c[k] = v
		}
		st.Endpoints[e] = c
		st.Total += by["total"]
	}
	return st
}

// ResetStats zeroes the counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	s.stats = map[string]map[string]int{}
	s.mu.Unlock()
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func controlError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// control serves the test-only API under /_fake/ (not recorded, never
// faulted, loopback clients only):
//
//	GET    /_fake/health                 {"ok":true}
//	GET    /_fake/config                 the current config
//	PUT    /_fake/config                 replace it (body: config JSON)
//	GET    /_fake/faults                 pending faults
//	POST   /_fake/faults                 add a fault (object) or faults (array); answers them with ids
//	DELETE /_fake/faults                 drop all faults
//	GET    /_fake/requests[?endpoint=E&since=SEQ]   recorded requests
//	DELETE /_fake/requests               forget them
//	GET    /_fake/stats                  counts by endpoint and status
//	DELETE /_fake/stats                  zero them
//	POST   /_fake/reset                  drop faults, requests and stats
//	GET    /_fake/minted                 every access token issued (kept across reset)
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	if !isLoopback(r.RemoteAddr) {
		controlError(w, http.StatusForbidden, "the control API answers loopback clients only")
		return
	}
	route := r.Method + " " + r.URL.Path
	switch route {
	case "GET /_fake/health":
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	case "GET /_fake/config":
		writeJSON(w, http.StatusOK, s.config())
	case "PUT /_fake/config":
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			controlError(w, http.StatusBadRequest, err.Error())
			return
		}
		cfg, err := ParseConfig(b)
		if err != nil {
			controlError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.SetConfig(cfg)
		s.log.Printf("config replaced (tenant %s, %d apps, %d managed identities, token lifetime %ds)",
			cfg.TenantID, len(cfg.Apps), len(cfg.ManagedIdentities), cfg.tokenLifetime())
		writeJSON(w, http.StatusOK, cfg)
	case "GET /_fake/faults":
		writeJSON(w, http.StatusOK, s.Faults())
	case "POST /_fake/faults":
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			controlError(w, http.StatusBadRequest, err.Error())
			return
		}
		var fs []Fault
		b = bytes.TrimSpace(b)
		list := len(b) > 0 && b[0] == '['
		if list {
			err = strictJSON(b, &fs)
		} else {
			var f Fault
			err = strictJSON(b, &f)
			fs = []Fault{f}
		}
		if err != nil {
			controlError(w, http.StatusBadRequest, "fault: "+err.Error())
			return
		}
		added, err := s.AddFaults(fs)
		if err != nil {
			controlError(w, http.StatusBadRequest, err.Error())
			return
		}
		for _, f := range added {
			s.log.Printf("fault added: %s on %s, count %d", f.describe(), f.Endpoint, f.Count)
		}
		if list {
			writeJSON(w, http.StatusOK, added)
		} else {
			writeJSON(w, http.StatusOK, added[0])
		}
	case "DELETE /_fake/faults":
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case "GET /_fake/requests":
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		writeJSON(w, http.StatusOK, s.Requests(r.URL.Query().Get("endpoint"), since))
	case "DELETE /_fake/requests":
		s.ClearRequests()
		w.WriteHeader(http.StatusNoContent)
	case "GET /_fake/stats":
		writeJSON(w, http.StatusOK, s.Stats())
	case "DELETE /_fake/stats":
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	case "GET /_fake/minted":
		writeJSON(w, http.StatusOK, s.Minted())
	case "POST /_fake/reset":
		s.ClearFaults()
		s.ClearRequests()
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	default:
		controlError(w, http.StatusNotFound, "no such control route: "+route)
	}
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}
