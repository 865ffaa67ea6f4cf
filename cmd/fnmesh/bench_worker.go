package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/fnmesh/fnmesh/collective"
	"github.com/fnmesh/fnmesh/internal/osu"
	"github.com/fnmesh/fnmesh/punch"
	"github.com/fnmesh/fnmesh/rendezvous"
)

// benchWorker is one rank of a bench run: it joins the job through the
// parent's rendezvous server, measures, and (rank 0) streams the plan and
// every result to the parent on fd 3.
func benchWorker(ctx context.Context, o *benchOptions, index string, stderr io.Writer) int {
	if err := benchWork(ctx, o, index); err != nil {
		// Stopped by the parent (or by the terminal's interrupt, which
		// the parent gets too): it says why, once.
		if ctx.Err() == nil {
			fmt.Fprintf(stderr, "%v\n", err)
		}
		return 1
	}
	return 0
}

func benchWork(ctx context.Context, o *benchOptions, index string) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	events := os.NewFile(benchEventsFD, "events")
	if events == nil {
		return errors.New("no event pipe on fd 3: fnmesh bench starts its own workers; run it without " + benchEnvWorker)
	}
	defer events.Close()
	secret, err := hex.DecodeString(os.Getenv(benchEnvSecret))
	if err != nil || len(secret) == 0 {
		return fmt.Errorf("worker %s: bad or missing %s", index, benchEnvSecret)
	}
	opts, settings, err := benchCommOptions(o)
	if err != nil {
		return err
	}
	rank, err := strconv.Atoi(index)
	if err != nil || rank < 0 || rank >= o.np {
		return fmt.Errorf("worker %q: %s must be a rank below -np %d", index, benchEnvWorker, o.np)
	}
	// Worker i is rank i, so that the parent's messages and the ranks agree.
	opts = append(opts, collective.WithJoinOptions(rendezvous.WithRank(rank)))
	comm, err := collective.Join(ctx, os.Getenv(benchEnvAddr), os.Getenv(benchEnvJob), o.np, secret, opts...)
	if err != nil {
		return fmt.Errorf("worker %d: %w", rank, err)
	}
	defer comm.Close()

	if o.profile != "" {
		stop, err := startCPUProfile(o.profile, rank)
		if err != nil {
			return err
		}
		defer stop()
	}

	benches := benchmarks(comm, o)
	steps := osu.Steps(o.cfg, comm.Size(), benches)
	enc := json.NewEncoder(events)
	if rank == 0 {
		plan := make([]benchStep, len(steps))
		for i, s := range steps {
			plan[i] = benchStep{Op: s.Bench.Name, Size: s.Size}
		}
		if err := enc.Encode(benchEvent{Plan: plan, Config: settings}); err != nil {
			return fmt.Errorf("rank 0: reporting to the parent: %w", err)
		}
	} else {
		events.Close()
	}
	var reportErr error
	_, err = osu.Run(ctx, comm, o.cfg, steps, func(r osu.Result) {
		if err := enc.Encode(benchEvent{Result: &r}); err != nil && reportErr == nil {
			reportErr = fmt.Errorf("rank 0: reporting to the parent: %w", err)
		}
	})
	if err != nil {
		return err
	}
	return reportErr
}

// benchCommOptions turns the flags into communicator options, and lists
// the settings that differ from the defaults for the report.
func benchCommOptions(o *benchOptions) ([]collective.Option, []string, error) {
	var opts []collective.Option
	var settings []string
	if !o.checksum {
		opts = append(opts, collective.WithChecksum(false))
		settings = append(settings, "checksum=off")
	}
	opts = append(opts, collective.WithJoinOptions(rendezvous.WithCongestionControl(o.cc)))
	if o.cc != punch.DefaultCongestionControl {
		settings = append(settings, "congestion="+o.cc)
	}
	if o.spin >= 0 {
		opts = append(opts, collective.WithSpin(o.spin))
		settings = append(settings, "spin="+o.spin.String())
	}
	for _, spec := range o.algos {
		a, err := parseAlgorithm(spec)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, collective.WithAlgorithm(a))
		settings = append(settings, "algorithm="+a.String())
	}
	if n := o.workerProcs(); n > 0 {
		settings = append(settings, "GOMAXPROCS="+strconv.Itoa(n))
	}
	if o.alloc {
		settings = append(settings, "api=allocating")
	}
	return opts, settings, nil
}

// parseAlgorithm reads "op=name", e.g. "allreduce=ring", into the algorithm
// collective calls op/name.
func parseAlgorithm(spec string) (collective.Algorithm, error) {
	op, name, _ := strings.Cut(spec, "=")
	var have []string
	for c := collective.OpBarrier; c <= collective.OpReduceScatter; c++ {
		for _, a := range collective.Algorithms(c) {
			if a.String() == op+"/"+name {
				return a, nil
			}
			if c.String() == op {
				have = append(have, strings.TrimPrefix(a.String(), op+"/"))
			}
		}
	}
	if len(have) == 0 {
		return 0, fmt.Errorf("-algo %q: no collective %q with a choice of algorithm", spec, op)
	}
	return 0, fmt.Errorf("-algo %q: %s has no algorithm %q (have %s)", spec, op, name, strings.Join(have, ", "))
}

// startCPUProfile profiles this worker into dir/cpu-rank<N>.pprof until stop.
func startCPUProfile(dir string, rank int) (stop func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rank %d: cpu profile: %w", rank, err)
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("cpu-rank%d.pprof", rank)))
	if err != nil {
		return nil, fmt.Errorf("rank %d: cpu profile: %w", rank, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("rank %d: cpu profile: %w", rank, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
