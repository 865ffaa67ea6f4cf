package punch

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Connections that are not a link of this job are rejected by the accept
// loop: logged with the reason and closed.
func TestPortRejectsStrays(t *testing.T) {
	rec := &logRecorder{}
	p := listenOS(t, 0, WithLogger(rec.logger()), WithHandshakeTimeout(300*time.Millisecond))
	foreign := Identity{Secret: secret, Job: "another-job", Rank: 1}
	wrongSecret := Identity{Secret: []byte("not the secret"), Job: testJobID, Rank: 1}
	tests := []struct {
		name   string
		talk   func(ctx context.Context, c net.Conn) error // the stray's side
		reason string                                      // in the port's log
		stray  error                                       // what the stray's handshake sees (nil: not run)
	}{
		{"garbage", func(_ context.Context, c net.Conn) error {
			_, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			return err
		}, "HTTP", nil},
		{"silent", func(context.Context, net.Conn) error { return nil }, "deadline exceeded", nil},
		{"foreign job", func(ctx context.Context, c net.Conn) error { return Handshake(ctx, c, foreign, 0) }, "another job", ErrForeignJob},
		{"wrong secret", func(ctx context.Context, c net.Conn) error { return Handshake(ctx, c, wrongSecret, 0) }, "bad proof", ErrBadProof},
		{"expects another rank", func(ctx context.Context, c net.Conn) error { return Handshake(ctx, c, ident(2), 5) }, "peer expects rank 5", ErrWrongRank},
		{"claims port's rank", func(_ context.Context, c net.Conn) error { _, err := c.Write(validHelloFrom(0, 0)); return err }, "claims this end's own rank", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rec.count("rejected inbound connection")
			ctx := testCtx(t, 5*time.Second)
			c, err := net.Dial("tcp", p.Addr().String())
			require.NoError(t, err)
			defer c.Close()
			err = tt.talk(ctx, c)
			if tt.stray != nil {
				require.ErrorIs(t, err, tt.stray)
			}
			// The port closes the connection: a read ends with EOF or RST.
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err = io.Copy(io.Discard, c)
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "the port must close a stray connection")
			require.Eventually(t, func() bool { return rec.count("rejected inbound connection") > before }, 3*time.Second, 5*time.Millisecond)
			require.Equal(t, 1, rec.count(tt.reason), "log must say why: %q", tt.reason)
		})
	}
}

// A link that arrives before the Punch for its rank starts is held, then
// claimed by that Punch.
func TestPortHoldsEarlyLink(t *testing.T) {
	recA := &logRecorder{}
	a := listenOS(t, 0, WithLogger(recA.logger()))
	b := listenOS(t, 1)
	ctx := testCtx(t, 10*time.Second)
	var cb net.Conn
	var errB error
	done := make(chan struct{})
	go func() {
		defer close(done)
		cb, errB = b.Punch(ctx, Peer{Rank: 0, Endpoints: []netip.AddrPort{a.Addr()}})
	}()
	require.Eventually(t, func() bool { return recA.count("holding early link") == 1 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // b keeps waiting for the selection
	// a punches passively (no endpoints): the held link is its only way.
	ca, err := a.Punch(ctx, Peer{Rank: 1})
	require.NoError(t, err)
	<-done
	require.NoError(t, errB)
	defer ca.Close()
	defer cb.Close()
	requireSameTuple(t, ca, cb)
	requireSameLink(t, ca, cb)
}

// A held link nobody claims is closed after the hold timeout; the peer's
// Punch then fails within its deadline.
func TestPortHoldExpires(t *testing.T) {
	recA := &logRecorder{}
	a := listenOS(t, 0, WithLogger(recA.logger()), WithHold(8, 200*time.Millisecond))
	b := listenOS(t, 1)
	ctx := testCtx(t, 800*time.Millisecond)
	_, err := b.Punch(ctx, Peer{Rank: 0, Endpoints: []netip.AddrPort{a.Addr()}})
	var pe *PunchError
	require.ErrorAs(t, err, &pe)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.GreaterOrEqual(t, recA.count("no punch claimed it"), 1)
	require.Eventually(t, func() bool { return a.nheldNow() == 0 }, 2*time.Second, 5*time.Millisecond)
	require.GreaterOrEqual(t, pe.Endpoints[0].Attempts, 2, "the endpoint is dialed again after the link is lost")
}

func (p *Port) nheldNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nheld
}

// Close ends a running Punch with ErrClosed, closes held links, and later
// calls fail with ErrClosed.
func TestPortClose(t *testing.T) {
	p, err := Listen(context.Background(), OS(), anyLoop, ident(0))
	require.NoError(t, err)
	ctx := testCtx(t, 10*time.Second)
	errc := make(chan error, 1)
	go func() {
		_, err := p.Punch(ctx, Peer{Rank: 1, Endpoints: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9")}})
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	require.NoError(t, p.Close())
	err = <-errc
	require.ErrorIs(t, err, ErrClosed)
	require.Less(t, time.Since(start), 2*time.Second)
	require.NoError(t, p.Close(), "Close is idempotent")
	_, err = p.Punch(ctx, Peer{Rank: 1})
	require.ErrorIs(t, err, ErrClosed)
	_, err = p.Dial(ctx, netip.MustParseAddrPort("127.0.0.1:9"))
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorContains(t, err, "dial 127.0.0.1:9", "the error names what was dialed")
	// The port is free again.
	q, err := Listen(ctx, OS(), p.Addr(), ident(0))
	require.NoError(t, err)
	require.NoError(t, q.Close())
}

// Close ends the inbound handshakes in progress without calling them
// rejected: a port that shuts down with a peer mid-handshake is not refusing
// it, and a warning for each would be noise at every shutdown. They were
// logged as "rejected inbound connection" at warning level.
func TestPortCloseEndsHandshakesQuietly(t *testing.T) {
	rec := &logRecorder{}
	p, err := Listen(context.Background(), OS(), anyLoop, ident(0), WithLogger(rec.logger()))
	require.NoError(t, err)
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", p.Addr().String()) // says nothing: the handshake waits
		require.NoError(t, err)
		defer c.Close()
		conns = append(conns, c)
	}
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.inflight) == len(conns)
	}, 5*time.Second, time.Millisecond)
	require.NoError(t, p.Close())
	require.Zero(t, rec.count("rejected inbound connection"))
	require.Equal(t, len(conns), rec.count("port closed"))
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		require.Error(t, err, "the connection is closed")
		require.NotErrorIs(t, err, os.ErrDeadlineExceeded)
	}
}

