package collective

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// errWrongData is what a mismatch scenario's rank returns when its call
// succeeded with data other than the correct result.
var errWrongData = errors.New("wrong data with a nil error")

// failed is err from a call that must fail, or errWrongData if it did not.
func failed(err error) error {
	if err == nil {
		return errWrongData
	}
	return err
}

// TestMismatchedRanks: ranks that disagree about a call (sizes that make
// them pick different algorithms, different collectives) never take each
// other's messages: no rank returns wrong data, none waits for its
// deadline, the ranks that see the other algorithm's messages report
// ErrMismatch, and the communicator is poisoned on every rank.
func TestMismatchedRanks(t *testing.T) {
	bcastTuning := DefaultTuning()
	bcastTuning.BcastMinRanks = 2
	cases := []struct {
		name string
		p    int
		opts []Option
		// call runs the collective; it returns errWrongData for a
		// success with a wrong result.
		call func(ctx context.Context, c *Comm) error
		// fail must end with an error (nil: every rank); mismatch must
		// report ErrMismatch (they only receive, and see the other
		// algorithm's messages before any link closes). At least one
		// rank always does; the others may see a link to a failed rank
		// close first, or, when both sides detect it, their own message
		// cut short.
		fail, mismatch []int
	}{
		{
			name: "allreduce recursive doubling against rabenseifner",
			p:    2,
			call: func(ctx context.Context, c *Comm) error {
				n := 256 // 2 KiB: recursive doubling
				if c.Rank() == 1 {
					n = 512 // 4 KiB: Rabenseifner, whose first half is also 2 KiB
				}
				_, err := Allreduce(ctx, c, make([]float64, n), Sum[float64]())
				return failed(err) // the sizes disagree: there is no right answer
			},
		},
		{
			name: "alltoall bruck against scattered",
			p:    8,
			call: func(ctx context.Context, c *Comm) error {
				bs := 256 // Bruck at 8 ranks
				if c.Rank() == 1 {
					bs = 1024 // scattered
				}
				data := make([]byte, bs*c.Size())
				for j := range c.Size() {
					for i := range bs {
						data[j*bs+i] = byte(c.Rank()*16 + j)
					}
				}
				_, err := c.Alltoall(ctx, data)
				return failed(err)
			},
		},
		{
			name: "reduce binomial against reduce-scatter-gather",
			p:    2,
			call: func(ctx context.Context, c *Comm) error {
				n := 64 // binomial
				if c.Rank() == 1 {
					n = 1024 // 8 KiB: reduce-scatter + gather
				}
				_, err := Reduce(ctx, c, 0, make([]int64, n), Sum[int64]())
				if c.Rank() == 0 {
					return failed(err)
				}
				return err
			},
			fail:     []int{0, 1},
			mismatch: []int{0},
		},
		{
			name: "reduce at 4 ranks",
			p:    4,
			call: func(ctx context.Context, c *Comm) error {
				n := 64
				if c.Rank() == 3 {
					n = 1024
				}
				_, err := Reduce(ctx, c, 0, make([]int64, n), Sum[int64]())
				if c.Rank() == 0 {
					return failed(err)
				}
				return err
			},
			fail: []int{0, 2, 3}, // rank 1 only sends to the root
		},
		{
			name: "bcast-into root scatter-allgather, others binomial",
			p:    8,
			call: bcastIntoSizes(func(r int) int {
				if r == 0 {
					return 64 << 10
				}
				return 1 << 10
			}),
			mismatch: []int{4, 2, 1}, // the root's children get its segments
		},
		{
			name: "bcast-into leaf scatter-allgather",
			p:    8,
			call: bcastIntoSizes(func(r int) int {
				if r == 5 {
					return 64 << 10
				}
				return 1 << 10
			}),
			fail:     []int{5}, // the others have the root's data, correctly
			mismatch: []int{5},
		},
		{
			name: "bcast-into 2 ranks",
			p:    2,
			opts: []Option{WithTuning(bcastTuning)},
			call: bcastIntoSizes(func(r int) int {
				if r == 1 {
					return 64 << 10
				}
				return 1 << 10
			}),
			fail:     []int{1}, // the root only sends
			mismatch: []int{1},
		},
		{
			name: "allgather-into recursive doubling against ring",
			p:    4,
			call: func(ctx context.Context, c *Comm) error {
				n := 1 << 10
				if c.Rank() == 2 {
					n = 200 << 10 // 800 KiB in all: ring
				}
				data := bytes.Repeat([]byte{byte(c.Rank() + 1)}, n)
				err := c.AllgatherInto(ctx, data, make([]byte, n*c.Size()))
				return failed(err)
			},
		},
		{
			name: "different collectives",
			p:    2,
			call: func(ctx context.Context, c *Comm) error {
				if c.Rank() == 0 {
					err := c.Barrier(ctx)
					return failed(err)
				}
				_, err := Allreduce(ctx, c, []int64{1}, Sum[int64]())
				return failed(err)
			},
		},
		{
			name: "bcast against bcast-into",
			p:    2,
			call: func(ctx context.Context, c *Comm) error {
				if c.Rank() == 0 {
					_, err := c.Bcast(ctx, 0, []byte("root"))
					return err
				}
				buf := make([]byte, 4)
				err := c.BcastInto(ctx, 0, buf)
				return failed(err)
			},
			fail:     []int{1},
			mismatch: []int{1},
		},
	}
	for _, tc := range cases {
		for _, kind := range []meshKind{tcpMesh, pipeKind} {
			t.Run(name(tc.name, "/", kind), func(t *testing.T) {
				comms := newComms(t, kind, tc.p, tc.opts...)
				const limit = 20 * time.Second
				start := time.Now()
				errs := runAll(t, comms, limit, tc.call)
				assert.Less(t, time.Since(start), limit/4, "no rank waits for its deadline")
				fail := tc.fail
				if fail == nil {
					for r := range tc.p {
						fail = append(fail, r)
					}
				}
				for r, err := range errs {
					require.NotErrorIs(t, err, errWrongData, "rank %d", r)
					assert.NotErrorIs(t, err, context.DeadlineExceeded, "rank %d", r)
				}
				for _, r := range fail {
					assert.Error(t, errs[r], "rank %d", r)
				}
				for _, r := range tc.mismatch {
					assert.ErrorIs(t, errs[r], ErrMismatch, "rank %d", r)
				}
				assert.ErrorIs(t, errors.Join(errs...), ErrMismatch, "some rank sees the disagreement")
				// Poisoned everywhere: the next collective fails on every
				// rank, promptly.
				start = time.Now()
				errs = runAll(t, comms, limit, func(ctx context.Context, c *Comm) error { return c.Barrier(ctx) })
				assert.Less(t, time.Since(start), limit/4)
				for r, err := range errs {
					assert.Error(t, err, "rank %d", r)
					assert.NotErrorIs(t, err, context.DeadlineExceeded, "rank %d", r)
				}
			})
		}
	}
}

