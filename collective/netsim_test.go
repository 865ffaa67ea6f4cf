package collective

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fnmesh/fnmesh/netsim"
	"github.com/fnmesh/fnmesh/rendezvous"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Collectives over an emulated internet: workers behind assorted NATs with
// WAN latency join through a rendezvous server, punch (or, behind the
// symmetric NAT, relay) their links, and run every collective with every
// algorithm; all in a synctest bubble, so latency costs no real time.

var simSecret = []byte("collective netsim test secret...")

// simJob is a rendezvous server and workers behind NATs on one netsim
// internet.
type simJob struct {
	in    *netsim.Internet
	hosts []*netsim.Host
	comms []*Comm
	tiers map[rendezvous.Tier]int // links per tier
	stop  func()
}

// newSimJob must run inside a synctest bubble. nats gives each worker's NAT.
func newSimJob(t *testing.T, nats []netsim.NATConfig, link netsim.Link, opts ...Option) *simJob {
	t.Helper()
	in := netsim.New(netsim.WithSeed(11))
	wan := netsim.WithLink(link)
	srvHost, err := in.AddHost(netip.MustParseAddr("203.0.113.10"), wan)
	require.NoError(t, err)
	ln, err := srvHost.ListenTCP(context.Background(), netip.MustParseAddrPort("203.0.113.10:7000"))
	require.NoError(t, err)
	srvCtx, srvStop := context.WithCancel(context.Background())
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		_ = rendezvous.NewServer(simSecret).Serve(srvCtx, ln, nil)
	}()
	job := &simJob{in: in}
	for i, cfg := range nats {
		nat, err := in.AddNAT(netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)}), cfg, wan)
		require.NoError(t, err)
		h, err := nat.AddHost(netip.MustParseAddr("198.18.0.2"))
		require.NoError(t, err)
		job.hosts = append(job.hosts, h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	job.comms = make([]*Comm, len(nats))
	job.tiers = map[rendezvous.Tier]int{}
	errs := make([]error, len(nats))
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for i, h := range job.hosts {
		wg.Go(func() {
			m, err := rendezvous.Join(ctx, "203.0.113.10:7000", "collective-sim", len(nats), simSecret,
				rendezvous.WithNetwork(h), rendezvous.WithRank(i), rendezvous.WithPunchTimeout(2*time.Second))
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			for _, l := range m.Links {
				if l != nil && l.Peer > i {
					job.tiers[l.Tier]++
				}
			}
			mu.Unlock()
			job.comms[i], errs[i] = FromMesh(m, opts...)
		})
	}
	wg.Wait()
	job.stop = func() {
		for _, c := range job.comms {
			if c != nil {
				_ = c.Close()
			}
		}
		srvStop()
		<-srvDone
		in.Close()
	}
	require.NoError(t, errors.Join(errs...))
	return job
}

var simNATs = []netsim.NATConfig{netsim.HomeRouter, netsim.LinuxMasquerade, netsim.FullCone, netsim.CloudNAT, netsim.Symmetric}

