package rendezvous

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
)

// metrics are the server's counters, updated atomically.
type metrics struct {
	conns, jobs, members, relaysActive                   atomic.Int64 // gauges
	joins, punchAttempts, evictions                      atomic.Int64
	relaysTotal, relayFailures, relayBytes               atomic.Int64
	stunTCP, stunUDP                                     atomic.Int64
	tiers                                                [4]atomic.Int64 // by Tier
	rejects                                              [CodeRelay + 1]atomic.Int64
	complete, timedOut, memberLeft, abandoned, shutdowns atomic.Int64
}

func (m *metrics) rejected(c Code) {
	if int(c) < len(m.rejects) {
		m.rejects[c].Add(1)
	}
}

func (m *metrics) outcome(t Tier) {
	if int(t) < len(m.tiers) {
		m.tiers[t].Add(1)
	}
}

func (m *metrics) jobOutcome(label string) {
	switch label {
	case "complete":
		m.complete.Add(1)
	case "timeout":
		m.timedOut.Add(1)
	case "abandoned":
		m.abandoned.Add(1)
	case "shutdown":
		m.shutdowns.Add(1)
	default:
		m.memberLeft.Add(1)
	}
}

// Metrics is a snapshot of a server's counters.
type Metrics struct {
	Connections   int64 // open TCP connections (control, relay, STUN)
	Jobs          int64 // jobs in progress
	Members       int64 // members connected to jobs in progress and not yet done
	Joins         int64 // joins accepted
	PunchAttempts int64 // pairs whose punch the server scheduled
	Pairs         map[Tier]int64
	JobsEnded     map[string]int64 // by outcome: complete, timeout, member_left, abandoned, shutdown
	Evictions     int64            // members that left a started job, failing it
	Rejected      map[Code]int64   // connections closed with an error, by code
	RelaysActive  int64
	RelaysTotal   int64
	RelayFailures int64 // relay pairs not spliced: the second side never came, the first hung up or sent while waiting, or one could not be told
	RelayBytes    int64 // bytes relayed, both directions
	STUNRequests  map[string]int64
}

// Metrics returns a snapshot of the server's counters (all zero for a nil
// Server).
func (s *Server) Metrics() Metrics {
	m := &metrics{}
	if s != nil {
		m = &s.met
	}
	out := Metrics{
		Connections: m.conns.Load(), Jobs: m.jobs.Load(), Members: m.members.Load(),
		Joins: m.joins.Load(), PunchAttempts: m.punchAttempts.Load(), Evictions: m.evictions.Load(),
		RelaysActive: m.relaysActive.Load(), RelaysTotal: m.relaysTotal.Load(),
		RelayFailures: m.relayFailures.Load(), RelayBytes: m.relayBytes.Load(),
		Pairs:     map[Tier]int64{},
		Rejected:  map[Code]int64{},
		JobsEnded: map[string]int64{},
		STUNRequests: map[string]int64{
			"tcp": m.stunTCP.Load(), "udp": m.stunUDP.Load(),
		},
	}
	for _, t := range []Tier{TierDirect, TierPunched, TierRelay} {
		out.Pairs[t] = m.tiers[t].Load()
	}
	for c := range m.rejects {
		if n := m.rejects[c].Load(); n > 0 {
			out.Rejected[Code(c)] = n
		}
	}
	for label, v := range map[string]*atomic.Int64{
		"complete": &m.complete, "timeout": &m.timedOut, "member_left": &m.memberLeft,
		"abandoned": &m.abandoned, "shutdown": &m.shutdowns,
	} {
		out.JobsEnded[label] = v.Load()
	}
	return out
}

// WritePrometheus writes the counters in the Prometheus text exposition
// format (version 0.0.4).
func (s *Server) WritePrometheus(w io.Writer) error {
	if s == nil {
		return errors.New("rendezvous: metrics of a nil server: make one with NewServer")
	}
	m := s.Metrics()
	bw := bufio.NewWriter(w)
	metric := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP fnmesh_rendezvous_%s %s\n# TYPE fnmesh_rendezvous_%s %s\n", name, help, name, typ)
	}
	value := func(name, labels string, v int64) {
		if labels != "" {
			labels = "{" + labels + "}"
		}
		fmt.Fprintf(bw, "fnmesh_rendezvous_%s%s %d\n", name, labels, v)
	}
	metric("connections", "gauge", "Open TCP connections (control, relay and STUN).")
	value("connections", "", m.Connections)
	metric("jobs", "gauge", "Jobs in progress: waiting for members or setting up their links.")
	value("jobs", "", m.Jobs)
	metric("members", "gauge", "Members connected to jobs in progress whose mesh is not complete yet.")
	value("members", "", m.Members)
	metric("joins_total", "counter", "Joins accepted.")
	value("joins_total", "", m.Joins)
	metric("jobs_ended_total", "counter", "Jobs that ended, by outcome.")
	for _, o := range []string{"complete", "timeout", "member_left", "abandoned", "shutdown"} {
		value("jobs_ended_total", fmt.Sprintf("outcome=%q", o), m.JobsEnded[o])
	}
	metric("evictions_total", "counter", "Members that disconnected from a started job, failing it.")
	value("evictions_total", "", m.Evictions)
	metric("punch_attempts_total", "counter", "Pairs whose simultaneous open the server scheduled.")
	value("punch_attempts_total", "", m.PunchAttempts)
	metric("pairs_total", "counter", "Pairs decided, by the tier they took.")
	for _, t := range []Tier{TierDirect, TierPunched, TierRelay} {
		value("pairs_total", fmt.Sprintf("tier=%q", t.String()), m.Pairs[t])
	}
	metric("relays_active", "gauge", "Relayed pairs currently spliced.")
	value("relays_active", "", m.RelaysActive)
	metric("relays_total", "counter", "Relayed pairs spliced since start.")
	value("relays_total", "", m.RelaysTotal)
	metric("relay_failures_total", "counter", "Relay pairs not spliced: the second side never arrived, the first hung up or sent while waiting, or one could not be told.")
	value("relay_failures_total", "", m.RelayFailures)
	metric("relay_bytes_total", "counter", "Bytes relayed, both directions.")
	value("relay_bytes_total", "", m.RelayBytes)
	metric("rejected_total", "counter", "Connections refused or cut with an error frame for what they sent or when they came (not members of failed jobs), by error code.")
	for c := Code(1); c <= CodeRelay; c++ {
		value("rejected_total", fmt.Sprintf("code=%q", c.String()), m.Rejected[c])
	}
	metric("stun_requests_total", "counter", "STUN binding requests answered, by transport.")
	value("stun_requests_total", `transport="tcp"`, m.STUNRequests["tcp"])
	value("stun_requests_total", `transport="udp"`, m.STUNRequests["udp"])
	return bw.Flush()
}

// Handler serves /healthz (200 "ok" while serving; 503 before Serve has
// started, and once shutting down) and /metrics (Prometheus text format).
// A nil Server's handler answers both with 503.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var serving, closing bool
		if s != nil {
			s.mu.Lock()
			serving, closing = s.serving, s.closing
			s.mu.Unlock()
		}
		switch {
		case closing:
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "shutting down\n")
		case !serving:
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not serving yet\n")
		default:
			io.WriteString(w, "ok\n")
		}
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s == nil {
			http.Error(w, "no server", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.WritePrometheus(w)
	})
	return mux
}
