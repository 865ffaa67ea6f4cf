package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/fnmesh/fnmesh/internal/osu"
	"github.com/fnmesh/fnmesh/internal/outfile"
	"github.com/fnmesh/fnmesh/internal/proc"
	"github.com/fnmesh/fnmesh/rendezvous"
)

func init() {
	commands["bench"] = command{
		summary: "benchmark the collectives on local processes (OSU method); 'bench compare' for ratios",
		run:     runBench,
	}
}

// The parent hands its workers what they need in the environment (the
// secret stays off the command line), and reads rank 0's events from fd 3.
const (
	benchEnvWorker = "FNMESH_BENCH_WORKER" // the worker's index, 0..np-1
	benchEnvAddr   = "FNMESH_BENCH_RENDEZVOUS"
	benchEnvJob    = "FNMESH_BENCH_JOB"
	benchEnvSecret = "FNMESH_BENCH_SECRET" // hex
	benchEventsFD  = 3

	// benchFailGrace is how long the other workers have to end on their
	// own once one has failed.
	benchFailGrace = 5 * time.Second
)

// benchEvent is one line of the stream rank 0 writes to the parent.
type benchEvent struct {
	Plan   []benchStep `json:"plan,omitempty"`   // first: every step of the run
	Result *osu.Result `json:"result,omitempty"` // then one per step, as measured
	Config []string    `json:"config,omitempty"` // the communicator's settings
}

type benchStep struct {
	Op   string `json:"op"`
	Size int    `json:"size"`
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "compare" {
		return runBenchCompare(ctx, args[1:], stdout, stderr)
	}
	o, err := parseBenchFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "fnmesh bench: %v\n", err)
		if errors.As(err, new(flagError)) {
			flagHint(stderr, "fnmesh bench")
		}
		return 2
	}
	if idx := os.Getenv(benchEnvWorker); idx != "" {
		return benchWorker(ctx, o, idx, stderr)
	}
	if err := benchParent(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "fnmesh bench: %v\n", err)
		return 1
	}
	return 0
}

// benchParent starts a rendezvous server on loopback and o.np workers (this
// binary again), follows rank 0's progress, and reports its results.
func benchParent(ctx context.Context, o *benchOptions, stdout, stderr io.Writer) error {
	// A run can take half an hour: find out now, not after it, that a
	// result could not be written.
	if err := checkBenchOutputs(o); err != nil {
		return err
	}
	started := time.Now()
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("timed out after %s (-timeout)", o.timeout))
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	secret := make([]byte, 32)
	jobID := make([]byte, 6)
	rand.Read(secret)
	rand.Read(jobID)
	job := "bench-" + hex.EncodeToString(jobID)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("rendezvous server: %w", err)
	}
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() { srvDone <- rendezvous.NewServer(secret).Serve(srvCtx, ln, nil) }()
	defer func() {
		stopSrv()
		ln.Close()
		<-srvDone
	}()

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to start workers: %w", err)
	}
	out := &lockedWriter{w: stderr}
	events := make(chan benchEvent)
	var readers sync.WaitGroup
	workers := make([]*exec.Cmd, 0, o.np)
	var startErr error
	for i := range o.np {
		r, w, err := os.Pipe()
		if err != nil {
			startErr = fmt.Errorf("worker %d: %w", i, err)
			break
		}
		cmd := exec.CommandContext(ctx, exe, append([]string{"bench"}, o.args...)...)
		cmd.Env = append(os.Environ(),
			benchEnvWorker+"="+strconv.Itoa(i), benchEnvAddr+"="+ln.Addr().String(),
			benchEnvJob+"="+job, benchEnvSecret+"="+hex.EncodeToString(secret))
		if n := o.workerProcs(); n > 0 {
			cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(n))
		}
		cmd.ExtraFiles = []*os.File{w} // fd 3
		// Once the run is stopped, what the workers say is its
		// consequence ("peer failed: rank 2: interrupt signal received"):
		// the bench says why it stopped, once.
		cmd.Stdout = &prefixWriter{out: out, prefix: fmt.Sprintf("worker %d: ", i), drop: func() bool { return ctx.Err() != nil }}
		cmd.Stderr = cmd.Stdout
		// Stopped (interrupted, timed out, another worker failed), a
		// worker is asked to stop first, so that it writes its
		// -cpuprofile, and killed WaitDelay later if it has not.
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 5 * time.Second
		proc.DieWithParent(cmd)
		err = cmd.Start()
		w.Close()
		if err != nil {
			r.Close()
			startErr = fmt.Errorf("starting worker %d: %w", i, err)
			break
		}
		workers = append(workers, cmd)
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer r.Close()
			readBenchEvents(ctx, r, events)
		}()
	}
	if startErr != nil {
		cancel(startErr)
		for _, cmd := range workers {
			cmd.Wait()
		}
		readers.Wait()
		return startErr
	}

	// Wait for every worker. A rank that fails makes the others' calls fail
	// too, so they end on their own and each says why; those still running
	// a grace period after the first failure are stopped (and those
	// stopped that way are not failures of their own).
	var failMu sync.Mutex
	var failures []error
	var stopOthers *time.Timer
	var waiters sync.WaitGroup
	for i, cmd := range workers {
		waiters.Add(1)
		go func() {
			defer waiters.Done()
			err := cmd.Wait()
			if err == nil || ctx.Err() != nil {
				return
			}
			err = fmt.Errorf("worker %d (pid %d): %w", i, cmd.Process.Pid, err)
			failMu.Lock()
			defer failMu.Unlock()
			failures = append(failures, err)
			if stopOthers == nil {
				stopOthers = time.AfterFunc(benchFailGrace, func() { cancel(err) })
			}
		}()
	}
	go func() {
		readers.Wait()
		close(events)
	}()

	var (
		plan    []benchStep
		results []osu.Result
		config  []string
		bar     *progressbar.ProgressBar
	)
	for ev := range events {
		switch {
		case ev.Plan != nil:
			plan, config = ev.Plan, ev.Config
			if o.progress {
				out.do(func() {
					bar = newBenchBar(stderr, len(plan))
					describeStep(bar, o.np, plan, 0)
				})
			}
		case ev.Result != nil:
			results = append(results, *ev.Result)
			if bar != nil {
				out.do(func() {
					describeStep(bar, o.np, plan, len(results))
					bar.Add(1)
				})
			}
		}
	}
	waiters.Wait()
	if stopOthers != nil {
		stopOthers.Stop()
	}
	if bar != nil {
		// Cleared, not finished: a run cut short would flash a full bar.
		out.do(func() { bar.Clear() })
	}
	elapsed := time.Since(started)

	if len(results) > 0 {
		fmt.Fprintf(stdout, "fnmesh bench: np=%d on %d CPUs (load %s), %s\n\n", o.np, runtime.NumCPU(), loadAverage(), elapsed.Round(time.Millisecond))
		if err := osu.WriteTable(stdout, results); err != nil {
			return err
		}
	}
	var errs []error
	if len(failures) > 0 {
		errs = append(errs, failures...)
	} else if ctx.Err() != nil {
		// A timeout or an interrupt.
		errs = append(errs, fmt.Errorf("stopped: %w", context.Cause(ctx)))
	} else if len(results) != len(plan) {
		errs = append(errs, fmt.Errorf("rank 0 reported %d of %d results", len(results), len(plan)))
	}
	if len(results) > 0 {
		rep := osu.Report{Tool: "fnmesh", Command: "fnmesh bench " + strings.Join(o.args, " "),
			CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Started: started.UTC(),
			Elapsed: elapsed.Seconds(), Config: o.cfg, Options: config, Results: results,
			Planned: len(plan), Partial: len(results) < len(plan)}
		if err := errors.Join(errs...); rep.Partial && err != nil {
			rep.Stopped = err.Error()
		}
		rep.Host, _ = os.Hostname()
		werr := writeBenchOutputs(o, rep)
		errs = append(errs, werr)
		if outs := benchOutputs(o); werr == nil && len(outs) > 0 && len(results) < len(plan) {
			// The files look like any other run's: say they are not.
			var names []string
			for _, f := range outs {
				names = append(names, f[1])
			}
			errs = append(errs, fmt.Errorf("%s: partial, %d of %d results", strings.Join(names, ", "), len(results), len(plan)))
		}
	}
	return errors.Join(errs...)
}

