package punch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/internal/testnet"
)

type connPair func(t *testing.T) (net.Conn, net.Conn)

var transports = map[string]connPair{
	"tcp": func(t *testing.T) (net.Conn, net.Conn) { return testnet.TCPPair(t) },
	// net.Pipe is unbuffered: it shows that neither end waits for the
	// other to read before writing (as a relay splice may behave).
	"pipe": func(t *testing.T) (net.Conn, net.Conn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	},
}

// Both ends run Handshake with their own view; the table says what each
// must conclude.
func TestHandshakeBothEnds(t *testing.T) {
	other := Identity{Secret: []byte("another secret, 32 bytes long..."), Job: testJobID, Rank: 1}
	tests := []struct {
		name         string
		a, b         Identity
		aPeer, bPeer int
		wantA, wantB error // nil: success
	}{
		{"ok", ident(0), ident(1), 1, 0, nil, nil},
		{"ok high ranks", ident(70000), ident(3), 3, 70000, nil, nil},
		{"wrong secret", ident(0), other, 1, 0, ErrBadProof, ErrBadProof},
		{"wrong job", ident(0), Identity{Secret: secret, Job: "job-43", Rank: 1}, 1, 0, ErrForeignJob, ErrForeignJob},
		{"peer is another rank", ident(0), ident(2), 1, 0, ErrWrongRank, nil},
		{"peer expects another rank", ident(0), ident(1), 1, 5, ErrWrongRank, ErrWrongRank},
	}
	for tname, pair := range transports {
		for _, tt := range tests {
			t.Run(tname+"/"+tt.name, func(t *testing.T) {
				ca, cb := pair(t)
				ctx := testCtx(t, 5*time.Second)
				var errA, errB error
				var wg sync.WaitGroup
				wg.Go(func() {
					errA = Handshake(ctx, ca, tt.a, tt.aPeer)
					if errA != nil {
						ca.Close() // as a caller must: unblocks the other end
					}
				})
				wg.Go(func() {
					errB = Handshake(ctx, cb, tt.b, tt.bPeer)
					if errB != nil {
						cb.Close()
					}
				})
				wg.Wait()
				if tt.wantA == nil {
					require.NoError(t, errA)
				} else {
					require.ErrorIs(t, errA, tt.wantA)
					require.True(t, IsRejection(errA))
				}
				if tt.wantB == nil && tt.wantA == nil {
					require.NoError(t, errB)
				} else if tt.wantB != nil {
					require.ErrorIs(t, errB, tt.wantB)
				} else {
					require.Error(t, errB, "the other end must not accept a link its peer rejected")
				}
				if errA == nil && errB == nil {
					// Deadlines are cleared and the link carries data.
					go func() { _, _ = ca.Write([]byte("after")) }()
					buf := make([]byte, 5)
					_, err := io.ReadFull(cb, buf)
					require.NoError(t, err)
					require.Equal(t, "after", string(buf))
				}
			})
		}
	}
}

// recorder keeps every byte written through a conn.
type recorder struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.out.Write(b)
	r.mu.Unlock()
	return r.Conn.Write(b)
}

func (r *recorder) sent() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.out.Bytes())
}

// scripted runs Handshake as rank 0 (expecting rank 1) against a peer that
// writes script and then either waits or hangs up.
func scripted(t *testing.T, script []byte, hangUp bool, timeout time.Duration) error {
	ca, cb := testnet.TCPPair(t)
	go func() {
		_, _ = cb.Write(script)
		if hangUp {
			_ = cb.(*net.TCPConn).CloseWrite()
		}
		_, _ = io.Copy(io.Discard, cb)
	}()
	ctx := testCtx(t, timeout)
	return Handshake(ctx, ca, ident(0), 1)
}

func validHelloFrom(rank, peer uint32) []byte {
	h := hello{rank: rank, peer: peer}
	var err error
	if h.deployment, h.job, err = helloTags(secret, testJobID); err != nil {
		panic(err)
	}
	h.nonce[0] = 7
	return h.marshal()
}

