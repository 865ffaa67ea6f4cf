package collective

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBcastRootTuningOnly: for Bcast only the root's bcast tuning matters
// (BcastShort, BcastMinRanks, Force[OpBcast]: the root tells the others in
// its preamble), so ranks whose settings differ must broadcast correctly
// whatever the root. BcastInto sends no preamble and every rank picks from
// its own settings: ranks that pick differently must all fail, with
// ErrMismatch, never hang or take wrong data. (Tuning's doc said "only the
// root's setting matters" of both; BcastInto failed so.)
func TestBcastRootTuningOnly(t *testing.T) {
	differ := func(comms []*Comm, force bool) {
		for r, c := range comms {
			tun := DefaultTuning()
			if r%2 == 1 { // odd ranks: scatter-allgather from 1 byte on 2 ranks
				tun.BcastShort, tun.BcastMinRanks = 0, 2
				if force {
					tun.Force[OpBcast] = BcastScatterAllgather
				}
			} else if force {
				tun.Force[OpBcast] = BcastBinomial
			}
			require.NoError(t, c.SetTuning(tun))
		}
	}
	bcast := func(into bool, root, n int) func(ctx context.Context, c *Comm) error {
		return func(ctx context.Context, c *Comm) error {
			want := payload(root, n, 5)
			var got []byte
			var err error
			if into {
				got = make([]byte, n)
				if c.Rank() == root {
					copy(got, want)
				}
				err = c.BcastInto(ctx, root, got)
			} else {
				var in []byte
				if c.Rank() == root {
					in = want
				}
				got, err = c.Bcast(ctx, root, in)
			}
			if err != nil {
				return err
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("rank %d: wrong data", c.Rank())
			}
			return nil
		}
	}
	for _, p := range []int{2, 3, 5, 8} {
		for _, force := range []bool{false, true} {
			t.Run(fmt.Sprintf("p=%d/force=%v", p, force), func(t *testing.T) {
				comms := newComms(t, tcpMesh, p)
				differ(comms, force)
				for _, n := range []int{0, 1, 100, 20_000} {
					for _, root := range roots(p) {
						for r, err := range runAll(t, comms, 20*time.Second, bcast(false, root, n)) {
							require.NoError(t, err, "bcast n=%d root=%d rank %d", n, root, r)
						}
					}
				}
				for _, root := range roots(p) {
					comms := newComms(t, tcpMesh, p)
					differ(comms, force)
					errs := runAll(t, comms, 20*time.Second, bcast(true, root, 100))
					mismatch := false
					for r, err := range errs {
						if err == nil { // a rank that only sent may be done before the others notice
							continue
						}
						require.NotContains(t, err.Error(), "wrong data")
						require.False(t, errors.Is(err, context.DeadlineExceeded), "rank %d waited: %v", r, err)
						mismatch = mismatch || errors.Is(err, ErrMismatch)
					}
					require.True(t, mismatch, "some rank reports ErrMismatch: %v", errs)
					for r, err := range runAll(t, comms, 20*time.Second, func(ctx context.Context, c *Comm) error { return c.Barrier(ctx) }) {
						require.Error(t, err, "rank %d: the communicator is poisoned", r)
					}
				}
			})
		}
	}
}
