package rendezvous

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Link is an authenticated TCP link to one peer rank. It is a net.Conn
// whatever the tier: reads and writes go straight to the peer (through the
// relay for TierRelay, which the peer and the server splice end to end).
type Link struct {
	net.Conn
	// Peer is the rank at the other end.
	Peer int
	// Tier is how the link was made; both ends of a link agree on it.
	Tier Tier
	// Setup is the time from the start of the job's punch round until this
	// link was ready to use (punched and agreed, or relayed and
	// authenticated); 0 for a link ready before the round began (one the
	// server relayed before this member's start).
	Setup time.Duration
}

// Mesh is one rank's view of a job whose every pair of ranks is linked.
type Mesh struct {
	Rank  int
	World int
	// Links is indexed by peer rank; Links[Rank] is nil.
	Links []*Link
	// Setup is how long Join took, from its call until every link was ready.
	Setup time.Duration
}

// Close closes every link of the mesh, and says which links failed to
// close. Closing a nil Mesh, or one already closed, does nothing.
func (m *Mesh) Close() error {
	if m == nil {
		return nil
	}
	var errs []error
	for r, l := range m.Links {
		if l != nil && l.Conn != nil {
			if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, fmt.Errorf("rendezvous: rank %d: closing the %v link to rank %d: %w", m.Rank, l.Tier, r, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Conns returns the links as plain connections indexed by rank (nil at
// Rank), the form collective.New takes.
func (m *Mesh) Conns() []net.Conn {
	if m == nil {
		return nil
	}
	out := make([]net.Conn, len(m.Links))
	for i, l := range m.Links {
		if l != nil {
			out[i] = l.Conn
		}
	}
	return out
}
