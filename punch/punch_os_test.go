package punch

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two Ports on loopback punch to each other from fixed ports and both get
// the two ends of the same authenticated connection.
func TestPunchLoopback(t *testing.T) {
	a, b := listenOS(t, 0), listenOS(t, 1)
	ca, cb := mustPunch(t, a, b)
	require.Equal(t, a.Addr().String(), ca.LocalAddr().String(), "link must use the port itself")
	require.Equal(t, b.Addr().String(), cb.LocalAddr().String(), "link must use the port itself")
	requireSameTuple(t, ca, cb)
	requireSameLink(t, ca, cb)
}

// A Punch that cannot link says, per endpoint, what happened: refused,
// rejected by the handshake (and not retried), timed out.
func TestPunchFailureReport(t *testing.T) {

	closed := func() netip.AddrPort { // a loopback port nobody listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).AddrPort()
	}()
	speaker := scriptServer(t, []byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	silent := scriptServer(t, nil)
	before := runtime.NumGoroutine()
	p, err := Listen(context.Background(), OS(), anyLoop, ident(0), WithInterval(100*time.Millisecond))
	require.NoError(t, err)
	defer p.Close()
	foreign, err := Listen(context.Background(), OS(), anyLoop, Identity{Secret: secret, Job: "other-job", Rank: 1})
	require.NoError(t, err)
	defer foreign.Close()

	ctx := testCtx(t, 800*time.Millisecond)
	start := time.Now()
	_, err = p.Punch(ctx, Peer{Rank: 1, Endpoints: []netip.AddrPort{closed, foreign.Addr(), speaker, silent}})
	elapsed := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, elapsed, 2*time.Second, "Punch must stop at its deadline")
	var pe *PunchError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 1, pe.Rank)
	require.Equal(t, p.Addr(), pe.Local)
	require.Len(t, pe.Endpoints, 4)

	refused := pe.Endpoints[0]
	require.Equal(t, closed, refused.Endpoint)
	require.ErrorIs(t, refused.Err, syscall.ECONNREFUSED)
	// Refused connects are retried on the schedule: at most 64 back to
	// back in the first interval (100 ms here), then (refused at once: no
	// bursts) after elapsed/16: about 16 ln(800/100) = 33 more by 800 ms.
	require.GreaterOrEqual(t, refused.Attempts, 20, "refused connects are retried")
	require.LessOrEqual(t, refused.Attempts, 200, "on the schedule, not in a busy loop")

	wrongJob := pe.Endpoints[1]
	require.ErrorIs(t, wrongJob.Err, ErrForeignJob)
	require.Equal(t, 1, wrongJob.Attempts, "a rejected handshake is not retried")

	garbage := pe.Endpoints[2]
	require.ErrorIs(t, garbage.Err, ErrMalformed)
	require.Equal(t, 1, garbage.Attempts, "%v", err)

	timeout := pe.Endpoints[3]
	require.ErrorIs(t, timeout.Err, context.DeadlineExceeded)
	require.Equal(t, 1, timeout.Attempts)

	msg := err.Error()
	for _, want := range []string{"to rank 1", "connection refused", "handshake rejected", "another job", "HTTP", "deadline exceeded", "no inbound link"} {
		require.Contains(t, msg, want)
	}
	t.Log(msg)

	require.NoError(t, p.Close())
	require.NoError(t, foreign.Close())
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+2 }, 3*time.Second, 10*time.Millisecond,
		"goroutines left behind: %d before, %d after", before, runtime.NumGoroutine())
}

// scriptServer accepts on loopback, writes script and then holds each
// connection open without reading until the test ends.
func scriptServer(t *testing.T, script []byte) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			_, _ = c.Write(script)
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// timeWaits counts sockets in TIME_WAIT between ports a and b (either
// direction) in /proc/net/tcp and /proc/net/tcp6.
func timeWaits(t *testing.T, a, b uint16) int {
	t.Helper()
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "06" { // 06: TIME_WAIT
				continue
			}
			lp, rp := hexPort(fields[1]), hexPort(fields[2])
			if (lp == a && rp == b) || (lp == b && rp == a) {
				n++
			}
		}
	}
	return n
}

func hexPort(addr string) uint16 {
	i := strings.LastIndexByte(addr, ':')
	v, _ := strconv.ParseUint(addr[i+1:], 16, 16)
	return uint16(v)
}

