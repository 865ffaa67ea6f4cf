//go:build unix

// Command frame runs Cylon's distributed join benchmark (and a group-by on
// the same data) with fnmesh's frame package: worker processes on this
// machine, joined through a rendezvous server over loopback, each holding two
// tables of two int64 columns of random integers with key uniqueness 0.9.
//
// Weak scaling keeps the rows per worker fixed (Cylon's 9.1 million by
// default); strong scaling keeps the total fixed. For each worker count it
// reports the time of each phase (partition, exchange, local join), rows per
// second and the exchange throughput, compares the exchange with the
// loopback TCP ceiling it measures between the same workers on the same
// links (a raw all-to-all just before the benchmark), and draws the scaling
// as a PNG.
//
//	go run ./bench/frame -workers 1,2 -rows 9100000
//	go run ./bench/frame -scaling strong -workers 1,2,4 -rows 18200000
//
// bench/frame/run.sh runs it beside the same join in DuckDB.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fnmesh/fnmesh/internal/outfile"
	"github.com/fnmesh/fnmesh/internal/proc"
	"github.com/fnmesh/fnmesh/rendezvous"
)

const workerEnv = "FNMESH_FRAME_BENCH_WORKER"

func main() {
	if a := os.Getenv(workerEnv); a != "" {
		var args workerArgs
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			log.Fatalf("worker: bad arguments: %v", err)
		}
		if err := runWorker(args); err != nil {
			fmt.Fprintf(os.Stderr, "worker %d: %v\n", args.Rank, err)
			os.Exit(1)
		}
		return
	}
	var (
		workers    = flag.String("workers", "1,2", "comma-separated worker counts")
		rows       = flag.Int("rows", 9_100_000, "rows per table per worker (weak scaling) or in total (strong)")
		scaling    = flag.String("scaling", "weak", "weak (rows per worker fixed) or strong (total fixed)")
		uniqueness = flag.Float64("uniqueness", 0.9, "distinct keys as a share of the total rows")
		reps       = flag.Int("reps", 3, "timed runs per configuration (the best is reported)")
		seed       = flag.Uint64("seed", 1, "data seed")
		join       = flag.Bool("join", true, "time the join (-join=false: the shuffle exchange, and the group-by if asked, only)")
		groupby    = flag.Bool("groupby", true, "also time a group-by (sum, count) on the left table")
		dataDir    = flag.String("data", "", "write the inputs of the largest run as Parquet here (for bench/duckdb)")
		jsonOut    = flag.String("json", "", "write the results as JSON to this file")
		plotOut    = flag.String("plot", "", "draw the scaling as a PNG to this file")
		ceilingMB  = flag.Int("ceiling-mb", 1024, "MiB each rank sends each other rank to measure the loopback TCP ceiling (0: skip)")
		checksum   = flag.Bool("checksum", true, "CRC32C on every message (collective.WithChecksum); TCP checksums them anyway")
		par        = flag.Int("par", 0, "goroutines per worker for the local kernels (frame.WithParallelism; 0: GOMAXPROCS)")
		cpuProfile = flag.String("cpuprofile", "", "write every worker's CPU profile of the timed runs into this directory")
		cmp        = flag.String("compare", "", "frame.json,duckdb.json: print the comparison of two earlier runs and exit")
		iperf      = flag.Float64("iperf-bps", 0, "with -compare: iperf3's loopback throughput in bits/s")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("framebench: ")
	if flag.NArg() > 0 {
		usageFail(fmt.Errorf("unexpected argument %q", flag.Arg(0)))
	}
	if *cmp != "" {
		files := strings.Split(*cmp, ",")
		if len(files) != 2 || files[0] == "" || files[1] == "" {
			usageFail(fmt.Errorf("-compare %q: want frame.json,duckdb.json", *cmp))
		}
		if err := compare(files[0], files[1], *iperf/8); err != nil {
			log.Fatal(err)
		}
		return
	}
	counts, err := parseCounts(*workers)
	if err != nil {
		usageFail(err)
	}
	if err := checkFlags(counts, *rows, *scaling, *uniqueness, *reps, *par, *ceilingMB); err != nil {
		usageFail(err)
	}
	// The run takes minutes: find out now, not after it, that its results
	// could not be written.
	for _, out := range [][2]string{{"-json", *jsonOut}, {"-plot", *plotOut}} {
		if err := outfile.CheckWritable(out[1]); err != nil {
			log.Fatalf("%s: %v", out[0], err)
		}
	}
	// Interrupted, the driver stops its workers (exec.CommandContext) before
	// it exits; killed, it takes them with it (proc.DieWithParent).
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	rep := report{Scaling: *scaling, Uniqueness: *uniqueness, Date: time.Now().UTC().Format(time.RFC3339)}
	if *ceilingMB > 0 {
		rep.Ceiling = measureCeiling(int64(*ceilingMB) << 20)
		fmt.Printf("loopback TCP in this process (Go, one connection, a reference): one way %.2f GB/s; both ways at once %.2f GB/s per direction\n",
			rep.Ceiling.OneWay/1e9, rep.Ceiling.BothWays/1e9)
	}
	srv, addr, stop, err := startRendezvous(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	_ = srv

	maxW := counts[len(counts)-1]
	for _, w := range counts {
		per, total := *rows, *rows*w
		if *scaling == "strong" {
			per, total = *rows/w, *rows
		}
		dd := ""
		if w == maxW {
			dd = *dataDir
		}
		res, err := runJob(ctx, addr, w, workerArgs{
			Rows: per, Total: total, Uniqueness: *uniqueness, Seed: *seed, Reps: *reps, Join: *join, GroupBy: *groupby, DataDir: dd,
			CPUProfile: *cpuProfile, Par: *par, NoChecksum: !*checksum, CeilingBytes: int64(*ceilingMB) << 20,
		})
		if err != nil {
			if ctx.Err() != nil {
				log.Fatalf("%d workers: interrupted: %v", w, err)
			}
			log.Fatalf("%d workers: %v", w, err)
		}
		rep.Runs = append(rep.Runs, summarize(res, rep.Ceiling))
		printRun(rep.Runs[len(rep.Runs)-1])
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			log.Fatalf("-json: %v", err)
		}
		if err := outfile.WriteFile(*jsonOut, b); err != nil {
			log.Fatal(err)
		}
	}
	if *plotOut != "" {
		if err := drawPlot(rep, *plotOut); err != nil {
			log.Fatal(err)
		}
		fmt.Println("plot:", *plotOut)
	}
}

