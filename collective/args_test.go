package collective

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWorldRankOutOfRange: WorldRank maps a communicator's ranks to world
// ranks and answers -1 for a rank the communicator does not have, instead
// of panicking.
func TestWorldRankOutOfRange(t *testing.T) {
	comms := newComms(t, pipeKind, 3)
	c := comms[1]
	cases := []struct {
		r, want int
	}{
		{0, 0}, {1, 1}, {2, 2},
		{-1, -1}, {3, -1}, {math.MaxInt, -1}, {math.MinInt, -1},
	}
	for _, tc := range cases {
		require.NotPanics(t, func() { _ = c.WorldRank(tc.r) })
		assert.Equal(t, tc.want, c.WorldRank(tc.r), "WorldRank(%d)", tc.r)
	}
}

// badArgCase is a collective that one rank calls with a bad argument while
// the others call it correctly.
type badArgCase struct {
	name string
	// call runs the collective on c; bad says this rank passes the bad
	// argument. A rank whose call succeeds returns what it checked.
	call func(ctx context.Context, c *Comm, bad bool) error
}

var badArgCases = []badArgCase{
	{"bcast root out of range", func(ctx context.Context, c *Comm, bad bool) error {
		root := 0
		if bad {
			root = c.Size() + 4
		}
		got, err := c.Bcast(ctx, root, []byte("first"))
		if err == nil && string(got) != "first" {
			return fmt.Errorf("bcast got %q", got)
		}
		return err
	}},
	{"bcast-into negative root", func(ctx context.Context, c *Comm, bad bool) error {
		root := 0
		if bad {
			root = -1
		}
		buf := []byte("abcdef")
		if c.Rank() != 0 {
			buf = make([]byte, 6)
		}
		err := c.BcastInto(ctx, root, buf)
		if err == nil && string(buf) != "abcdef" {
			return fmt.Errorf("bcast-into got %q", buf)
		}
		return err
	}},
	{"gather root out of range", func(ctx context.Context, c *Comm, bad bool) error {
		root := 0
		if bad {
			root = c.Size()
		}
		_, err := c.Gather(ctx, root, []byte{byte(c.Rank())})
		return err
	}},
	{"scatter negative root", func(ctx context.Context, c *Comm, bad bool) error {
		root := 0
		if bad {
			root = -3
		}
		parts := make([][]byte, c.Size())
		for i := range parts {
			parts[i] = []byte{byte(i)}
		}
		got, err := c.Scatter(ctx, root, parts)
		if err == nil && (len(got) != 1 || got[0] != byte(c.Rank())) {
			return fmt.Errorf("scatter got %v", got)
		}
		return err
	}},
	{"reduce negative root", func(ctx context.Context, c *Comm, bad bool) error {
		root := 0
		if bad {
			root = -1
		}
		_, err := Reduce(ctx, c, root, []int64{1, 2, 3}, Sum[int64]())
		return err
	}},
	{"reduce zero op", func(ctx context.Context, c *Comm, bad bool) error {
		op := Sum[int64]()
		if bad {
			op = Op[int64]{}
		}
		_, err := Reduce(ctx, c, 0, []int64{1, 2, 3}, op)
		return err
	}},
	{"reduce-bytes zero op", func(ctx context.Context, c *Comm, bad bool) error {
		op := NewBytesOp(1, func(acc, in []byte) {}, true)
		if bad {
			op = BytesOp{}
		}
		_, err := ReduceBytes(ctx, c, 0, []byte{1, 2}, op)
		return err
	}},
	{"allreduce zero op", func(ctx context.Context, c *Comm, bad bool) error {
		op := Sum[float64]()
		if bad {
			op = Op[float64]{}
		}
		_, err := Allreduce(ctx, c, []float64{1, 2}, op)
		return err
	}},
	{"allreduce-into zero op", func(ctx context.Context, c *Comm, bad bool) error {
		op := Sum[float64]()
		if bad {
			op = Op[float64]{}
		}
		out := make([]float64, 2)
		return AllreduceInto(ctx, c, []float64{1, 2}, out, op)
	}},
	{"allreduce-into short out", func(ctx context.Context, c *Comm, bad bool) error {
		out := make([]float64, 2)
		if bad {
			out = out[:1]
		}
		return AllreduceInto(ctx, c, []float64{1, 2}, out, Sum[float64]())
	}},
	{"allreduce-bytes partial element", func(ctx context.Context, c *Comm, bad bool) error {
		data := make([]byte, 6)
		if bad {
			data = data[:5]
		}
		_, err := AllreduceBytes(ctx, c, data, NewBytesOp(3, func(acc, in []byte) {}, true))
		return err
	}},
	{"reduce-scatter zero op", func(ctx context.Context, c *Comm, bad bool) error {
		op := Sum[int32]()
		if bad {
			op = Op[int32]{}
		}
		counts := make([]int, c.Size())
		for i := range counts {
			counts[i] = 1
		}
		_, err := ReduceScatter(ctx, c, make([]int32, c.Size()), counts, op)
		return err
	}},
	{"alltoall partial block", func(ctx context.Context, c *Comm, bad bool) error {
		data := make([]byte, 2*c.Size())
		if bad {
			data = data[:len(data)-1]
		}
		_, err := c.Alltoall(ctx, data)
		return err
	}},
	{"reduce-scatter-bytes negative count", func(ctx context.Context, c *Comm, bad bool) error {
		counts := make([]int, c.Size())
		for i := range counts {
			counts[i] = 2
		}
		if bad {
			counts[0], counts[1] = -2, 4
		}
		_, err := ReduceScatterBytes(ctx, c, make([]byte, 2*c.Size()), counts, NewBytesOp(1, func(acc, in []byte) {}, true))
		return err
	}},
}

