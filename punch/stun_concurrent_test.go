package punch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fnmesh/fnmesh/netsim"
	"github.com/stretchr/testify/require"
)

// discoverAll starts n STUN calls at once and returns their results and how
// long the slowest took.
func discoverAll(n int, call func(i int) (netip.AddrPort, error)) ([]netip.AddrPort, []error, time.Duration) {
	got := make([]netip.AddrPort, n)
	errs := make([]error, n)
	var wg, ready sync.WaitGroup
	ready.Add(n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			ready.Done()
			<-start
			got[i], errs[i] = call(i)
		})
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	wg.Wait()
	return got, errs, time.Since(t0)
}

// Concurrent UDP discoveries from one port each get their own answer at
// once. Linux (and netsim) deliver a datagram to one of the sockets sharing a
// port by a hash of its source, so every answer of one server reached one
// call's socket, and the other call discarded the answers it read: it
// retransmitted (250 ms later) and waited until the first call closed its
// socket. On one socket (DiscoverPacket) the calls stole each other's
// answers the same way.
func TestDiscoverUDPConcurrent(t *testing.T) {
	const n = 4
	for _, servers := range []int{1, 2} {
		t.Run("DiscoverUDP, servers "+string(rune('0'+servers)), func(t *testing.T) {
			p := listenOS(t, 0)
			var srvs []netip.AddrPort
			total := 0
			var counts []func() int32
			for range servers {
				srv, seen := stunUDPServer(t, 0)
				srvs = append(srvs, srv)
				counts = append(counts, func() int32 { return seen.Load() })
			}
			ctx := testCtx(t, 5*time.Second)
			got, errs, took := discoverAll(n, func(i int) (netip.AddrPort, error) {
				return DiscoverUDP(ctx, OS(), p.Addr(), srvs[i%servers])
			})
			for i := range n {
				require.NoError(t, errs[i], "call %d", i)
				require.Equal(t, p.Addr(), got[i], "call %d", i)
			}
			for _, c := range counts {
				total += int(c())
			}
			require.Equal(t, n, total, "one request per call: none retransmitted")
			require.Less(t, took, 200*time.Millisecond, "no call waited for a retransmission")
		})
	}
}

// slowSTUNServer answers STUN Binding requests on loopback after delay
// each; it returns its endpoint and a count of requests.
func slowSTUNServer(t *testing.T, delay time.Duration) (netip.AddrPort, *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	var seen atomic.Int32
	var wg sync.WaitGroup
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, MaxSTUNMessage)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			seen.Add(1)
			resp, err := STUNResponse(buf[:n], from.(*net.UDPAddr).AddrPort())
			if err != nil {
				continue
			}
			wg.Go(func() {
				time.Sleep(delay)
				_, _ = pc.WriteTo(resp, from)
			})
		}
	})
	return pc.LocalAddr().(*net.UDPAddr).AddrPort(), &seen
}

// Calls on one socket to a slow and a fast server: the call waiting for the
// slow server read (and dropped) the fast server's answers to the others, who
// waited for their retransmission.
func TestDiscoverPacketConcurrent(t *testing.T) {
	slow, slowSeen := slowSTUNServer(t, 100*time.Millisecond)
	fast, fastSeen := slowSTUNServer(t, 0)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	want := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	ctx := testCtx(t, 5*time.Second)

	slowDone := make(chan error, 1)
	go func() {
		got, err := DiscoverPacket(ctx, pc, slow)
		if err == nil && got != want {
			err = fmt.Errorf("slow server: got %v, want %v", got, want)
		}
		slowDone <- err
	}()
	time.Sleep(20 * time.Millisecond) // the slow call is reading
	const n = 4
	got, errs, took := discoverAll(n, func(int) (netip.AddrPort, error) {
		return DiscoverPacket(ctx, pc, fast)
	})
	for i := range n {
		require.NoError(t, errs[i], "call %d", i)
		require.Equal(t, want, got[i], "call %d", i)
	}
	require.Less(t, took, 80*time.Millisecond, "the fast calls did not wait for the slow one or a retransmission")
	require.NoError(t, <-slowDone)
	require.Equal(t, int32(1), slowSeen.Load(), "slow server: one request")
	require.Equal(t, int32(n), fastSeen.Load(), "fast server: one request per call")
}