// bcastIntoSizes runs BcastInto from root 0 with a buffer of size(rank)
// bytes; a rank that succeeds must hold the root's bytes.
func bcastIntoSizes(size func(r int) int) func(ctx context.Context, c *Comm) error {
	return func(ctx context.Context, c *Comm) error {
		n := size(c.Rank())
		buf := make([]byte, n)
		want := makePayload(0, size(0), 3)
		if c.Rank() == 0 {
			copy(buf, want)
		}
		err := c.BcastInto(ctx, 0, buf)
		if err == nil && !bytes.Equal(buf, want) {
			return fmt.Errorf("%w: %d bytes", errWrongData, n)
		}
		return err
	}
}

// TestMismatchWithManySubCommunicators: a link watches the world
// communicator's calls however many sub-communicators are open, so a
// disagreement on the world communicator is still ErrMismatch, found
// promptly; and on the most recent sub-communicator too.
func TestMismatchWithManySubCommunicators(t *testing.T) {
	mismatched := func(ctx context.Context, c *Comm) error {
		n := 256
		if c.Rank() == 1 {
			n = 512
		}
		_, err := Allreduce(ctx, c, make([]float64, n), Sum[float64]())
		return failed(err)
	}
	for _, target := range []string{"world", "last sub"} {
		t.Run(target, func(t *testing.T) {
			comms := newComms(t, tcpMesh, 2)
			subs := make([][]*Comm, 2)
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				for i := range 2 * linkCalls {
					sub, err := c.Split(ctx, 0, c.Rank())
					if err != nil {
						return err
					}
					if i%3 == 2 {
						_ = sub.Close() // frees its place
						continue
					}
					subs[c.Rank()] = append(subs[c.Rank()], sub)
				}
				return nil
			})
			run := comms
			if target != "world" {
				run = []*Comm{subs[0][len(subs[0])-1], subs[1][len(subs[1])-1]}
			}
			const limit = 20 * time.Second
			start := time.Now()
			errs := runAll(t, run, limit, mismatched)
			assert.Less(t, time.Since(start), limit/4)
			for r, err := range errs {
				require.Error(t, err, "rank %d", r)
				require.NotErrorIs(t, err, errWrongData, "rank %d", r)
			}
			assert.ErrorIs(t, errors.Join(errs...), ErrMismatch)
		})
	}
}
