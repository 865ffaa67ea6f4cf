package rendezvous

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawClient speaks the protocol frame by frame, for server tests.
type rawClient struct {
	t     testing.TB
	c     net.Conn
	br    *bufio.Reader
	nonce [nonceSize]byte // the challenge of this connection
	cn    [nonceSize]byte
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawClient) local() netip.AddrPort { return addrPortOf(r.c.LocalAddr()) }

func (r *rawClient) send(m message) {
	r.t.Helper()
	r.sendBytes(encodeFrame(m))
}

func (r *rawClient) sendBytes(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.c.Write(b)
	require.NoError(r.t, err)
}

// recv reads the next frame that is not a ping (pings are answered).
func (r *rawClient) recv() (message, error) {
	for {
		r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, err := readMessage(r.br, MaxPayload)
		if err != nil {
			return nil, err
		}
		if p, ok := m.(ping); ok {
			r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			writeMessage(r.c, pong{Seq: p.Seq})
			continue
		}
		return m, nil
	}
}

func (r *rawClient) mustRecv() message {
	r.t.Helper()
	m, err := r.recv()
	require.NoError(r.t, err)
	return m
}

// expectError reads an error frame with code, then the end of the stream.
func (r *rawClient) expectError(code Code) errorMsg {
	r.t.Helper()
	m, err := r.recv()
	require.NoError(r.t, err, "want a %v error frame", code)
	e, ok := m.(errorMsg)
	require.True(r.t, ok, "got %#v, want a %v error frame", m, code)
	require.Equal(r.t, code, e.Code, "error: %s", e.Msg)
	r.expectClosed()
	return e
}

// expectClosed checks that the server closes the connection.
func (r *rawClient) expectClosed() {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := r.br.ReadByte()
	require.Error(r.t, err)
	var ne net.Error
	require.False(r.t, errors.As(err, &ne) && ne.Timeout(), "connection still open: %v", err)
}

// hello sends hello and reads the challenge.
func (r *rawClient) hello() {
	r.t.Helper()
	r.send(hello{})
	m := r.mustRecv()
	ch, ok := m.(challenge)
	require.True(r.t, ok, "got %#v, want challenge", m)
	r.nonce = ch.Nonce
}

// joinMsg is a signed join for this connection's challenge.
func (r *rawClient) joinMsg(job string, world, rank int, secret []byte) join {
	key, err := jobKey(secret, job)
	require.NoError(r.t, err)
	r.cn = newNonce()
	j := join{Echo: r.nonce, ClientNonce: r.cn, Job: job, World: world, Rank: rank,
		Private: []netip.AddrPort{r.local()}}
	signJoin(key, &j)
	return j
}

// join runs hello, challenge, join and expects joined.
func (r *rawClient) join(job string, world, rank int) {
	r.t.Helper()
	r.hello()
	r.send(r.joinMsg(job, world, rank, testSecret))
	m := r.mustRecv()
	jd, ok := m.(joined)
	require.True(r.t, ok, "got %#v, want joined", m)
	key, _ := jobKey(testSecret, job)
	require.Equal(r.t, joinedMAC(key, r.cn, r.nonce, world, jd.Joined), jd.MAC)
}

// started reads the peer table and the start frame.
func (r *rawClient) started() (peers, start) {
	r.t.Helper()
	m := r.mustRecv()
	p, ok := m.(peers)
	require.True(r.t, ok, "got %#v, want peers", m)
	m = r.mustRecv()
	s, ok := m.(start)
	require.True(r.t, ok, "got %#v, want start", m)
	return p, s
}

var _ = io.EOF

// relayedPair joins two raw members to job (world 2) and has rank 0 report
// that its punch failed: the server decides relay for the pair and each
// member gets its verdict (with its relay ticket).
func relayedPair(t testing.TB, addr, job string) (a, b *rawClient, va, vb verdict) {
	t.Helper()
	a, b = dialRaw(t, addr), dialRaw(t, addr)
	a.join(job, 2, 0)
	b.join(job, 2, 1)
	a.started()
	b.started()
	a.send(report{Peer: 1, Outcome: outcomeFailed})
	va, vb = a.mustRecv().(verdict), b.mustRecv().(verdict)
	return a, b, va, vb
}

// relayHelloFor is rank's signed relay hello to the other rank of its pair
// in job (world 2), with the ticket of its verdict v.
func relayHelloFor(t testing.TB, job string, rank int, v verdict) relayHello {
	t.Helper()
	key, err := jobKey(testSecret, job)
	require.NoError(t, err)
	rh := relayHello{Job: job, Rank: rank, Peer: 1 - rank, Nonce: v.Nonce}
	signRelay(key, &rh)
	return rh
}

// establishedRelay makes a relayed pair in job (world 2) on srv and connects
// both of its sides to the relay: each has been told relay-ready, and the
// server counts the relay active.
func establishedRelay(t testing.TB, srv *loopServer, job string) (ra, rb *rawClient) {
	t.Helper()
	_, _, va, vb := relayedPair(t, srv.addr, job)
	ra, rb = dialRaw(t, srv.addr), dialRaw(t, srv.addr)
	ra.send(relayHelloFor(t, job, 0, va))
	rb.send(relayHelloFor(t, job, 1, vb))
	require.IsType(t, relayReady{}, ra.mustRecv())
	require.IsType(t, relayReady{}, rb.mustRecv())
	// The gauge goes up just after both sides were told.
	require.Eventually(t, func() bool { return srv.Metrics().RelaysActive == 1 }, 10*time.Second, 5*time.Millisecond)
	return ra, rb
}