// benchOutputs lists the files o asks for, each with what it is.
func benchOutputs(o *benchOptions) [][2]string {
	var outs [][2]string
	for _, f := range [][2]string{{"-csv", o.csv}, {"-json", o.json}, {"-png", o.png}} {
		if f[1] != "" {
			outs = append(outs, f)
		}
	}
	return outs
}

// checkBenchOutputs checks that each output file can be written.
func checkBenchOutputs(o *benchOptions) error {
	var errs []error
	for _, f := range benchOutputs(o) {
		if err := outfile.CheckWritable(f[1]); err != nil {
			errs = append(errs, fmt.Errorf("%s %w", f[0], err))
		}
	}
	return errors.Join(errs...)
}

// writeBenchOutputs writes the CSV, JSON and PNG files asked for.
func writeBenchOutputs(o *benchOptions, rep osu.Report) error {
	var errs []error
	for _, f := range benchOutputs(o) {
		var fn func(io.Writer) error
		switch f[0] {
		case "-csv":
			fn = func(w io.Writer) error { return osu.WriteCSV(w, rep.Results) }
		case "-json":
			fn = func(w io.Writer) error { return osu.WriteJSON(w, rep) }
		case "-png":
			fn = func(w io.Writer) error { return osu.WritePNG(w, fmt.Sprintf("fnmesh np=%d", o.np), rep.Results) }
		}
		if err := outfile.WriteAtomic(f[1], fn); err != nil {
			errs = append(errs, fmt.Errorf("writing %s: %w", f[1], err))
		}
	}
	return errors.Join(errs...)
}

// readBenchEvents decodes JSON lines from a worker until EOF.
func readBenchEvents(ctx context.Context, r io.Reader, events chan<- benchEvent) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev benchEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		select {
		case events <- ev:
		case <-ctx.Done():
			return
		}
	}
}

func newBenchBar(w io.Writer, steps int) *progressbar.ProgressBar {
	return progressbar.NewOptions(steps,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
	)
}

// describeStep names the step being measured next on the bar.
func describeStep(bar *progressbar.ProgressBar, np int, plan []benchStep, next int) {
	if next < len(plan) {
		bar.Describe(fmt.Sprintf("np=%d %-9s %5s", np, plan[next].Op, osu.FormatSize(plan[next].Size)))
	}
}

// loadAverage is the 1-minute load average, or "?" where unknown.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// lockedWriter serializes writes (worker output, progress bar) to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) do(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn()
}

// prefixWriter writes whole lines to out, each after prefix; while drop
// (if set) reports true, it drops them.
type prefixWriter struct {
	out    io.Writer
	prefix string
	drop   func() bool
	mu     sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			break
		}
		if p.drop == nil || !p.drop() {
			if _, err := io.WriteString(p.out, p.prefix+string(p.buf[:i+1])); err != nil {
				return len(b), err
			}
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