// One end speaks something other than a valid handshake.
func TestHandshakeRejectsStrays(t *testing.T) {
	hello1 := validHelloFrom(1, 0)
	v1 := bytes.Clone(hello1)
	v1[4] = 1 // the version before the hello's tags were keyed
	oversized := bytes.Clone(hello1[:headerLen])
	oversized[6], oversized[7] = 0xEA, 0x60 // 60000 bytes
	wrongKind := bytes.Clone(hello1)
	wrongKind[5] = byte(kindProof)
	badProof := append(bytes.Clone(hello1), hello1[:headerLen]...)
	badProof[len(hello1)+5] = byte(kindProof)
	badProof[len(hello1)+7] = proofBodyLen
	badProof = append(badProof, make([]byte, proofBodyLen)...)

	tests := []struct {
		name    string
		script  []byte
		hangUp  bool
		want    error
		message string
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, ErrMalformed, "HTTP"},
		{"tls", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc}, false, ErrMalformed, "TLS"},
		{"garbage", bytes.Repeat([]byte{0xAB}, 100), false, ErrMalformed, "not an fnmesh link"},
		{"empty then close", nil, true, io.ErrUnexpectedEOF, "reading hello"},
		{"truncated header", hello1[:5], true, io.ErrUnexpectedEOF, "reading hello"},
		{"truncated body", hello1[:40], true, io.ErrUnexpectedEOF, "reading hello"},
		{"hello then close", hello1, true, io.ErrUnexpectedEOF, "reading proof"},
		{"version 1", v1, false, ErrVersion, "version 1 (this end speaks 2)"},
		{"oversized", oversized, false, ErrMalformed, "oversized"},
		{"wrong kind", wrongKind, false, ErrMalformed, "proof frame"},
		{"rank out of range", validHelloFrom(1<<31, 0), false, ErrWrongRank, "out of range"},
		{"zero proof", badProof, false, ErrBadProof, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := scripted(t, tt.script, tt.hangUp, 5*time.Second)
			require.ErrorIs(t, err, tt.want)
			require.ErrorContains(t, err, tt.message)
			require.ErrorContains(t, err, "handshake with rank 1")
		})
	}
}

// A peer that says nothing holds Handshake only until ctx's deadline.
func TestHandshakeSlowPeerDeadline(t *testing.T) {
	for _, script := range [][]byte{nil, validHelloFrom(1, 0)[:20], validHelloFrom(1, 0)} {
		start := time.Now()
		err := scripted(t, script, false, 150*time.Millisecond)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 3*time.Second)
	}
	// Cancellation (no deadline) ends it too.
	ca, _ := testnet.TCPPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := Handshake(ctx, ca, ident(0), 1)
	require.ErrorIs(t, err, context.Canceled)
}

// A connection that reaches itself (TCP self-connect, or a peer that
// reflects every byte) is refused.
func TestHandshakeSelfConnect(t *testing.T) {
	ca, cb := testnet.TCPPair(t)
	go func() { _, _ = io.Copy(cb, cb) }() // echo: our hello comes back
	err := Handshake(testCtx(t, 5*time.Second), ca, Identity{Secret: secret, Job: testJobID, Rank: 0}, 1)
	// Our own hello says rank 0 expecting 1: it fails either on the nonce
	// or on the rank; the nonce check comes first.
	require.ErrorIs(t, err, ErrSelfConnect)
}

// A recorded handshake of rank 1 cannot be replayed to rank 0: its proof
// covers rank 0's old nonce.
func TestHandshakeReplay(t *testing.T) {
	ca, cb := testnet.TCPPair(t)
	rec := &recorder{Conn: cb}
	ctx := testCtx(t, 5*time.Second)
	var wg sync.WaitGroup
	var errA error
	wg.Go(func() { errA = Handshake(ctx, ca, ident(0), 1) })
	require.NoError(t, Handshake(ctx, rec, ident(1), 0))
	wg.Wait()
	require.NoError(t, errA)
	transcript := rec.sent()
	require.Len(t, transcript, helloFrameLen+headerLen+proofBodyLen)

	err := scripted(t, transcript, false, 5*time.Second)
	require.ErrorIs(t, err, ErrBadProof)
}

