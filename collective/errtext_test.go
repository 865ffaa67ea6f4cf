package collective

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestErrorTextOrder: every failure of a call reads in one order, who, then
// what, then the cause: "collective: rank 1: allreduce: context canceled",
// "collective: rank 0: allreduce: link to rank 1: ...". A peer failure used
// to read "collective: allreduce: rank 0: link to rank 1: ...", what before
// who, and a failure carried over from an earlier call "collective: bcast:
// rank 1: allreduce: ...". errors.Is and errors.As still see the
// documented sentinels and *PeerError.
func TestErrorTextOrder(t *testing.T) {
	// Each case runs on two ranks over synchronous pipes (so that what
	// reaches which rank first is fixed) and returns rank `rank`'s error.
	type run func(t *testing.T, ctx context.Context, comms []*Comm) error
	cancelled := func(ctx context.Context) context.Context {
		c, cancel := context.WithCancel(ctx)
		cancel()
		return c
	}
	past := func(ctx context.Context) context.Context {
		c, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
		t.Cleanup(cancel)
		return c
	}
	// both runs a on rank 0 and b on rank 1 at once and returns their
	// errors.
	both := func(t *testing.T, ctx context.Context, comms []*Comm, a, b func(c *Comm) error) (err0, err1 error) {
		var wg sync.WaitGroup
		wg.Go(func() { err0 = a(comms[0]) })
		wg.Go(func() { err1 = b(comms[1]) })
		wg.Wait()
		return err0, err1
	}
	allreduce := func(ctx context.Context, n int) func(c *Comm) error {
		return func(c *Comm) error {
			_, err := Allreduce(ctx, c, make([]int64, n), Sum[int64]())
			return err
		}
	}
	bcast := func(ctx context.Context, root int) func(c *Comm) error {
		return func(c *Comm) error {
			_, err := c.Bcast(ctx, root, []byte("hello"))
			return err
		}
	}
	for _, tc := range []struct {
		name string
		run  run
		want string // the whole text, or a regexp when it starts with ^
		is   []error
		peer int // the PeerError's Peer errors.As finds; -1: none
	}{
		{"allreduce cancelled", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			return allreduce(cancelled(ctx), 4)(comms[1])
		}, "collective: rank 1: allreduce: context canceled", []error{context.Canceled}, -1},
		{"allreduce past deadline", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			return allreduce(past(ctx), 4)(comms[1])
		}, "collective: rank 1: allreduce: context deadline exceeded", []error{context.DeadlineExceeded}, -1},
		{"bcast cancelled", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			return bcast(cancelled(ctx), 0)(comms[0])
		}, "collective: rank 0: bcast: context canceled", []error{context.Canceled}, -1},
		{"allreduce: abort from a peer", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			// Rank 0 reads the abort before it calls (had it called
			// first, its send could meet the closed link first).
			require.EqualError(t, allreduce(cancelled(ctx), 4)(comms[1]), "collective: rank 1: allreduce: context canceled")
			require.Eventually(t, func() bool { return comms[0].Err() != nil }, 10*time.Second, time.Millisecond)
			return allreduce(ctx, 4)(comms[0])
		}, "collective: rank 0: allreduce: link to rank 1: peer failed: rank 1: allreduce: context canceled", []error{ErrPeerFailed}, 1},
		{"bcast: abort from a peer", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			err0, _ := both(t, ctx, comms, bcast(ctx, 1), bcast(cancelled(ctx), 1))
			return err0
		}, "collective: rank 0: bcast: link to rank 1: peer failed: rank 1: bcast: context canceled", []error{ErrPeerFailed}, 1},
		{"allreduce: peer died", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			killLinks(comms[1])
			return allreduce(ctx, 4)(comms[0])
		}, `^collective: rank 0: allreduce: link to rank 1: [a-z]`, nil, 1},
		{"allreduce: mismatch", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			err0, err1 := both(t, ctx, comms, allreduce(ctx, 4), allreduce(ctx, 8))
			assert.ErrorIs(t, err1, ErrMismatch)
			assert.Regexp(t, `^collective: rank 1: allreduce: link to rank 0: (peer failed: )?ranks disagree: `, err1.Error())
			return err0
		}, `^collective: rank 0: allreduce: link to rank 1: (peer failed: )?ranks disagree: `, []error{ErrMismatch}, 1},
		{"bcast after a failed allreduce", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			require.Error(t, allreduce(cancelled(ctx), 4)(comms[1]))
			return bcast(ctx, 0)(comms[1])
		}, "collective: rank 1: bcast: allreduce: context canceled", []error{context.Canceled}, -1},
		{"bcast on a closed communicator", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			require.NoError(t, comms[1].Close())
			return bcast(ctx, 0)(comms[1])
		}, "collective: rank 1: bcast: communicator closed", []error{ErrClosed}, -1},
		{"bad root", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			return bcast(ctx, 7)(comms[1])
		}, "collective: rank 1: bcast: invalid argument: root 7 out of range 0..1", []error{ErrInvalidArgument}, -1},
		{"recv cancelled", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			_, err := comms[1].Recv(cancelled(ctx), 0, 3)
			return err
		}, "collective: rank 1: recv from rank 0: context canceled", []error{context.Canceled}, -1},
		{"send past deadline", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			return comms[1].Send(past(ctx), 0, 3, []byte("x"))
		}, "collective: rank 1: send to rank 0: context deadline exceeded", []error{context.DeadlineExceeded}, -1},
		{"recv: peer died", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			killLinks(comms[0])
			_, err := comms[1].Recv(ctx, 0, 3)
			return err
		}, "collective: rank 1: recv from rank 0: link to rank 0: peer closed the link", []error{ErrPeerClosed}, 0},
		{"recv: abort from a peer", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			_, err := both(t, ctx, comms, bcast(cancelled(ctx), 0), func(c *Comm) error {
				_, err := c.Recv(ctx, 0, 3)
				return err
			})
			return err
		}, "collective: rank 1: recv from rank 0: link to rank 0: peer failed: rank 0: bcast: context canceled", []error{ErrPeerFailed}, 0},
		{"recv after a failed collective", func(t *testing.T, ctx context.Context, comms []*Comm) error {
			require.Error(t, allreduce(cancelled(ctx), 4)(comms[1]))
			_, err := comms[1].Recv(ctx, 0, 3)
			return err
		}, "collective: rank 1: recv: allreduce: context canceled", []error{context.Canceled}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			comms := newComms(t, pipeKind, 2)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := tc.run(t, ctx, comms)
			require.Error(t, err)
			checkErrText(t, err, tc.want, tc.is, tc.peer)
		})
	}

	// A corrupted frame, on a point-to-point receive and in a collective.
	for _, tc := range []struct {
		name string
		recv func(ctx context.Context, c *Comm) error
		send func(ctx context.Context, c *Comm) error
		want string
	}{
		{"recv: corrupted frame", func(ctx context.Context, c *Comm) error {
			_, err := c.Recv(ctx, 0, 7)
			return err
		}, func(ctx context.Context, c *Comm) error {
			return c.Send(ctx, 1, 7, payload(0, 1000, 9))
		}, `^collective: rank 1: recv from rank 0: link to rank 0: corrupted frame: payload checksum [0-9a-f]{8}, computed [0-9a-f]{8} \(1000 bytes\)$`},
		{"bcast: corrupted frame", func(ctx context.Context, c *Comm) error {
			_, err := c.Bcast(ctx, 0, nil)
			return err
		}, func(ctx context.Context, c *Comm) error {
			_, err := c.Bcast(ctx, 0, payload(0, 1000, 9))
			return err
		}, `^collective: rank 1: bcast: link to rank 0: corrupted frame: payload checksum [0-9a-f]{8}, computed [0-9a-f]{8} \(`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			c0, err := New(0, []net.Conn{nil, &corruptConn{Conn: a, at: hdrLen + 100}})
			require.NoError(t, err)
			c1, err := New(1, []net.Conn{b, nil})
			require.NoError(t, err)
			defer c0.Close()
			defer c1.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			go func() { _ = tc.send(ctx, c0) }()
			err = tc.recv(ctx, c1)
			require.Error(t, err)
			checkErrText(t, err, tc.want, []error{ErrCorrupt}, 0)
		})
	}
}