// When two ends reach each other over several endpoints, several links pass
// the handshake; both ends keep the same one and abort the others with a
// RST, so no TIME_WAIT is left between the ports and the next punch from the
// same ports succeeds. Closing a link with FIN does leave TIME_WAIT (the
// control that shows the check can see it).
//
// The ports listen on 0.0.0.0 so that 127.0.0.1 and 127.0.0.2 are two
// endpoints of each; every connection goes to loopback only.
func TestPunchLosersLeaveNoTimeWait(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp on this system: cannot observe TIME_WAIT")
	}
	recA, recB := &logRecorder{}, &logRecorder{}
	wild := netip.MustParseAddrPort("0.0.0.0:0")
	a, err := Listen(context.Background(), OS(), wild, ident(0), WithLogger(recA.logger()))
	require.NoError(t, err)
	defer a.Close()
	b, err := Listen(context.Background(), OS(), wild, ident(1), WithLogger(recB.logger()))
	require.NoError(t, err)
	defer b.Close()
	two := func(p *Port) []netip.AddrPort {
		return []netip.AddrPort{
			netip.AddrPortFrom(loopback, p.Addr().Port()),
			netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), p.Addr().Port()),
		}
	}
	pa, pb := a.Addr().Port(), b.Addr().Port()
	require.Zero(t, timeWaits(t, pa, pb))

	for round := range 3 {
		ctx := testCtx(t, 10*time.Second)
		ca, cb, ea, eb := punchPair(ctx, a, b, two(a), two(b))
		require.NoError(t, ea, "round %d", round)
		require.NoError(t, eb, "round %d", round)
		requireSameTuple(t, ca, cb)
		requireSameLink(t, ca, cb)
		require.Zero(t, timeWaits(t, pa, pb), "round %d: losers must not linger in TIME_WAIT", round)
		abort(ca)
		abort(cb)
	}
	losers := recA.count("closing losing link") + recB.count("closing losing link")
	require.Positive(t, losers, "the rounds must have had losing links to abandon")
	t.Logf("losing links aborted over 3 rounds: %d", losers)

	// Control: a link closed with FIN does leave TIME_WAIT behind.
	ctx := testCtx(t, 10*time.Second)
	ca, cb, ea, eb := punchPair(ctx, a, b, two(a), two(b))
	require.NoError(t, ea)
	require.NoError(t, eb)
	require.NoError(t, ca.Close())
	_, _ = io.Copy(io.Discard, cb)
	require.NoError(t, cb.Close())
	require.Eventually(t, func() bool { return timeWaits(t, pa, pb) > 0 }, 2*time.Second, 10*time.Millisecond)
}

// An endpoint that accepts and never speaks (a middlebox, a hung process)
// holds an attempt only for the handshake timeout; then it is dialed again.
func TestPunchRetriesSilentEndpoint(t *testing.T) {
	silent := scriptServer(t, nil)
	p := listenOS(t, 0, WithHandshakeTimeout(200*time.Millisecond))
	ctx := testCtx(t, 900*time.Millisecond)
	_, err := p.Punch(ctx, Peer{Rank: 1, Endpoints: []netip.AddrPort{silent}})
	var pe *PunchError
	require.ErrorAs(t, err, &pe)
	require.GreaterOrEqual(t, pe.Endpoints[0].Attempts, 3, "%v", err)
	require.LessOrEqual(t, pe.Endpoints[0].Attempts, 6, "%v", err)
	require.ErrorIs(t, pe.Endpoints[0].Err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "handshake failed")
}