// A DiscoverPacket call to a silent server keeps retransmitting, and ends
// by its own context, while other calls on the same socket come and go. The
// end of each other call cleared the read deadline the first one waited on,
// which left it blocked in a read with no deadline: no retransmission, and no
// return at its context's end either if it had already passed.
func TestDiscoverPacketConcurrentSilent(t *testing.T) {
	srv, _ := slowSTUNServer(t, 0)
	silent, seen := stunUDPServer(t, 1<<30)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()

	ctx := testCtx(t, 10*time.Second)
	sctx := testCtx(t, 3*time.Second)
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := DiscoverPacket(sctx, pc, silent)
		errc <- err
	}()
	for time.Since(start) < 1900*time.Millisecond {
		time.Sleep(100 * time.Millisecond)
		t0 := time.Now()
		_, err := DiscoverPacket(ctx, pc, srv)
		require.NoError(t, err)
		require.Less(t, time.Since(t0), 200*time.Millisecond, "answered without a retransmission")
	}
	select {
	case err := <-errc:
		t.Fatalf("the silent server's call ended early: %v", err)
	default:
	}
	require.Equal(t, int32(4), seen.Load(), "requests at 0, 250, 750 and 1750 ms")
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "no answer after 4 requests")
		require.Less(t, time.Since(start), 3500*time.Millisecond)
	case <-time.After(3 * time.Second):
		t.Fatal("the silent server's call outlived its context")
	}
}

// The same on the emulated internet, through a NAT, in virtual time: four
// DiscoverUDP calls from one port to one server both answer within a round
// trip.
func TestNetsimDiscoverUDPConcurrent(t *testing.T) {
	inBubble(t, func(t *testing.T, l *lab) {
		n := must(l.in.AddNAT(addr("198.51.100.1"), netsim.LinuxMasquerade, netsim.WithLink(wan)))
		h := must(n.AddHost(addr("198.18.0.2")))
		laddr := netip.AddrPortFrom(h.Addr(), 41000)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got, errs, took := discoverAll(4, func(int) (netip.AddrPort, error) {
			return DiscoverUDP(ctx, h, laddr, stunAddr)
		})
		for i := range 4 {
			require.NoError(t, errs[i], "call %d", i)
			require.Equal(t, ap("198.51.100.1:41000"), got[i])
		}
		require.Less(t, took, 250*time.Millisecond, "no retransmission")
	})
}

// noDeadlines is a PacketConn that cannot set deadlines.
type noDeadlines struct{ net.PacketConn }

func (noDeadlines) SetReadDeadline(time.Time) error { return errors.ErrUnsupported }

// On a socket without deadlines DiscoverPacket still returns with its
// answer: it does not wait for the reader, which cannot be unblocked, to
// exit; the reader exits after the next datagram.
func TestDiscoverPacketNoDeadlines(t *testing.T) {
	srv, seen := slowSTUNServer(t, 0)
	raw, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer raw.Close()
	pc := noDeadlines{raw}
	ctx := testCtx(t, 5*time.Second)
	done := make(chan error, 1)
	go func() {
		_, err := DiscoverPacket(ctx, pc, srv)
		done <- err
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(3 * time.Second):
		t.Fatal("DiscoverPacket did not return")
	}
	// The next call starts a reader of its own and answers too, at once:
	// the first call's reader, still reading, passes the answer it reads
	// on before it exits (it dropped it, and the call retransmitted).
	_, err = DiscoverPacket(ctx, pc, srv)
	require.NoError(t, err)
	require.Equal(t, int32(2), seen.Load(), "one request per call")
}

// unhashablePC is a PacketConn whose value cannot be a map key.
type unhashablePC struct {
	net.PacketConn
	tags []string
}

// A socket that cannot be a map key gets a reader of its own: neither the
// last call's release nor a failed read looks it up in the reader table
// (both panicked: hash of unhashable type).
func TestDiscoverPacketUnhashableConn(t *testing.T) {
	srv, _ := slowSTUNServer(t, 0)
	raw, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer raw.Close()
	pc := unhashablePC{PacketConn: raw}
	ctx := testCtx(t, 5*time.Second)
	_, err = DiscoverPacket(ctx, pc, srv)
	require.NoError(t, err)
	raw.Close()
	_, err = DiscoverPacket(ctx, pc, srv)
	require.ErrorIs(t, err, net.ErrClosed)
}