// simBattery runs one call of every collective with small odd sizes and
// checks each result against a sequential computation.
func simBattery(ctx context.Context, c *Comm) error {
	p, r := c.Size(), c.Rank()
	if err := c.Barrier(ctx); err != nil {
		return err
	}
	for _, n := range []int{0, 13, 40_001} {
		root := n % p
		var in []byte
		if r == root {
			in = payload(root, n, 21)
		}
		got, err := c.Bcast(ctx, root, in)
		if err != nil {
			return err
		}
		if err := mismatch("bcast", got, payload(root, n, 21)); err != nil {
			return err
		}
		all, err := c.Allgather(ctx, payload(r, varSize(n, r), 22))
		if err != nil {
			return err
		}
		for i := range p {
			if err := mismatch(fmt.Sprint("allgather from ", i), all[i], payload(i, varSize(n, i), 22)); err != nil {
				return err
			}
		}
		g, err := c.Gather(ctx, p-1, payload(r, varSize(n, r), 23))
		if err != nil {
			return err
		}
		if r == p-1 {
			for i := range p {
				if err := mismatch(fmt.Sprint("gather from ", i), g[i], payload(i, varSize(n, i), 23)); err != nil {
					return err
				}
			}
		}
		var parts [][]byte
		if r == 1 {
			for i := range p {
				parts = append(parts, payload(i, varSize(n, i), 24))
			}
		}
		sc, err := c.Scatter(ctx, 1, parts)
		if err != nil {
			return err
		}
		if err := mismatch("scatter", sc, payload(r, varSize(n, r), 24)); err != nil {
			return err
		}
		parts = make([][]byte, p)
		for j := range parts {
			parts[j] = payload(r*100+j, a2aSize(n/p, r, j), 25)
		}
		av, err := c.Alltoallv(ctx, parts)
		if err != nil {
			return err
		}
		for j := range p {
			if err := mismatch(fmt.Sprint("alltoallv from ", j), av[j], payload(j*100+r, a2aSize(n/p, j, r), 25)); err != nil {
				return err
			}
		}
		bs := n / p
		a, err := c.Alltoall(ctx, payload(r, bs*p, 26))
		if err != nil {
			return err
		}
		for j := range p {
			if err := mismatch(fmt.Sprint("alltoall from ", j), a[j*bs:(j+1)*bs], payload(j, bs*p, 26)[r*bs:(r+1)*bs]); err != nil {
				return err
			}
		}
		k := n / 8
		sum, err := Allreduce(ctx, c, vecI64(r, k), Sum[int64]())
		if err != nil {
			return err
		}
		if err := eqSlices("allreduce", sum, oracle(fmt.Sprint("sum", k), p, func(r int) []int64 { return vecI64(r, k) }, func(a, b int64) int64 { return a + b })); err != nil {
			return err
		}
		mat, err := Reduce(ctx, c, 2, vecU64(r, k, 2), NewOp(matmul, false))
		if err != nil {
			return err
		}
		if r == 2 {
			if err := eqSlices("reduce", mat, oracle(fmt.Sprint("mat2", k), p, func(r int) []uint64 { return vecU64(r, k, 2) }, matmul)); err != nil {
				return err
			}
		}
		counts := rsCounts(k, p)
		rs, err := ReduceScatter(ctx, c, vecU64(r, k, 3), counts, NewOp(matmul, false))
		if err != nil {
			return err
		}
		off := 0
		for _, x := range counts[:r] {
			off += x
		}
		want := oracle(fmt.Sprint("mat3", k), p, func(r int) []uint64 { return vecU64(r, k, 3) }, matmul)
		if err := eqSlices("reduce-scatter", rs, want[off:off+counts[r]]); err != nil {
			return err
		}
	}
	return nil
}

func TestNetsimCollectives(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		job := newSimJob(t, simNATs, netsim.Link{Latency: 15 * time.Millisecond, Jitter: 3 * time.Millisecond, Bandwidth: 500 * netsim.Mbps})
		defer job.stop()
		// The symmetric NAT's pairs are relayed, the others punched.
		t.Logf("links by tier: %v", job.tiers)
		assert.Equal(t, 10, job.tiers[rendezvous.TierPunched]+job.tiers[rendezvous.TierRelay]+job.tiers[rendezvous.TierDirect])
		assert.Positive(t, job.tiers[rendezvous.TierPunched], "some links punched")
		assert.Positive(t, job.tiers[rendezvous.TierRelay], "the symmetric NAT's links relayed")
		start := time.Now()
		defer func() { t.Logf("took %v of virtual time", time.Since(start)) }()
		var ops []Collective
		for op := range numCollectives {
			ops = append(ops, op)
		}
		// Auto, then each algorithm of each collective forced in turn.
		tunings := []Tuning{DefaultTuning(), tinyTuning()}
		for _, op := range ops {
			for _, a := range Algorithms(op) {
				tu := DefaultTuning()
				tu.Force[op] = a
				tu.ChunkSize = 1000
				tunings = append(tunings, tu)
			}
		}
		for i, tu := range tunings {
			for _, c := range job.comms {
				require.NoError(t, c.SetTuning(tu))
			}
			errs := runAll(t, job.comms, 10*time.Minute, simBattery)
			require.NoError(t, errors.Join(errs...), "tuning %d", i)
		}
	})
}

// TestNetsimPowerCut: one worker's host drops off the net (a frozen
// function: its peers hear nothing). The survivors' calls end at their
// deadline with an error, nobody hangs, and the rest of the job's links
// are torn down so that every rank's call fails.
func TestNetsimPowerCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		job := newSimJob(t, simNATs, netsim.Link{Latency: 20 * time.Millisecond})
		defer job.stop()
		const victim = 3
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		errs := runAll(t, job.comms, time.Minute, func(_ context.Context, c *Comm) error {
			if c.Rank() == victim {
				time.Sleep(50 * time.Millisecond)
				job.hosts[victim].Close()
				return nil
			}
			for {
				if _, err := Allreduce(ctx, c, vecI64(c.Rank(), 5000), Sum[int64]()); err != nil {
					return err
				}
			}
		})
		elapsed := time.Since(start)
		assert.LessOrEqual(t, elapsed, 31*time.Second, "virtual time until every survivor returned")
		for r, err := range errs {
			if r != victim {
				assert.Error(t, err, "rank %d", r)
			}
		}
		assert.ErrorIs(t, errors.Join(errs...), context.DeadlineExceeded, "someone's deadline ended the call")
	})
}