// muteAfterHandshake accepts on loopback, passes the link handshake as rank
// as (expecting rank want) and then says nothing until the test ends: it
// neither selects the link nor acks the selection.
func muteAfterHandshake(t *testing.T, as, want int) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				if Handshake(ctx, c, ident(as), want) == nil {
					<-ctx.Done()
				}
			})
		}
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// A link that passes the handshake but on which the two ends never agree
// (the peer does not ack our select, or does not select) is no link: the
// report says so. It said "linked after 1 attempt", as if the punch had
// made the link it failed to make.
func TestPunchReportsLinkNotAgreed(t *testing.T) {
	tests := []struct {
		name string
		rank int // ours; the peer is rank 1
	}{
		{"lower rank selects, peer never acks", 0},
		{"higher rank waits, peer never selects", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := listenOS(t, tt.rank)
			mute := muteAfterHandshake(t, 1, tt.rank)
			ctx := testCtx(t, 400*time.Millisecond)
			start := time.Now()
			_, err := p.Punch(ctx, Peer{Rank: 1, Endpoints: []netip.AddrPort{mute}})
			require.Less(t, time.Since(start), 2*time.Second, "Punch must stop at its deadline")
			var pe *PunchError
			require.ErrorAs(t, err, &pe)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			ep := pe.Endpoints[0]
			require.True(t, ep.Linked, "the link passed the handshake")
			require.Equal(t, 1, ep.Attempts, "%v", err)
			require.Error(t, ep.Err, "a link not agreed on is a failure")
			require.ErrorIs(t, ep.Err, context.DeadlineExceeded)
			require.NotContains(t, err.Error(), "linked after")
			require.ErrorContains(t, err, "not agreed")
		})
	}
}

// listenIPv6Loop opens a Port on an ephemeral port of ::1, or skips the
// test where the system has no IPv6 loopback.
func listenIPv6Loop(t *testing.T, rank int) *Port {
	t.Helper()
	p, err := Listen(context.Background(), OS(), netip.MustParseAddrPort("[::1]:0"), ident(rank))
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

// An endpoint of a family the port cannot reach (an IPv6 one from a port on
// an IPv4 address, or the reverse) is not dialed: the report says why. It was
// dialed and failed at once with "no suitable address found", a hundred
// times in the first second. A port on any address ("::") reaches both
// families, and a peer's endpoint of the other family does not keep the
// pair from linking on the one that works.
func TestPunchEndpointOfAnotherFamily(t *testing.T) {
	t.Run("not tried", func(t *testing.T) {
		a4, a6 := listenOS(t, 0), listenIPv6Loop(t, 0)
		b4, b6 := listenOS(t, 1), listenIPv6Loop(t, 1)
		tests := []struct {
			name     string
			from     *Port
			to       netip.AddrPort
			wantText string
		}{
			{"IPv4 port, IPv6 endpoint", a4, b6.Addr(), "a port on IPv4 address 127.0.0.1 cannot reach an IPv6 endpoint"},
			{"IPv6 port, IPv4 endpoint", a6, b4.Addr(), "a port on IPv6 address ::1 cannot reach an IPv4 endpoint"},
			{"IPv6 port, v4-mapped endpoint", a6, netip.AddrPortFrom(netip.AddrFrom16(loopback.As16()), b4.Addr().Port()), "a port on IPv6 address ::1 cannot reach an IPv4 endpoint"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := testCtx(t, 200*time.Millisecond)
				_, err := tt.from.Punch(ctx, Peer{Rank: 1, Endpoints: []netip.AddrPort{tt.to}})
				var pe *PunchError
				require.ErrorAs(t, err, &pe)
				require.Len(t, pe.Endpoints, 1)
				require.Zero(t, pe.Endpoints[0].Attempts)
				require.ErrorContains(t, pe.Endpoints[0].Err, tt.wantText)
				require.ErrorContains(t, err, "not tried: "+tt.wantText)
			})
		}
	})
	t.Run("links on the family that works", func(t *testing.T) {
		a := listenOS(t, 0)
		b, err := Listen(context.Background(), OS(), netip.MustParseAddrPort("[::]:0"), ident(1))
		require.NoError(t, err)
		defer func() { require.NoError(t, b.Close()) }()
		probe := listenIPv6Loop(t, 2) // skips without IPv6
		require.NoError(t, probe.Close())
		bPort := b.Addr().Port()
		ctx := testCtx(t, 10*time.Second)
		ca, cb, ea, eb := punchPair(ctx, a, b,
			[]netip.AddrPort{a.Addr()},
			[]netip.AddrPort{netip.MustParseAddrPort("[::1]:" + strconv.Itoa(int(bPort))), netip.AddrPortFrom(loopback, bPort)})
		require.NoError(t, ea)
		require.NoError(t, eb)
		defer ca.Close()
		defer cb.Close()
		requireSameLink(t, ca, cb)
		require.Equal(t, a.Addr().String(), ca.LocalAddr().String())
	})
}