// usageFail reports a command line that cannot run and exits 2.
func usageFail(err error) {
	fmt.Fprintf(os.Stderr, "framebench: %v\nRun framebench -h for the flags.\n", err)
	os.Exit(2)
}

// maxWorkers bounds -workers: each worker is a process on this machine.
const maxWorkers = 256

// checkFlags rejects settings that would make no sense as a benchmark: more
// than maxWorkers workers, rows or reps below one, a key uniqueness that is not a
// positive number.
func checkFlags(counts []int, rows int, scaling string, uniqueness float64, reps, par, ceilingMB int) error {
	switch {
	case counts[len(counts)-1] > maxWorkers:
		return fmt.Errorf("-workers %d: at most %d worker processes", counts[len(counts)-1], maxWorkers)
	case scaling != "weak" && scaling != "strong":
		return fmt.Errorf("-scaling must be weak or strong, not %q", scaling)
	case rows < 1:
		return fmt.Errorf("-rows %d: want at least 1", rows)
	case scaling == "strong" && rows < counts[len(counts)-1]:
		return fmt.Errorf("-rows %d: strong scaling wants at least one row per worker (%d workers)", rows, counts[len(counts)-1])
	case !(uniqueness > 0) || math.IsInf(uniqueness, 0):
		return fmt.Errorf("-uniqueness %v: want a positive number", uniqueness)
	case reps < 1:
		return fmt.Errorf("-reps %d: want at least 1", reps)
	case par < 0:
		return fmt.Errorf("-par %d: want 0 (GOMAXPROCS) or more", par)
	case ceilingMB < 0:
		return fmt.Errorf("-ceiling-mb %d: want 0 (skip) or more", ceilingMB)
	}
	return nil
}

func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-workers %q: %q is not a worker count (1 or more)", s, f)
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return out, nil
}

// startRendezvous runs a rendezvous server on loopback for the workers.
func startRendezvous(ctx context.Context) (*rendezvous.Server, string, func(), error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	srv := rendezvous.NewServer(secret)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln, nil)
	}()
	benchSecret = secret
	return srv, ln.Addr().String(), func() { cancel(); <-done }, nil
}

var benchSecret []byte

var jobSeq int

// workerFailGrace is how long the other workers of a job have to end on
// their own once one has failed before they are stopped.
const workerFailGrace = 5 * time.Second

// runJob starts w worker processes (this binary again) and returns rank 0's
// result. The workers are stopped when ctx ends, when one of them could not
// be started, and workerFailGrace after one of them failed.
func runJob(ctx context.Context, addr string, w int, base workerArgs) (*workerResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobSeq++
	job := fmt.Sprintf("frame-bench-%d-%d", os.Getpid(), jobSeq)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		out      []byte
		errs     []error
		stderr   bytes.Buffer
		stopRest *time.Timer
	)
	start := func(r int) error {
		args := base
		args.Rendezvous, args.Job, args.Secret, args.World, args.Rank = addr, job, benchSecret, w, r
		a, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("worker %d: arguments: %w", r, err)
		}
		cmd := exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), workerEnv+"="+string(a))
		proc.DieWithParent(cmd)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return fmt.Errorf("worker %d: %w", r, err)
		}
		cmd.Stderr = &lockedWriter{mu: &mu, w: &stderr}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting worker %d: %w", r, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := io.ReadAll(bufio.NewReader(stdout))
			err := cmd.Wait()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("worker %d: %w", r, err))
				if stopRest == nil {
					stopRest = time.AfterFunc(workerFailGrace, cancel)
				}
			}
			if r == 0 {
				out = b
			}
		}()
		return nil
	}
	for r := range w {
		if err := start(r); err != nil {
			cancel() // the workers started so far
			wg.Wait()
			return nil, err
		}
	}
	wg.Wait()
	if stopRest != nil {
		stopRest.Stop()
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%v\n%s", errs, stderr.String())
	}
	var res workerResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("rank 0 printed %q: %w", out, err)
	}
	return &res, nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
