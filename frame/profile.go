package frame

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Phase is one timed step of an operator on this rank.
type Phase struct {
	Op       string        // the operator: "join", "groupby", "sort", "shuffle", ...
	Name     string        // the step: "partition", "exchange", "local join", ...
	Duration time.Duration // wall time on this rank
	Rows     int64         // rows the step produced (or sent, for an exchange)
	Bytes    int64         // bytes of Arrow buffers sent to other ranks (exchanges only)
}

// Profile collects the phases of the operators run on frames that were given
// it with WithProfile. It is safe for concurrent use.
type Profile struct {
	mu     sync.Mutex
	phases []Phase
}

// Phases returns a copy of the phases recorded so far, in order.
func (p *Profile) Phases() []Phase {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Phase(nil), p.phases...)
}

// Reset forgets the recorded phases.
func (p *Profile) Reset() {
	p.mu.Lock()
	p.phases = nil
	p.mu.Unlock()
}

// Total returns the summed duration, rows and bytes of the phases with the
// given step name (of any operator); an empty name sums every phase.
func (p *Profile) Total(name string) Phase {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := Phase{Name: name}
	for _, ph := range p.phases {
		if name == "" || ph.Name == name {
			t.Duration += ph.Duration
			t.Rows += ph.Rows
			t.Bytes += ph.Bytes
		}
	}
	return t
}

// String formats the phases as an aligned table.
func (p *Profile) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s %-14s %12s %12s %12s\n", "op", "phase", "time", "rows", "bytes")
	for _, ph := range p.Phases() {
		fmt.Fprintf(&b, "%-10s %-14s %12s %12d %12d\n", ph.Op, ph.Name, ph.Duration.Round(time.Microsecond), ph.Rows, ph.Bytes)
	}
	return b.String()
}

func (p *Profile) add(ph Phase) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.phases = append(p.phases, ph)
	p.mu.Unlock()
}

// timer measures one phase and records it in the frame's profile and log.
type timer struct {
	cfg   *config
	op    string
	start time.Time
}

func (c *config) timer(op string) *timer {
	return &timer{cfg: c, op: op, start: time.Now()}
}

// done records the phase that ran since the last done (or the start).
func (t *timer) done(ctx context.Context, name string, rows, bytes int64) {
	now := time.Now()
	ph := Phase{Op: t.op, Name: name, Duration: now.Sub(t.start), Rows: rows, Bytes: bytes}
	t.start = now
	t.cfg.profile.add(ph)
	t.cfg.log.DebugContext(ctx, "frame phase", "op", ph.Op, "phase", ph.Name,
		"duration", ph.Duration, "rows", ph.Rows, "bytes", ph.Bytes)
}