// TestBadArgumentPoisons: a collective that one rank calls with a bad
// argument fails on that rank with ErrInvalidArgument naming it, and
// poisons the communicator: no rank waits for its deadline, and every
// rank's next collective fails instead of running one call behind (taking
// the other ranks' messages of this call for its next one).
func TestBadArgumentPoisons(t *testing.T) {
	const p, badRank = 3, 2
	for _, tc := range badArgCases {
		t.Run(tc.name, func(t *testing.T) {
			comms := newComms(t, tcpMesh, p)
			const limit = 20 * time.Second
			start := time.Now()
			errs := runAll(t, comms, limit, func(ctx context.Context, c *Comm) error {
				return tc.call(ctx, c, c.Rank() == badRank)
			})
			assert.Less(t, time.Since(start), limit/4, "no rank waited for its deadline")
			bad := errs[badRank]
			require.ErrorIs(t, bad, ErrInvalidArgument)
			assert.Contains(t, bad.Error(), fmt.Sprintf("rank %d", badRank))
			require.Error(t, comms[badRank].Err(), "the bad call poisoned the communicator")
			for r, err := range errs {
				// Ranks that only send may finish; the others fail
				// through the closed links. None saw wrong data (call
				// checks what it got).
				if err != nil {
					assert.NotErrorIs(t, err, context.DeadlineExceeded, "rank %d", r)
					assert.NotContains(t, err.Error(), "bcast got", "rank %d", r)
				}
			}
			// The next collective fails on every rank, promptly.
			start = time.Now()
			errs = runAll(t, comms, limit, func(ctx context.Context, c *Comm) error {
				_, err := c.Bcast(ctx, 0, []byte("second"))
				return err
			})
			assert.Less(t, time.Since(start), limit/4)
			require.Error(t, errs[badRank], "the bad rank's next call fails rather than returning stale data")
			errs = runAll(t, comms, limit, func(ctx context.Context, c *Comm) error { return c.Barrier(ctx) })
			for r, err := range errs {
				require.Error(t, err, "rank %d", r)
				assert.NotErrorIs(t, err, context.DeadlineExceeded, "rank %d", r)
			}
		})
	}
}

// TestBadRootNoStaleData is the reviewer's scenario: rank 2 of 3 passes
// root 7 to Bcast; its next Bcast used to return the first one's data.
func TestBadRootNoStaleData(t *testing.T) {
	comms := newComms(t, tcpMesh, 3)
	got := make([][]byte, 3)
	first := make([]error, 3)
	errs := runAll(t, comms, 20*time.Second, func(ctx context.Context, c *Comm) error {
		root := 0
		if c.Rank() == 2 {
			root = 7
		}
		_, first[c.Rank()] = c.Bcast(ctx, root, []byte("first"))
		time.Sleep(50 * time.Millisecond) // the others' first call is over
		var err error
		got[c.Rank()], err = c.Bcast(ctx, 0, []byte("second"))
		return err
	})
	require.ErrorIs(t, first[2], ErrInvalidArgument)
	require.Error(t, errs[2])
	assert.NotErrorIs(t, errs[2], context.DeadlineExceeded)
	assert.Nil(t, got[2], "no stale data")
	for r := range 2 {
		if errs[r] == nil {
			assert.Equal(t, "second", string(got[r]), "rank %d", r)
		}
	}
}

// TestReduceScatterCountOverflow: counts whose byte offsets overflow, or
// that do not add up to the data, are an error on every rank, never a
// panic.
func TestReduceScatterCountOverflow(t *testing.T) {
	cases := []struct {
		name   string
		counts []int
		want   error
	}{
		// 1<<61-1 (on 64 bits) is the reviewer's case: 8 times it wraps to -8.
		{"first count overflows", []int{1<<(strconv.IntSize-3) - 1, 5}, ErrMismatch},
		{"second count overflows", []int{3, 1<<(strconv.IntSize-3) - 1}, ErrMismatch},
		{"max ints", []int{math.MaxInt, math.MaxInt}, ErrMismatch},
		// 8 times each wraps to 16 bytes: together the data's 32.
		{"wraps to the length", []int{1<<(strconv.IntSize-3) + 2, 1<<(strconv.IntSize-3) + 2}, ErrMismatch},
		{"negative", []int{-1, 5}, ErrInvalidArgument},
		{"min int", []int{math.MinInt, 4}, ErrInvalidArgument},
		{"sum short", []int{1, 2}, ErrMismatch},
		{"sum long", []int{3, 3}, ErrMismatch},
		{"too few counts", []int{4}, ErrMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			comms := newComms(t, pipeKind, 2)
			errs := runAll(t, comms, 20*time.Second, func(ctx context.Context, c *Comm) error {
				var err error
				require.NotPanics(t, func() {
					_, err = ReduceScatter(ctx, c, []int64{1, 2, 3, 4}, tc.counts, Sum[int64]())
				})
				return err
			})
			for r, err := range errs {
				assert.ErrorIs(t, err, tc.want, "rank %d", r)
			}
		})
	}
	t.Run("bytes", func(t *testing.T) {
		comms := newComms(t, pipeKind, 2)
		op := NewBytesOp(3, func(acc, in []byte) {}, true)
		errs := runAll(t, comms, 20*time.Second, func(ctx context.Context, c *Comm) error {
			_, err := ReduceScatterBytes(ctx, c, make([]byte, 12), []int{math.MaxInt / 3, 3}, op)
			return err
		})
		for r, err := range errs {
			assert.ErrorIs(t, err, ErrMismatch, "rank %d", r)
		}
	})
}