func TestPunchArguments(t *testing.T) {
	p := listenOS(t, 3)
	ctx := testCtx(t, 2*time.Second)
	many := make([]netip.AddrPort, MaxEndpoints+1)
	for i := range many {
		many[i] = netip.AddrPortFrom(loopback, uint16(1000+i))
	}
	tests := []struct {
		name string
		peer Peer
		msg  string
	}{
		{"own rank", Peer{Rank: 3}, "own rank"},
		{"negative rank", Peer{Rank: -1}, "out of range"},
		{"invalid endpoint", Peer{Rank: 1, Endpoints: []netip.AddrPort{{}}}, "invalid endpoint"},
		{"unspecified endpoint", Peer{Rank: 1, Endpoints: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:5")}}, "invalid endpoint"},
		{"port zero", Peer{Rank: 1, Endpoints: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}}, "invalid endpoint"},
		{"multicast endpoint", Peer{Rank: 1, Endpoints: []netip.AddrPort{netip.MustParseAddrPort("224.0.0.1:5")}}, "invalid endpoint"},
		{"IPv6 multicast endpoint", Peer{Rank: 1, Endpoints: []netip.AddrPort{netip.MustParseAddrPort("[ff02::1]:5")}}, "invalid endpoint"},
		{"broadcast endpoint", Peer{Rank: 1, Endpoints: []netip.AddrPort{netip.MustParseAddrPort("255.255.255.255:5")}}, "invalid endpoint"},
		{"too many endpoints", Peer{Rank: 1, Endpoints: many}, "at most 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Punch(ctx, tt.peer)
			require.ErrorContains(t, err, tt.msg)
		})
	}

	// Two Punch calls for one rank at once: the second fails.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = p.Punch(short, Peer{Rank: 1}) })
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.waiters[1] != nil
	}, time.Second, time.Millisecond)
	_, err := p.Punch(short, Peer{Rank: 1})
	require.ErrorContains(t, err, "already running")
	wg.Wait()
}

// A full mesh of ranks on loopback, every pair punched at once, every port
// also holding an open connection to a "rendezvous" server: one port per
// rank does it all.
func TestPunchFullMeshLoopback(t *testing.T) {
	const n = 5
	srv := plainServer(t)
	ports := make([]*Port, n)
	for r := range ports {
		ports[r] = listenOS(t, r)
	}
	ctx := testCtx(t, 20*time.Second)
	for _, p := range ports {
		c, err := p.Dial(ctx, srv)
		require.NoError(t, err)
		defer c.Close()
		require.Equal(t, p.Addr().String(), c.LocalAddr().String())
	}
	links := make([][]net.Conn, n)
	errs := make([][]error, n)
	var wg sync.WaitGroup
	for r := range n {
		links[r] = make([]net.Conn, n)
		errs[r] = make([]error, n)
		for q := range n {
			if q == r {
				continue
			}
			wg.Go(func() {
				links[r][q], errs[r][q] = ports[r].Punch(ctx, Peer{Rank: q, Endpoints: []netip.AddrPort{ports[q].Addr()}})
			})
		}
	}
	wg.Wait()
	for r := range n {
		for q := range n {
			if q != r {
				require.NoError(t, errs[r][q], "rank %d to %d", r, q)
				defer links[r][q].Close()
			}
		}
	}
	for r := range n {
		for q := r + 1; q < n; q++ {
			requireSameTuple(t, links[r][q], links[q][r])
			requireSameLink(t, links[r][q], links[q][r])
		}
	}
}
