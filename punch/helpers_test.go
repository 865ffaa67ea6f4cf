package punch

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	loopback  = netip.MustParseAddr("127.0.0.1")
	anyLoop   = netip.AddrPortFrom(loopback, 0)
	secret    = []byte("0123456789abcdef0123456789abcdef")
	testJobID = "job-42"
)

func ident(rank int) Identity { return Identity{Secret: secret, Job: testJobID, Rank: rank} }

// listenOS opens a Port on an ephemeral loopback port of the OS.
func listenOS(t *testing.T, rank int, opts ...Option) *Port {
	t.Helper()
	p, err := Listen(context.Background(), OS(), anyLoop, ident(rank), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

// punchPair punches a and b at each other at once and returns both links.
func punchPair(ctx context.Context, a, b *Port, aEps, bEps []netip.AddrPort) (ca, cb net.Conn, ea, eb error) {
	var wg sync.WaitGroup
	wg.Go(func() { ca, ea = a.Punch(ctx, Peer{Rank: b.Rank(), Endpoints: bEps}) })
	wg.Go(func() { cb, eb = b.Punch(ctx, Peer{Rank: a.Rank(), Endpoints: aEps}) })
	wg.Wait()
	return
}

// mustPunch punches a and b at each other on their own addresses (no NAT
// between them) and returns both links, closed when the test ends.
func mustPunch(t *testing.T, a, b *Port) (ca, cb net.Conn) {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	ca, cb, ea, eb := punchPair(ctx, a, b, []netip.AddrPort{a.Addr()}, []netip.AddrPort{b.Addr()})
	require.NoError(t, ea)
	require.NoError(t, eb)
	t.Cleanup(func() {
		ca.Close()
		cb.Close()
	})
	return ca, cb
}

// requireSameTuple checks that ca and cb see each other's endpoints (no NAT
// between them).
func requireSameTuple(t *testing.T, ca, cb net.Conn) {
	t.Helper()
	require.Equal(t, ca.LocalAddr().String(), cb.RemoteAddr().String())
	require.Equal(t, ca.RemoteAddr().String(), cb.LocalAddr().String())
}

// requireSameLink checks that ca and cb are the two ends of one TCP
// connection by sending bytes both ways and comparing them.
func requireSameLink(t *testing.T, ca, cb net.Conn) {
	t.Helper()
	msgA, msgB := bytes.Repeat([]byte("a->b "), 1000), bytes.Repeat([]byte("b->a "), 777)
	var wg sync.WaitGroup
	var gotA, gotB []byte
	var errA, errB error
	wg.Go(func() {
		_, errA = ca.Write(msgA)
		if errA == nil {
			gotA = make([]byte, len(msgB))
			_, errA = io.ReadFull(ca, gotA)
		}
	})
	wg.Go(func() {
		_, errB = cb.Write(msgB)
		if errB == nil {
			gotB = make([]byte, len(msgA))
			_, errB = io.ReadFull(cb, gotB)
		}
	})
	wg.Wait()
	require.NoError(t, errA)
	require.NoError(t, errB)
	require.Equal(t, msgB, gotA)
	require.Equal(t, msgA, gotB)
}

// logRecorder is a slog handler that keeps every record's message and
// attributes, for tests that assert what a Port logged.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b bytes.Buffer
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	r.mu.Lock()
	r.msgs = append(r.msgs, b.String())
	r.mu.Unlock()
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if bytes.Contains([]byte(m), []byte(substr)) {
			n++
		}
	}
	return n
}

func (r *logRecorder) logger() *slog.Logger { return slog.New(r) }

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
