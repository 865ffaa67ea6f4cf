package arrowio

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"weak"

	"github.com/fnmesh/fnmesh/collective"
)

// The all-to-all streams tables point to point (every rank sends each of its streams as a sequence
// of messages and receives every stream addressed to it until its end-of-stream marker) instead of
// in rounds of a collective: the ranks need not agree on a round count first, a fast pair never waits
// for a slow one, and each message goes out in one vectored write straight from the Arrow buffers
// (Comm.SendBuffers). The messages travel on a duplicate of the caller's communicator, made once per
// communicator and kept with it, so that they never match the caller's own point-to-point messages,
// whatever their tags: MPI libraries duplicate their callers' communicators for the same reason.

// private is arrowio's duplicate of one communicator.
type private struct {
	made sync.Mutex // held while the duplicate is made
	comm *collective.Comm
	busy sync.Mutex // one exchange at a time, as for the communicator's collectives
	seq  int        // the tag of the last exchange
}

var (
	privatesMu sync.Mutex
	privates   = map[weak.Pointer[collective.Comm]]*private{}
)

// privateOf returns c's duplicate, making it on first use: a collective call (Comm.Split) that every
// rank makes at the same point, since every rank calls arrowio's collectives in the same order. Once
// c is garbage the duplicate is closed (which takes its registration off the links it shares with c)
// and forgotten.
func privateOf(ctx context.Context, c *collective.Comm) (*private, error) {
	key := weak.Make(c)
	privatesMu.Lock()
	p := privates[key]
	if p == nil {
		p = &private{}
		privates[key] = p
		runtime.AddCleanup(c, func(k weak.Pointer[collective.Comm]) {
			privatesMu.Lock()
			q := privates[k]
			delete(privates, k)
			privatesMu.Unlock()
			if q != nil {
				q.close()
			}
		}, key)
	}
	privatesMu.Unlock()

	p.made.Lock()
	defer p.made.Unlock()
	if p.comm == nil {
		dup, err := c.Split(ctx, 0, c.Rank())
		if err != nil {
			return nil, fmt.Errorf("duplicating the communicator: %w", err)
		}
		p.comm = dup
	}
	return p, nil
}

// close closes the duplicate, if it was made. Nothing can be using it: its communicator is garbage.
func (p *private) close() {
	p.made.Lock()
	defer p.made.Unlock()
	if p.comm != nil {
		_ = p.comm.Close()
	}
}

// errBusy: an exchange started on a communicator while another was running on it.
var errBusy = errors.New("another exchange is running on this communicator (collectives must be called one at a time)")

// begin starts an exchange and returns its tag; end must follow.
func (p *private) begin() (int, error) {
	if !p.busy.TryLock() {
		return 0, errBusy
	}
	p.seq = p.seq%collective.MaxTag + 1 // 1 to MaxTag, round and round
	return p.seq, nil
}

func (p *private) end() { p.busy.Unlock() }

// abort fails the communicator after this rank gave up an exchange part-way (its context ended), so
// that the other ranks, which may be waiting for its messages, fail at once instead of waiting for
// their own deadlines: a collective called with an ended context poisons the communicator and closes
// its links (collective's documented behaviour).
func (p *private) abort() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = p.comm.Barrier(ctx)
}
