//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/arrowio"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/fnmesh/fnmesh/frame"
	"github.com/fnmesh/fnmesh/rendezvous"
)

// workerArgs is what the driver tells each worker process (as JSON in the
// environment).
type workerArgs struct {
	Rendezvous string  `json:"rendezvous"`
	Job        string  `json:"job"`
	Secret     []byte  `json:"secret"`
	World      int     `json:"world"`
	Rank       int     `json:"rank"`
	Rows       int     `json:"rows"`  // rows per table on this worker
	Total      int     `json:"total"` // rows per table over all workers
	Uniqueness float64 `json:"uniqueness"`
	Seed       uint64  `json:"seed"`
	Reps       int     `json:"reps"`
	Join       bool    `json:"join"`
	GroupBy    bool    `json:"groupby"`
	DataDir    string  `json:"data_dir"`    // write the inputs as Parquet here (for DuckDB)
	CPUProfile string  `json:"cpu_profile"` // write each rank's CPU profile of the timed part here
	Par        int     `json:"par"`         // frame.WithParallelism (0: the default)
	NoChecksum bool    `json:"no_checksum"` // collective.WithChecksum(false)
	// CeilingBytes is what each rank sends each other rank in the raw
	// all-to-all that measures the loopback ceiling (0: skip it).
	CeilingBytes int64 `json:"ceiling_bytes"`
}

// phaseTimes is one timed run of an operator on one rank.
type phaseTimes struct {
	Total     time.Duration `json:"total"`     // barrier to barrier: the job's time
	Partition time.Duration `json:"partition"` // hash-partitioning both sides
	Exchange  time.Duration `json:"exchange"`  // the all-to-all exchanges
	Local     time.Duration `json:"local"`     // local join or aggregation, with materialisation
	Bytes     int64         `json:"bytes"`     // Arrow bytes this rank sent
	OutRows   int64         `json:"out_rows"`  // result rows over all ranks (the exchange alone: this rank's)
	CPU       time.Duration `json:"cpu"`       // user+system CPU time of this rank's process in the run
	// MaxRSS is the peak resident memory of this rank's process during the
	// run (its inputs and Go runtime included; see resetPeakRSS), bytes; 0
	// where it cannot be measured.
	MaxRSS int64 `json:"max_rss"`
}

// cpuTime is the user+system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// workerResult is what rank 0 prints: every rank's phases for every rep.
type workerResult struct {
	World   int            `json:"world"`
	Rows    int            `json:"rows"`
	Total   int            `json:"total"`
	Join    [][]phaseTimes `json:"join"`    // [rep][rank]
	GroupBy [][]phaseTimes `json:"groupby"` // [rep][rank]
	Shuffle [][]phaseTimes `json:"shuffle"` // [rep][rank]: the exchange alone
	// The raw all-to-all on the same links, [rep][rank]: memory to memory
	// (coldSpan) and from and to cache (hotSpan).
	Ceiling    [][]rawSample    `json:"ceiling"`
	CeilingHot [][]rawSample    `json:"ceiling_hot"`
	Setup      time.Duration    `json:"setup"` // rendezvous join
	Gen        time.Duration    `json:"gen"`   // data generation
	Extra      map[string]int64 `json:"extra,omitempty"`
}

// cylonTable is Cylon's benchmark table: two int64 columns of random
// integers, the key uniform over [0, uniqueness*total) so that about
// uniqueness of the total rows have distinct keys.
func cylonTable(mem memory.Allocator, rows, total int, uniqueness float64, seed, rank uint64, side uint64) arrow.Table {
	rng := rand.New(rand.NewPCG(seed^side<<32, rank))
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.PrimitiveTypes.Int64},
		{Name: "v", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	span := max(int64(float64(total)*uniqueness), 1)
	kb, vb := array.NewInt64Builder(mem), array.NewInt64Builder(mem)
	defer kb.Release()
	defer vb.Release()
	kb.Reserve(rows)
	vb.Reserve(rows)
	for range rows {
		kb.UnsafeAppend(rng.Int64N(span))
		vb.UnsafeAppend(rng.Int64())
	}
	k, v := kb.NewArray(), vb.NewArray()
	defer k.Release()
	defer v.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{k, v}, int64(rows))
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// shuffleReps is the least number of times the exchange alone is timed. One
// exchange of the default table takes well under a second but swings with
// the scheduler and the garbage collector from run to run, so it gets more
// runs than the join: the report gives the best and the median.
const shuffleReps = 10

