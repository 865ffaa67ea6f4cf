package punch

import (
	"context"
	"net"
	"sync"
	"syscall"
	"time"
)

// aLongTimeAgo is a deadline in the past: setting it unblocks every pending
// read and write on a connection.
var aLongTimeAgo = time.Unix(1, 0)

// watchConn makes c's reads and writes end when ctx ends: it sets c's
// deadline to ctx's and, on cancellation, to the past. release stops the
// watch and clears the deadline; after it returns, the watch never touches c
// again.
func watchConn(ctx context.Context, c net.Conn) (release func()) {
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	var mu sync.Mutex
	released := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !released {
			_ = c.SetDeadline(aLongTimeAgo)
		}
	})
	return func() {
		stop()
		mu.Lock()
		released = true
		_ = c.SetDeadline(time.Time{})
		mu.Unlock()
	}
}

// abort closes c at once with a RST (SO_LINGER 0) where the connection
// supports it, so that the 4-tuple does not linger in TIME_WAIT and block the
// next punch from the same port.
func abort(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(sec int) error }); ok {
		_ = l.SetLinger(0)
	}
	_ = c.Close()
}

// tuneLink readies a connection the port made for use as a link: Nagle's
// algorithm off (collectives send many small messages and wait on each) and
// the port's congestion control (WithCongestionControl), which only logs
// when the system refuses it.
func (p *Port) tuneLink(c net.Conn) {
	if nd, ok := c.(interface{ SetNoDelay(bool) error }); ok {
		_ = nd.SetNoDelay(true)
	}
	if sc, ok := c.(syscall.Conn); ok {
		if err := SetCongestionControl(sc, p.opts.congestion); err != nil {
			p.log.Debug("punch: link keeps the system's congestion control", "err", err)
		}
	}
}
