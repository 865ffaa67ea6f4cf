package collective

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// transport owns the links of a world communicator and the sub-communicators
// split from it: their reader goroutines and their failure state. The first
// failure (a link error, a corrupted frame, a cancelled collective, Close)
// poisons the transport: every link is shut down, every pending receive
// fails with that error and every later call returns it.
type transport struct {
	rank     int
	links    []*link // by world rank; links[rank] is the link to self
	checksum bool
	maxFrame int
	spin     time.Duration
	log      *slog.Logger

	reqs    sync.Pool // of *request
	mu      sync.Mutex
	errp    atomic.Pointer[errBox]
	readers sync.WaitGroup // the links' drain goroutines
}

type errBox struct{ err error }

func newTransport(rank int, conns []net.Conn, cfg *config) *transport {
	t := &transport{rank: rank, checksum: cfg.checksum, maxFrame: cfg.maxFrame, spin: cfg.spin, log: cfg.log}
	t.links = make([]*link, len(conns))
	for i, c := range conns {
		if i == rank {
			t.links[i] = newLink(t, i, nil)
			continue
		}
		if nd, ok := c.(interface{ SetNoDelay(bool) error }); ok {
			_ = nd.SetNoDelay(true)
		}
		t.links[i] = newLink(t, i, c)
	}
	for _, l := range t.links {
		if l.conn != nil {
			l.mu.Lock()
			l.freeAt = time.Now()
			l.armTimer(idleKick)
			l.mu.Unlock()
			t.readers.Add(1)
			go l.drainLoop()
		}
	}
	return t
}

// failure returns the error that poisoned the transport, or nil.
func (t *transport) failure() error {
	if b := t.errp.Load(); b != nil {
		return b.err
	}
	return nil
}

// failureOr returns the poisoning error if there is one, else err.
func (t *transport) failureOr(err error) error {
	if f := t.failure(); f != nil {
		return f
	}
	return err
}

// fail poisons the transport with err unless it is poisoned already, and
// shuts every link down. Unless the communicator is being closed, it first
// tells every peer why (an abort frame, written on each link whose write
// token it gets within abortWait, all links at once), so that a peer fails
// promptly even when it waits for nothing from this rank (it may wait for
// a third rank, which ran ahead because of what made this one fail): the
// failure reaches every rank, and a disagreement is ErrMismatch on every
// one. This costs nothing until a call fails.
func (t *transport) fail(err error) { t.shutdown(err, true) }

// shutdown is fail; tell says whether to send the abort frames (not when
// the world communicator is closed: its peers see the links close at a
// frame boundary, a clean end).
func (t *transport) shutdown(err error, tell bool) {
	t.mu.Lock()
	if t.errp.Load() != nil {
		t.mu.Unlock()
		return
	}
	t.errp.Store(&errBox{err})
	t.mu.Unlock()
	t.log.Debug("collective: communicator failed", "rank", t.rank, "err", err)
	for _, l := range t.links {
		l.halt(err)
	}
	if tell {
		var wg sync.WaitGroup
		for _, l := range t.links {
			if l.conn != nil {
				wg.Go(func() { l.writeAbort(err) })
			}
		}
		wg.Wait()
	}
	for _, l := range t.links {
		l.closeConn()
	}
}

// close poisons the transport with ErrClosed (if nothing else did first)
// and waits for every reader goroutine to end.
func (t *transport) close() {
	t.shutdown(&localError{rank: t.rank, world: t.rank, err: ErrClosed}, false)
	t.readers.Wait()
}