// runWorker is one rank of a benchmark job.
func runWorker(args workerArgs) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	// collective.Join, in two steps so that the ceiling is measured on the
	// communicator's own links before it takes them over.
	mesh, err := rendezvous.Join(ctx, args.Rendezvous, args.Job, args.World, args.Secret, rendezvous.WithRank(args.Rank))
	if err != nil {
		return err
	}
	setup := time.Since(start)
	var ceiling [2][]rawSample // cold, hot
	if args.World > 1 && args.CeilingBytes > 0 {
		for range max(args.Reps, 3) {
			for i, span := range []int{coldSpan, hotSpan} {
				s, err := rawAlltoall(mesh.Conns(), args.CeilingBytes, span)
				if err != nil {
					mesh.Close()
					return fmt.Errorf("loopback ceiling: %w", err)
				}
				ceiling[i] = append(ceiling[i], s)
			}
		}
		// The measurement leaves hundreds of MiB of garbage and a heap goal
		// to match; without this the first timed runs paid for collecting
		// and returning it (the join's partition phase ran 3-5x slower).
		debug.FreeOSMemory()
	}
	comm, err := collective.FromMesh(mesh, collective.WithChecksum(!args.NoChecksum))
	if err != nil {
		mesh.Close()
		return err
	}
	defer comm.Close()

	start = time.Now()
	mem := memory.DefaultAllocator
	lt := cylonTable(mem, args.Rows, args.Total, args.Uniqueness, args.Seed, uint64(args.Rank), 1)
	rt := cylonTable(mem, args.Rows, args.Total, args.Uniqueness, args.Seed, uint64(args.Rank), 2)
	prof := &frame.Profile{}
	opts := []frame.Option{frame.WithProfile(prof)}
	if args.Par > 0 {
		opts = append(opts, frame.WithParallelism(args.Par))
	}
	left, err := frame.New(comm, lt, opts...)
	lt.Release()
	if err != nil {
		return err
	}
	defer left.Release()
	right, err := frame.New(comm, rt, opts...)
	rt.Release()
	if err != nil {
		return err
	}
	defer right.Release()
	gen := time.Since(start)
	if args.DataDir != "" {
		if _, err := left.WriteParquet(ctx, filepath.Join(args.DataDir, "left-{rank}.parquet")); err != nil {
			return err
		}
		if _, err := right.WriteParquet(ctx, filepath.Join(args.DataDir, "right-{rank}.parquet")); err != nil {
			return err
		}
	}

	res := workerResult{World: args.World, Rows: args.Rows, Total: args.Total, Setup: setup, Gen: gen}
	for i, dst := range []*[][]rawSample{&res.Ceiling, &res.CeilingHot} {
		for _, s := range ceiling[i] {
			b, err := json.Marshal(s)
			if err != nil {
				return err
			}
			all, err := comm.Gather(ctx, 0, b)
			if err != nil {
				return err
			}
			if all == nil {
				continue
			}
			ranks := make([]rawSample, len(all))
			for r, b := range all {
				if err := json.Unmarshal(b, &ranks[r]); err != nil {
					return fmt.Errorf("rank %d: %w", r, err)
				}
			}
			*dst = append(*dst, ranks)
		}
	}
	if args.CPUProfile != "" {
		if err := os.MkdirAll(args.CPUProfile, 0o755); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(args.CPUProfile, fmt.Sprintf("rank-%d-of-%d.prof", args.Rank, args.World)))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	run := func(op func() (*frame.Frame, error)) (phaseTimes, error) {
		if err := comm.Barrier(ctx); err != nil {
			return phaseTimes{}, err
		}
		prof.Reset()
		reset := resetPeakRSS()
		t0, c0 := time.Now(), cpuTime()
		out, err := op()
		if err != nil {
			return phaseTimes{}, err
		}
		if err := comm.Barrier(ctx); err != nil {
			out.Release()
			return phaseTimes{}, err
		}
		pt := phaseTimes{Total: time.Since(t0), CPU: cpuTime() - c0, MaxRSS: runPeak(reset)}
		for _, ph := range prof.Phases() {
			switch ph.Name {
			case "partition":
				pt.Partition += ph.Duration
			case "exchange":
				pt.Exchange += ph.Duration
				pt.Bytes += ph.Bytes
			default:
				pt.Local += ph.Duration
			}
		}
		n, err := out.Count(ctx)
		out.Release()
		pt.OutRows = n
		return pt, err
	}
	gather := func(pt phaseTimes) ([]phaseTimes, error) {
		b, err := json.Marshal(pt)
		if err != nil {
			return nil, err
		}
		all, err := comm.Gather(ctx, 0, b)
		if err != nil || all == nil {
			return nil, err
		}
		out := make([]phaseTimes, len(all))
		for r, b := range all {
			if err := json.Unmarshal(b, &out[r]); err != nil {
				return nil, fmt.Errorf("rank %d: %w", r, err)
			}
		}
		return out, nil
	}
	// The exchange alone: partition first, then time AlltoallTables from a
	// common start (in a join, the exchange phase of the faster rank also
	// waits for the slower one to finish partitioning).
	if args.World > 1 {
		parts, err := arrowio.HashPartition(ctx, left.Table(), []string{"k"}, args.World)
		if err != nil {
			return err
		}
		var bytes int64
		for r, p := range parts {
			if r != args.Rank {
				bytes += arrowBytes(p)
			}
		}
		for range max(args.Reps, shuffleReps) {
			if err := comm.Barrier(ctx); err != nil {
				return err
			}
			reset := resetPeakRSS()
			t0, c0 := time.Now(), cpuTime()
			recv, err := arrowio.AlltoallTables(ctx, comm, parts)
			if err != nil {
				return fmt.Errorf("shuffle: %w", err)
			}
			pt := phaseTimes{Exchange: time.Since(t0), CPU: cpuTime() - c0, Bytes: bytes, MaxRSS: runPeak(reset)}
			pt.Total = pt.Exchange
			for _, t := range recv {
				pt.OutRows += t.NumRows()
				t.Release()
			}
			all, err := gather(pt)
			if err != nil {
				return err
			}
			res.Shuffle = append(res.Shuffle, all)
		}
		for _, p := range parts {
			p.Release()
		}
	}
	for range args.Reps {
		if !args.Join {
			break
		}
		pt, err := run(func() (*frame.Frame, error) { return left.Join(ctx, right, frame.Inner, frame.On("k")) })
		if err != nil {
			return fmt.Errorf("join: %w", err)
		}
		all, err := gather(pt)
		if err != nil {
			return err
		}
		res.Join = append(res.Join, all)
	}
	if args.GroupBy {
		for range args.Reps {
			pt, err := run(func() (*frame.Frame, error) {
				return left.GroupBy("k").Agg(ctx, frame.Sum("v"), frame.CountRows())
			})
			if err != nil {
				return fmt.Errorf("groupby: %w", err)
			}
			all, err := gather(pt)
			if err != nil {
				return err
			}
			res.GroupBy = append(res.GroupBy, all)
		}
	}
	// No rank closes its links while another still waits on them.
	if err := comm.Barrier(ctx); err != nil {
		return err
	}
	if args.Rank == 0 {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	return nil
}

// arrowBytes is the size of a table's Arrow buffers.
func arrowBytes(t arrow.Table) int64 {
	var n int64
	for i := range int(t.NumCols()) {
		for _, a := range t.Column(i).Data().Chunks() {
			n += int64(a.Data().SizeInBytes())
		}
	}
	return n
}
