package collective

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSmoke(t *testing.T) {
	for _, kind := range []meshKind{tcpMesh, pipeKind} {
		for _, n := range []int{1, 2, 3, 5, 8} {
			t.Run(name(kind, "/", n), func(t *testing.T) {
				comms := newComms(t, kind, n)
				requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
					if err := c.Barrier(ctx); err != nil {
						return err
					}
					got, err := c.Bcast(ctx, n-1, payload(99, 1000, 0))
					if err != nil {
						return err
					}
					require.Equal(t, payload(99, 1000, 0), got)
					all, err := c.Allgather(ctx, payload(c.Rank(), 10+c.Rank(), 1))
					if err != nil {
						return err
					}
					for r := range n {
						require.Equal(t, payload(r, 10+r, 1), all[r])
					}
					sum, err := Allreduce(ctx, c, []int64{int64(c.Rank()), 1}, Sum[int64]())
					if err != nil {
						return err
					}
					require.Equal(t, []int64{int64(n * (n - 1) / 2), int64(n)}, sum)
					return nil
				})
			})
		}
	}
}