// checkErrText checks err's text against want (the whole text, or a regexp
// if it starts with ^), that it names no rank twice in a row of parts
// ("rank 1: ... rank 1:" is allowed only inside a peer's own reason), and
// that errors.Is finds each of is and errors.As the *PeerError with Peer
// peer (or none, for peer -1).
func checkErrText(t *testing.T, err error, want string, is []error, peer int) {
	t.Helper()
	msg := err.Error()
	if len(want) > 0 && want[0] == '^' {
		assert.Regexp(t, regexp.MustCompile(want), msg)
	} else {
		assert.Equal(t, want, msg)
	}
	assert.Regexp(t, `^collective: rank \d: `, msg, "who comes first")
	assert.True(t, NamesRank(err), "NamesRank(%q)", msg)
	for _, s := range is {
		assert.ErrorIs(t, err, s)
	}
	var pe *PeerError
	if peer < 0 {
		assert.False(t, errors.As(err, &pe), "no PeerError in %q", msg)
		return
	}
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, peer, pe.Peer)
}

// TestNamesRank: NamesRank tells a layer that wraps an error whether its
// text already names this rank, following the chain and the first error of
// a join (whose text comes first).
func TestNamesRank(t *testing.T) {
	comms := newComms(t, pipeKind, 2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	callErr := comms[1].Barrier(ctx)
	require.EqualError(t, callErr, "collective: rank 1: barrier: context canceled")
	_, p2pErr := comms[0].Recv(ctx, 1, 0)
	require.Error(t, p2pErr)
	other := errors.New("x.csv: bad row")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"a collective's", callErr, true},
		{"a receive's", p2pErr, true},
		{"an invalid argument", comms[0].Send(context.Background(), 5, 0, nil), true},
		{"wrapped", fmt.Errorf("arrowio: allgather: %w", callErr), true},
		{"joined first", errors.Join(callErr, other), true},
		{"joined second", errors.Join(other, callErr), false},
		{"a PeerError", &PeerError{Rank: 1, Peer: 0, Err: ErrPeerClosed}, true},
		{"Err", comms[1].Err(), true},
		{"another error", other, false},
		{"a text alone", errors.New("collective: rank 1: barrier: context canceled"), false},
		{"says it names the rank", fmt.Errorf("frame: %w", namingError{true}), true},
		{"says it does not", namingError{false}, false},
		{"wrapped as text", fmt.Errorf("x: %v", callErr), false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, NamesRank(tc.err), "%v", tc.err)
		})
	}
}

// namingError is another package's error that says whether it names the
// rank (as arrowio's own failures do).
type namingError struct{ names bool }

func (e namingError) Error() string   { return "arrowio: rank 1: allgather: nil table" }
func (e namingError) NamesRank() bool { return e.names }