// openFDs counts this process's open sockets. Other descriptors are not
// counted: the net package caches pipes for splice(2) (an io.Copy between
// TCP connections, as the echo servers of other tests do) and the garbage
// collector closes them at any moment, which made a count of all
// descriptors fall during a test.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// A peer endpoint equal to the port's own (two functions with the same
// private address on different networks) connects the socket to itself on
// Linux, even with the port's listener on that address: the handshake sees
// its own nonce come back, and the endpoint is tried once. The same endpoint
// given again, or as an IPv4-mapped address, is one endpoint. No socket is
// left open.
func TestPunchToOwnEndpoint(t *testing.T) {
	tests := []struct {
		name  string
		laddr netip.AddrPort
	}{
		{"port on 127.0.0.1", anyLoop},
		{"port on 0.0.0.0", netip.MustParseAddrPort("0.0.0.0:0")},
		{"port on any address", netip.AddrPort{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := openFDs(t)
			p, err := Listen(context.Background(), OS(), tt.laddr, ident(0))
			require.NoError(t, err)
			own := netip.AddrPortFrom(loopback, p.Addr().Port())
			mapped := netip.AddrPortFrom(netip.AddrFrom16(loopback.As16()), own.Port())
			ctx := testCtx(t, 300*time.Millisecond)
			_, err = p.Punch(ctx, Peer{Rank: 1, Endpoints: []netip.AddrPort{own, mapped, own}})
			var pe *PunchError
			require.ErrorAs(t, err, &pe)
			require.Len(t, pe.Endpoints, 1, "duplicates are one endpoint")
			require.Equal(t, own, pe.Endpoints[0].Endpoint)
			require.Equal(t, 1, pe.Endpoints[0].Attempts, "a self-connect is not retried")
			require.ErrorIs(t, pe.Endpoints[0].Err, ErrSelfConnect)
			require.NoError(t, p.Close())
			require.Equal(t, before, openFDs(t), "no socket left open")
		})
	}
}

// An endpoint that reaches the port's own listener by another of its
// addresses (here 127.0.0.2 for a port on 0.0.0.0; in the field a peer's
// private endpoint that is one of ours, or our public endpoint through a
// NAT that hairpins) is not a self-connect: the accept loop answers with a
// hello of its own. Both ends said "wrong rank": the dialer "peer claims
// rank 0, want 1" and the port's own log "peer expects rank 1, this end is
// rank 0", as if another process were there. Both now say that the other
// end claims this end's own rank, and that it may be this very port.
func TestPunchReachesOwnPortElsewhere(t *testing.T) {
	rec := &logRecorder{}
	p, err := Listen(context.Background(), OS(), netip.MustParseAddrPort("0.0.0.0:0"), ident(0), WithLogger(rec.logger()))
	require.NoError(t, err)
	defer p.Close()
	own := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), p.Addr().Port())
	_, err = p.Punch(testCtx(t, 300*time.Millisecond), Peer{Rank: 1, Endpoints: []netip.AddrPort{own}})
	var pe *PunchError
	require.ErrorAs(t, err, &pe)
	ep := pe.Endpoints[0]
	require.ErrorIs(t, ep.Err, ErrWrongRank)
	require.Equal(t, 1, ep.Attempts, "a rejected endpoint is not retried")
	require.ErrorContains(t, ep.Err, "claims this end's own rank 0")
	require.ErrorContains(t, ep.Err, "this very port")
	require.Equal(t, 1, rec.count("rejected inbound connection"))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, m := range rec.msgs {
		if strings.Contains(m, "rejected inbound connection") {
			require.Contains(t, m, "claims this end's own rank 0", "the port's log says why")
		}
	}
}

