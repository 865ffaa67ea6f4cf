package punch

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// PunchError is the error of a Punch that made no link: for every endpoint
// of the peer, how many connects were tried and how the last one ended.
type PunchError struct {
	Rank      int            // the peer's rank
	Local     netip.AddrPort // the port punched from
	Elapsed   time.Duration
	Endpoints []EndpointResult
	Inbound   int   // authenticated links from the peer that were lost before both ends agreed
	Err       error // why Punch stopped: context.DeadlineExceeded, context.Canceled, ErrClosed, or the cause ctx was canceled with (context.WithCancelCause)
}

// EndpointResult is what happened at one endpoint during a Punch.
type EndpointResult struct {
	Endpoint netip.AddrPort
	Attempts int   // connects tried
	Err      error // how the last one ended: refused, timed out, handshake rejected, ...; or why it was not tried
	Linked   bool  // a link to it passed the handshake (and was lost before both ends agreed)
}

func (e *PunchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "punch from %v to rank %d: no link after %v: %v", e.Local, e.Rank,
		e.Elapsed.Round(time.Millisecond), e.Err)
	for _, r := range e.Endpoints {
		fmt.Fprintf(&b, "; %v: ", r.Endpoint)
		switch {
		case r.Attempts == 0 && r.Err != nil:
			fmt.Fprintf(&b, "not tried: %v", r.Err)
		case r.Attempts == 0:
			b.WriteString("not tried")
		case r.Err == nil:
			fmt.Fprintf(&b, "linked after %d %s", r.Attempts, plural(r.Attempts, "attempt"))
		default:
			fmt.Fprintf(&b, "%v (%d %s)", r.Err, r.Attempts, plural(r.Attempts, "attempt"))
		}
	}
	if len(e.Endpoints) == 0 {
		b.WriteString("; no endpoints to dial")
	}
	if e.Inbound == 0 {
		b.WriteString("; no inbound link")
	} else {
		fmt.Fprintf(&b, "; %d inbound %s lost", e.Inbound, plural(e.Inbound, "link"))
	}
	return b.String()
}

// Unwrap returns why Punch stopped.
func (e *PunchError) Unwrap() error { return e.Err }

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}
