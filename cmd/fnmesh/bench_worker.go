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
	"github.com/fnmesh/fnmesh/rendezvous"
)

// benchWorker is one rank of a bench run: it joins the job through the
// parent's rendezvous server, measures, and (rank 0) streams the plan and
// every result to the parent on fd 3.
func benchWorker(ctx context.Context, o *benchOptions, index string, stderr io.Writer) int {
	if err := benchWork(ctx, o, index); err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
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
	comm, err := benchJoin(ctx, os.Getenv(benchEnvAddr), os.Getenv(benchEnvJob), o.np, secret, opts...)
	if err != nil {
		return fmt.Errorf("worker %s: %w", index, err)
	}
	defer comm.Close()
	rank := comm.Rank()

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
	if reportErr != nil {
		return reportErr
	}
	benchFinish(ctx, comm)
	return nil
}

// benchByeTag is the tag of rank 0's end-of-run message.
const benchByeTag = 0x05af

// benchFinish ends a run that succeeded on this rank without failing anyone
// else's last step: a rank that closes its links poisons the communicator
// of every rank still in a call (collective treats any closed link as a
// failure), so the other ranks stay until rank 0, the last to need them,
// has every result and says goodbye. Errors here change nothing: this
// rank's part is done.
func benchFinish(ctx context.Context, comm *collective.Comm) {
	if comm.Rank() != 0 {
		_, _ = comm.Recv(ctx, 0, benchByeTag)
		return
	}
	for r := 1; r < comm.Size(); r++ {
		_ = comm.Send(ctx, r, benchByeTag, nil)
	}
}

// benchJoin joins the job through the rendezvous server and makes the
// communicator over the links (collective.Join's steps).
func benchJoin(ctx context.Context, addr, job string, np int, secret []byte, opts ...collective.Option) (*collective.Comm, error) {
	mesh, err := rendezvous.Join(ctx, addr, job, np, secret)
	if err != nil {
		return nil, err
	}
	comm, err := collective.New(mesh.Rank, mesh.Conns(), opts...)
	if err != nil {
		mesh.Close()
		return nil, fmt.Errorf("rank %d: %w", mesh.Rank, err)
	}
	return comm, nil
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
	for _, spec := range o.algos {
		a, err := parseAlgorithm(spec)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, collective.WithAlgorithm(a))
		settings = append(settings, "algorithm="+a.String())
	}
	if o.procs > 0 {
		settings = append(settings, "GOMAXPROCS="+strconv.Itoa(o.procs))
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