// A zoneless IPv6 link-local endpoint (fe80::/10 without the interface it
// is on: the rendezvous wire format carries no zone) cannot be dialed:
// connect fails at once with EINVAL, and it was retried until the deadline.
// It is not tried, and the report says why; a zoned one is dialed, and the
// peer's other endpoints still link.
func TestPunchZonelessLinkLocal(t *testing.T) {
	t.Run("reachable", func(t *testing.T) {
		tests := []struct {
			name, local, remote string
			wantErr             string
		}{
			{"zoneless from any address", "::", "fe80::1", "IPv6 link-local endpoint fe80::1 has no zone"},
			{"zoneless from unknown address", "", "fe80::1", "IPv6 link-local endpoint fe80::1 has no zone"},
			{"zoneless from loopback", "::1", "fe80::1", "IPv6 link-local endpoint fe80::1 has no zone"},
			{"zoneless from a global address", "2001:db8::2", "fe80::1", "IPv6 link-local endpoint fe80::1 has no zone"},
			{"zoneless from a zoneless link-local address", "fe80::2", "fe80::1", "IPv6 link-local endpoint fe80::1 has no zone"},
			{"zoneless top of fe80::/10", "::", "febf::1", "IPv6 link-local endpoint febf::1 has no zone"},
			{"zoneless from IPv4", "127.0.0.1", "fe80::1", "cannot reach an IPv6 endpoint"},
			{"zoneless from a zoned link-local address (the socket's interface)", "fe80::2%eth0", "fe80::1", ""},
			{"zoned from any address", "::", "fe80::1%eth0", ""},
			{"zoned from a zoned link-local address", "fe80::2%eth0", "fe80::1%eth0", ""},
			{"not link-local", "::", "fec0::1", ""},
			{"global", "::", "2001:db8::1", ""},
			{"IPv4 link-local", "0.0.0.0", "169.254.0.1", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var local netip.Addr
				if tt.local != "" {
					local = netip.MustParseAddr(tt.local)
				}
				err := reachable(local, netip.MustParseAddr(tt.remote))
				if tt.wantErr == "" {
					require.NoError(t, err)
					return
				}
				require.ErrorContains(t, err, tt.wantErr)
			})
		}
	})
	t.Run("not tried, the other endpoint links", func(t *testing.T) {
		a, b := listenIPv6Loop(t, 0), listenIPv6Loop(t, 1)
		zoneless := netip.AddrPortFrom(netip.MustParseAddr("fe80::1"), b.Addr().Port())
		ctx := testCtx(t, 10*time.Second)
		ca, cb, ea, eb := punchPair(ctx, a, b, []netip.AddrPort{a.Addr()}, []netip.AddrPort{zoneless, b.Addr()})
		require.NoError(t, ea)
		require.NoError(t, eb)
		defer ca.Close()
		defer cb.Close()
		requireSameLink(t, ca, cb)
	})
	t.Run("not tried, reported", func(t *testing.T) {
		a := listenIPv6Loop(t, 0)
		ep := netip.MustParseAddrPort("[fe80::1]:4000")
		ctx := testCtx(t, 200*time.Millisecond)
		_, err := a.Punch(ctx, Peer{Rank: 1, Endpoints: []netip.AddrPort{ep}})
		var pe *PunchError
		require.ErrorAs(t, err, &pe)
		require.Len(t, pe.Endpoints, 1)
		require.Zero(t, pe.Endpoints[0].Attempts)
		require.ErrorContains(t, err, "[fe80::1]:4000: not tried: IPv6 link-local endpoint fe80::1 has no zone")
	})
}

// PunchError.Err is why Punch stopped: ctx's cause when the caller cancels
// with one (its doc listed only the context errors and ErrClosed).
func TestPunchErrorCarriesCause(t *testing.T) {
	stopped := errors.New("job aborted by the caller")
	tests := []struct {
		name   string
		cancel func(context.CancelCauseFunc, *Port)
		want   error
	}{
		{"cause", func(c context.CancelCauseFunc, _ *Port) { c(stopped) }, stopped},
		{"no cause", func(c context.CancelCauseFunc, _ *Port) { c(nil) }, context.Canceled},
		{"port closed", func(_ context.CancelCauseFunc, p *Port) { assert.NoError(t, p.Close()) }, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := listenOS(t, 0)
			ctx, cancel := context.WithCancelCause(testCtx(t, 10*time.Second))
			defer cancel(nil)
			time.AfterFunc(50*time.Millisecond, func() { tt.cancel(cancel, a) })
			_, err := a.Punch(ctx, Peer{Rank: 1})
			var pe *PunchError
			require.ErrorAs(t, err, &pe)
			require.ErrorIs(t, pe.Err, tt.want)
			require.ErrorIs(t, err, tt.want)
		})
	}
}
