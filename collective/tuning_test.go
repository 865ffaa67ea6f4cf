package collective

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// TestTuningSnapshotPerCall: a collective takes the tuning once, when it
// begins; a SetTuning while it runs changes none of its choices (each is
// made from the snapshot, not from the communicator's current tuning).
func TestTuningSnapshotPerCall(t *testing.T) {
	with := func(f func(*Tuning)) Tuning {
		tu := DefaultTuning()
		f(&tu)
		return tu
	}
	rd := &reducer{elem: 8, commutative: true}
	cases := []struct {
		name         string
		before, then Tuning
		choice       func(cl *call) any
	}{
		{"allreduce algorithm",
			with(func(t *Tuning) { t.Force[OpAllreduce] = AllreduceRing }),
			with(func(t *Tuning) { t.Force[OpAllreduce] = AllreduceRabenseifner }),
			func(cl *call) any { return cl.allreduceAlgorithm(1<<20, 1<<17, rd) }},
		{"allreduce switch point",
			with(func(t *Tuning) { t.AllreduceShort = 1 << 30 }),
			with(func(t *Tuning) { t.AllreduceShort = 0 }),
			func(cl *call) any { return cl.allreduceAlgorithm(1<<20, 1<<17, rd) }},
		{"chunk size",
			with(func(t *Tuning) { t.ChunkSize = 1 << 10 }),
			with(func(t *Tuning) { t.ChunkSize = 1 << 12 }),
			func(cl *call) any { return chunkUnit(cl.tun.ChunkSize, rd.elem, cl.c.t.maxFrame) }},
		{"reduce",
			with(func(t *Tuning) { t.ReduceShort = 1 << 30 }),
			with(func(t *Tuning) { t.ReduceShort = 0 }),
			func(cl *call) any { return cl.reduceAlgorithm(1<<20, 1<<17) }},
		{"reduce-scatter",
			with(func(t *Tuning) { t.Force[OpReduceScatter] = ReduceScatterRing }),
			with(func(t *Tuning) { t.Force[OpReduceScatter] = ReduceScatterPairwise }),
			func(cl *call) any { return cl.reduceScatterAlgorithm(1<<20, rd) }},
		{"bcast",
			with(func(t *Tuning) { t.BcastShort, t.BcastMinRanks = 0, 0 }),
			with(func(t *Tuning) { t.BcastShort = 1 << 30 }),
			func(cl *call) any { return cl.bcastAlgorithm(1 << 20) }},
		{"allgather",
			with(func(t *Tuning) { t.AllgatherShort, t.AllgatherShortPow2 = 1, 1 }),
			with(func(t *Tuning) { t.AllgatherShort, t.AllgatherShortPow2 = 2, 2 }),
			func(cl *call) any { n, a := cl.allgatherShort(); return fmt.Sprint(n, a) }},
		{"alltoallv batch",
			with(func(t *Tuning) { t.AlltoallBatch = 2 }),
			with(func(t *Tuning) { t.AlltoallBatch = 5 }),
			func(cl *call) any { return cl.alltoallvBatch(make([][]byte, 3)) }},
	}
	comms := newComms(t, tcpMesh, 3)
	c := comms[0]
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, c.SetTuning(tc.before))
			cl, err := c.begin(context.Background(), "test")
			require.NoError(t, err)
			want := tc.choice(cl)
			require.NoError(t, c.SetTuning(tc.then))
			require.NotEqual(t, want, tc.choice(&call{c: c, tun: &tc.then}), "the case must tell the tunings apart")
			require.Equal(t, want, tc.choice(cl), "a choice of the running call changed with SetTuning")
			require.NoError(t, cl.end(nil))
			next, err := c.begin(context.Background(), "test")
			require.NoError(t, err)
			require.Equal(t, tc.choice(&call{c: c, tun: &tc.then}), tc.choice(next), "the next call takes the new tuning")
			require.NoError(t, next.end(nil))
		})
	}
}

// TestSetTuningDuringCollectives: SetTuning called in a loop on every rank
// while the ranks run collectives is race-free (run with -race) and every
// result is right. The tunings it alternates between make the same choices
// for these sizes (as every rank must: ranks that choose differently
// disagree) but differ everywhere else, chunk size included.
func TestSetTuningDuringCollectives(t *testing.T) {
	a := DefaultTuning()
	a.Force[OpAllreduce], a.Force[OpReduceScatter] = AllreduceRing, ReduceScatterRing
	b := a
	b.ChunkSize = 2 * a.ChunkSize // both above the blocks: one chunk each
	b.AlltoallBatch = 1
	b.AllreduceShort, b.AllreduceRingMin, b.ReduceShort = a.AllreduceShort+1, a.AllreduceRingMin+1, a.ReduceShort+1
	b.BcastShort, b.AllgatherShort, b.AllgatherShortPow2 = a.BcastShort+1, a.AllgatherShort+1, a.AllgatherShortPow2+1
	require.NotEqual(t, a, b)
	for _, tc := range []struct {
		name string
		kind meshKind
		p    int
	}{
		{"tcp/p=3", tcpMesh, 3},
		{"pipe/p=4", pipeKind, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			comms := newComms(t, tc.kind, tc.p)
			var stop atomic.Bool
			var wg sync.WaitGroup
			var sets atomic.Int64
			for _, c := range comms {
				wg.Go(func() {
					for i := 0; !stop.Load(); i++ {
						tu := a
						if i%2 == 1 {
							tu = b
						}
						if err := c.SetTuning(tu); err != nil {
							t.Error(err)
							return
						}
						sets.Add(1)
						time.Sleep(10 * time.Microsecond)
					}
				})
			}
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				for range 20 {
					if err := tuningEdgeCase(ctx, c, 37); err != nil {
						return err
					}
				}
				return nil
			})
			stop.Store(true)
			wg.Wait()
			require.Positive(t, sets.Load())
		})
	}
}
