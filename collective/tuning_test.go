package collective

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTuningEdgeValues runs the exchanges and reductions under switch
// points at their extremes (0, negative, math.MaxInt), which Validate
// accepts and every algorithm must honour: results match a sequential
// computation.
func TestTuningEdgeValues(t *testing.T) {
	edge := func(f func(*Tuning)) Tuning {
		tu := DefaultTuning()
		f(&tu)
		return tu
	}
	cases := []struct {
		name string
		tune Tuning
	}{
		{"batch max int", edge(func(t *Tuning) { t.AlltoallBatch = math.MaxInt })},
		{"batch max int - 1", edge(func(t *Tuning) { t.AlltoallBatch = math.MaxInt - 1 })},
		{"batch max int, scattered forced", edge(func(t *Tuning) {
			t.AlltoallBatch = math.MaxInt
			t.Force[OpAlltoall] = AlltoallScattered
			t.Force[OpAlltoallv] = AlltoallvScattered
		})},
		{"batch 1", edge(func(t *Tuning) { t.AlltoallBatch = 1 })},
		{"chunk max int", edge(func(t *Tuning) { t.ChunkSize = math.MaxInt; t.Force[OpAllreduce] = AllreduceRing })},
		{"chunk 1", edge(func(t *Tuning) { t.ChunkSize = 1; t.Force[OpReduceScatter] = ReduceScatterRing })},
		{"thresholds max int", edge(func(t *Tuning) {
			t.BcastShort, t.BcastMinRanks = math.MaxInt, math.MaxInt
			t.AllgatherShortPow2, t.AllgatherShort = math.MaxInt, math.MaxInt
			t.AlltoallBruckMax, t.AlltoallBruckMinRanks, t.AlltoallScatteredMax = math.MaxInt, math.MaxInt, math.MaxInt
			t.ReduceShort, t.AllreduceShort, t.AllreduceRingMin, t.ReduceScatterShort = math.MaxInt, math.MaxInt, math.MaxInt, math.MaxInt
		})},
		{"thresholds zero", edge(func(t *Tuning) {
			t.BcastShort, t.BcastMinRanks = 0, 0
			t.AllgatherShortPow2, t.AllgatherShort = 0, 0
			t.AlltoallBruckMax, t.AlltoallBruckMinRanks, t.AlltoallScatteredMax = 0, 0, 0
			t.ReduceShort, t.AllreduceShort, t.AllreduceRingMin, t.ReduceScatterShort = 0, 0, 0, 0
		})},
		{"thresholds negative", edge(func(t *Tuning) {
			t.BcastShort, t.BcastMinRanks = -1, math.MinInt
			t.AllgatherShortPow2, t.AllgatherShort = math.MinInt, -1
			t.AlltoallBruckMax, t.AlltoallBruckMinRanks, t.AlltoallScatteredMax = -1, math.MinInt, math.MinInt
			t.ReduceShort, t.AllreduceShort, t.AllreduceRingMin, t.ReduceScatterShort = math.MinInt, -1, math.MinInt, -1
		})},
	}
	for _, p := range []int{1, 3, 4} {
		comms := newComms(t, tcpMesh, p)
		for _, tc := range cases {
			t.Run(fmt.Sprintf("p=%d/%s", p, tc.name), func(t *testing.T) {
				require.NoError(t, tc.tune.Validate())
				for _, c := range comms {
					require.NoError(t, c.SetTuning(tc.tune))
				}
				requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
					return tuningEdgeCase(ctx, c, 37)
				})
			})
		}
	}
}

// tuningEdgeCase runs alltoallv, alltoall, bcast, allgather and the
// reductions over n-element vectors on c and checks every result.
func tuningEdgeCase(ctx context.Context, c *Comm, n int) error {
	p, r := c.Size(), c.Rank()
	parts := make([][]byte, p)
	for j := range parts {
		parts[j] = payload(r*100+j, n+j, 21)
	}
	got, err := c.Alltoallv(ctx, parts)
	if err != nil {
		return err
	}
	for j := range p {
		if err := mismatch(fmt.Sprint("alltoallv from ", j), got[j], payload(j*100+r, n+r, 21)); err != nil {
			return err
		}
	}
	blocks, err := c.Alltoall(ctx, payload(r, n*p, 22))
	if err != nil {
		return err
	}
	for j := range p {
		if err := mismatch(fmt.Sprint("alltoall from ", j), blocks[j*n:(j+1)*n], payload(j, n*p, 22)[r*n:(r+1)*n]); err != nil {
			return err
		}
	}
	var in []byte
	if r == p-1 {
		in = payload(p-1, 3*n, 23)
	}
	b, err := c.Bcast(ctx, p-1, in)
	if err != nil {
		return err
	}
	if err := mismatch("bcast", b, payload(p-1, 3*n, 23)); err != nil {
		return err
	}
	all, err := c.Allgather(ctx, payload(r, n+r, 24))
	if err != nil {
		return err
	}
	for j := range p {
		if err := mismatch(fmt.Sprint("allgather from ", j), all[j], payload(j, n+j, 24)); err != nil {
			return err
		}
	}
	vec := func(q int) []uint64 { return vecU64(q, n, 25) }
	want := oracle(fmt.Sprint("tuning-edge", n), p, vec, matmul)
	res, err := Allreduce(ctx, c, vec(r), NewOp(matmul, false))
	if err != nil {
		return err
	}
	if err := eqSlices("allreduce", res, want); err != nil {
		return err
	}
	sum := oracle(fmt.Sprint("tuning-edge-sum", n), p, vec, func(a, b uint64) uint64 { return a + b })
	if res, err = Allreduce(ctx, c, vec(r), Sum[uint64]()); err != nil {
		return err
	}
	if err := eqSlices("allreduce sum", res, sum); err != nil {
		return err
	}
	if res, err = Reduce(ctx, c, 0, vec(r), NewOp(matmul, false)); err != nil {
		return err
	}
	if r == 0 {
		if err := eqSlices("reduce", res, want); err != nil {
			return err
		}
	}
	counts := make([]int, p)
	counts[0] = n
	for j := 1; j < p; j++ {
		counts[j] = j
		counts[0] -= j
	}
	if res, err = ReduceScatter(ctx, c, vec(r), counts, Sum[uint64]()); err != nil {
		return err
	}
	off := 0
	for j := range r {
		off += counts[j]
	}
	if !bytes.Equal(asBytes(res), asBytes(sum[off:off+counts[r]])) {
		return fmt.Errorf("reduce-scatter: got %v, want %v", res, sum[off:off+counts[r]])
	}
	return nil
}