func TestHandshakeArguments(t *testing.T) {
	ca, _ := testnet.TCPPair(t)
	ctx := testCtx(t, time.Second)
	tests := []struct {
		name string
		id   Identity
		peer int
		msg  string
	}{
		{"own rank", ident(1), 1, "own rank"},
		{"negative peer", ident(1), -1, "out of range"},
		{"negative rank", ident(-3), 1, "out of range"},
		{"no secret", Identity{Job: "j", Rank: 0}, 1, "empty secret"},
		{"no job", Identity{Secret: secret, Rank: 0}, 1, "empty job"},
		{"long job", Identity{Secret: secret, Job: string(make([]byte, MaxJobLen+1)), Rank: 0}, 1, "job ID of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Handshake(ctx, ca, tt.id, tt.peer)
			require.ErrorContains(t, err, tt.msg)
		})
	}
}

func TestHelloRoundTrip(t *testing.T) {
	h := hello{rank: 3, peer: 9}
	for i := range h.nonce {
		h.nonce[i] = byte(i)
		h.deployment[i%tagLen] = byte(100 + i)
		h.job[i%tagLen] = byte(200 + i)
	}
	f := h.marshal()
	require.Len(t, f, helloFrameLen)
	got, err := parseHello(f)
	require.NoError(t, err)
	assert.Equal(t, h, got)
	_, err = parseHello(f[:len(f)-1])
	require.ErrorIs(t, err, ErrMalformed)
	_, err = parseHello(append(f, 0))
	require.ErrorIs(t, err, ErrMalformed)
}

func TestJoinToken(t *testing.T) {
	a, err := JoinToken(secret, "job")
	require.NoError(t, err)
	require.Len(t, a, 32)
	b, _ := JoinToken(secret, "job")
	c, _ := JoinToken(secret, "job2")
	d, _ := JoinToken([]byte("other"), "job")
	k, _ := linkKey(secret, "job")
	require.Equal(t, a, b, "deterministic")
	require.NotEqual(t, a, c, "job-specific")
	require.NotEqual(t, a, d, "secret-specific")
	require.NotEqual(t, a, k, "independent of the link key")
	require.False(t, bytes.Contains(a, secret))
	_, err = JoinToken(nil, "job")
	require.Error(t, err)
}

// errors.Is on handshake errors wrapped by callers still works.
func TestIsRejection(t *testing.T) {
	require.True(t, IsRejection(errors.Join(errors.New("x"), ErrBadProof)))
	require.False(t, IsRejection(io.ErrUnexpectedEOF))
	require.False(t, IsRejection(context.DeadlineExceeded))
}

// A stranger without the secret who connects to a punch port gets the
// port's hello back (as an fnmesh peer of another job would, to learn why
// it was refused). What that hello says of the job must be useless to it:
// the job field depends on the secret, so it can neither be recomputed from
// a guessed job ID (version 1 sent SHA-256 of a label and the job ID, which
// a dictionary of job IDs recovered) nor match across secrets.
func TestHandshakeHelloHidesJob(t *testing.T) {
	strangerGets := func(p *Port) hello {
		c, err := net.Dial("tcp", p.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		h := hello{rank: 1, peer: 0} // a junk job: the stranger knows nothing
		h.nonce[0] = 1
		_, err = c.Write(h.marshal())
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
		f, err := readFrame(c, kindHello)
		require.NoError(t, err)
		got, err := parseHello(f)
		require.NoError(t, err)
		return got
	}
	p := listenOS(t, 0)
	other, err := Listen(context.Background(), OS(), anyLoop,
		Identity{Secret: []byte("another secret, 32 bytes long..."), Job: testJobID, Rank: 0})
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })

	a, b := strangerGets(p), strangerGets(other)
	unkeyed := sha256.Sum256([]byte("fnmesh/job/v1\x00" + testJobID))
	body := a.marshal()[headerLen:]
	assert.False(t, bytes.Contains(body, unkeyed[:tagLen]), "the hello carries an unkeyed hash of the job ID")
	assert.NotEqual(t, a.job, b.job, "the job field must depend on the secret")
	assert.NotEqual(t, a.deployment, b.deployment)
	// Holders of the secret still tell another job from another secret.
	d1, j1, err := helloTags(secret, testJobID)
	require.NoError(t, err)
	d2, j2, err := helloTags(secret, "job-43")
	require.NoError(t, err)
	assert.Equal(t, d1, d2)
	assert.NotEqual(t, j1, j2)
	assert.Equal(t, d1, a.deployment)
	assert.Equal(t, j1, a.job)
}
