package rendezvous

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/punch"
)

// TestClientRelayFailsAfterReady: the server says relay-ready to this side,
// then fails to tell the partner (its write to it fails) and sends an error
// frame, or just closes. The client has switched to the relayed stream by
// then; it must still see the server's error frame as the server's, not as
// a malformed handshake of its peer, and say that the relay to that rank
// could not be set up, and why.
func TestClientRelayFailsAfterReady(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(c net.Conn)
		want  string
		code  Code
	}{
		{"error frame", func(c net.Conn) {
			writeMessage(c, errorMsg{Code: CodeRelay, Rank: 1, Msg: "rank 1 unreachable: write: broken pipe"})
		}, "rank 0: relay to rank 1: the server could not set the relay up after saying relay-ready: relay: rank 1 unreachable: write: broken pipe", CodeRelay},
		{"closed", func(net.Conn) {},
			"rank 0: relay to rank 1: the relay closed before rank 1's handshake came (rank 1 hung up, or the server could not set the relay up)", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeServer(t, time.Second, func(m *fakeMember) {
				m.send(m.table(2, 0))
				m.send(start{Rank: 0, PunchTimeout: 10 * time.Second, RelayTimeout: time.Second})
				m.send(verdict{Peer: 1, Tier: TierRelay, Nonce: newNonce()})
				m.drain()
			}, func(c net.Conn, _ relayHello) {
				writeMessage(c, relayReady{})
				tc.after(c)
				c.(*net.TCPConn).CloseWrite()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				c.Read(make([]byte, 256)) // the client's hello, so that the close does not reset
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := Join(ctx, srv.addr, "j", 2, testSecret, WithRank(0))
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.want)
			assert.NotErrorIs(t, err, punch.ErrMalformed, "the server's frame was taken for the peer's handshake")
			if tc.code == 0 {
				assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "as a handshake cut short says")
			} else {
				var e *Error
				require.ErrorAs(t, err, &e)
				assert.Equal(t, tc.code, e.Code)
				assert.Equal(t, 1, e.Rank)
			}
		})
	}
}

// failSecondReady wraps a listener: the second relay-ready frame the
// server writes, over all its connections, fails (and breaks that
// connection), as a write to a relay side that vanished does.
type failSecondReady struct {
	net.Listener
	readies atomic.Int32
}

func (l *failSecondReady) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &failReadyConn{TCPConn: c.(*net.TCPConn), l: l}, nil
}

type failReadyConn struct {
	*net.TCPConn
	l *failSecondReady
}

func (c *failReadyConn) Write(b []byte) (int, error) {
	if bytes.Equal(b, encodeFrame(relayReady{})) && c.l.readies.Add(1) == 2 {
		c.TCPConn.SetLinger(0)
		c.TCPConn.Close()
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}
	}
	return c.TCPConn.Write(b)
}

// noPunch is the OS network, except that every dial but one to the
// rendezvous server fails at once: every pair is relayed.
type noPunch struct {
	punch.Network
	server uint16
}

func (n noPunch) DialTCP(ctx context.Context, laddr, raddr netip.AddrPort) (net.Conn, error) {
	if raddr.Port() != n.server {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	return n.Network.DialTCP(ctx, laddr, raddr)
}

// TestRelayReadyToOneSideOnly: the real server tells the first side of a
// relay (a Join, rank 0) relay-ready, then fails to tell the second (rank
// 1, whose connection breaks as the server writes to it). Rank 0's Join
// must say that the relay to rank 1 could not be set up because rank 1 is
// unreachable, not fail on a "malformed handshake".
func TestRelayReadyToOneSideOnly(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	fl := &failSecondReady{Listener: ln}
	srv := NewServer(testSecret, WithRelayTimeout(5*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, fl, nil) }()
	defer func() {
		cancel()
		require.NoError(t, <-served)
	}()
	addr := ln.Addr().String()
	const job = "half-ready"

	jctx, jcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer jcancel()
	joined := make(chan error, 1)
	go func() {
		nw := noPunch{Network: punch.OS(), server: uint16(ln.Addr().(*net.TCPAddr).Port)}
		m, err := Join(jctx, addr, job, 2, testSecret, WithRank(0), WithNetwork(nw), WithPunchTimeout(200*time.Millisecond))
		if err == nil {
			m.Close()
		}
		joined <- err
	}()
	// Rank 1 stays in the job (its control connection open) and comes to
	// the relay second, once rank 0 waits there.
	b := dialRaw(t, addr)
	b.join(job, 2, 1)
	b.started()
	v, ok := b.mustRecv().(verdict)
	require.True(t, ok)
	require.Equal(t, TierRelay, v.Tier)
	require.Eventually(t, func() bool {
		srv.mu.Lock()
		j := srv.jobs[job]
		srv.mu.Unlock()
		if j == nil {
			return false
		}
		j.mu.Lock()
		defer j.mu.Unlock()
		sl := j.relays[[2]int{0, 1}]
		return sl != nil && sl.conns[0] != nil
	}, 10*time.Second, 5*time.Millisecond, "rank 0 never came to the relay")
	dialRaw(t, addr).send(relayHelloFor(t, job, 1, v))

	err = <-joined
	require.Error(t, err, "the relay cannot have been set up")
	assert.NotErrorIs(t, err, punch.ErrMalformed, "the server's frame was taken for the peer's handshake")
	assert.ErrorContains(t, err, "rank 0: relay to rank 1: the server could not set the relay up after saying relay-ready: relay: rank 1 unreachable: write tcp: broken pipe")
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, CodeRelay, e.Code)
	assert.Equal(t, 1, e.Rank)
	assert.Equal(t, int64(1), srv.Metrics().RelayFailures)
	assert.Equal(t, int64(0), srv.Metrics().RelaysTotal)
}

// TestAfterReadyPassesPeerBytes: afterReady hands on every byte of a peer
// whose stream does not begin "FM", in order, whatever the size of the
// reads and however the bytes arrive; and a stream that does begin with a
// server frame is not read past that frame.
func TestAfterReadyPassesPeerBytes(t *testing.T) {
	stream := append([]byte("FNMH\x02\x01\x00\x48"), payload(0, 1, 5000)...)
	for _, size := range []int{1, 2, 3, 8, 4096} {
		a, b := net.Pipe()
		go func() {
			for i := 0; i < len(stream); i += 7 { // in pieces
				b.Write(stream[i:min(i+7, len(stream))])
			}
			b.Close()
		}()
		ar := &afterReady{Conn: a, peer: 1}
		var got []byte
		buf := make([]byte, size)
		for {
			n, err := ar.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				require.ErrorIs(t, err, io.EOF, "read size %d", size)
				break
			}
		}
		assert.Equal(t, stream, got, "read size %d", size)
		assert.True(t, ar.handedOn())
		a.Close()
	}

	a, b := net.Pipe()
	defer a.Close()
	frame := encodeFrame(errorMsg{Code: CodeShutdown, Rank: -1, Msg: "bye"})
	go func() {
		b.Write(append(frame, "FNMH after"...))
		b.Close()
	}()
	ar := &afterReady{Conn: a, peer: 1}
	_, err := ar.Read(make([]byte, 8))
	var ab *relayAborted
	require.ErrorAs(t, err, &ab)
	assert.ErrorIs(t, err, &Error{Code: CodeShutdown, Msg: "bye"})
	assert.False(t, ar.handedOn())
	rest, _ := io.ReadAll(a)
	assert.Equal(t, "FNMH after", string(rest), "read past the server's frame")
}
