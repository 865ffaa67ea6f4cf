package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/fnmesh/fnmesh/internal/osu"
	"github.com/fnmesh/fnmesh/punch"
)

// benchOps are the operations fnmesh bench measures, in the order it runs them.
var benchOps = []string{"barrier", "bcast", "allgather", "alltoallv", "allreduce", "latency", "bw"}

// benchOptions are the settings of a bench run, shared by the parent and
// its workers (which parse the same arguments).
type benchOptions struct {
	np       int
	ops      []string
	cfg      osu.Config
	timeout  time.Duration
	check    bool          // verify each collective's result once per size
	alloc    bool          // measure the allocating forms instead of the Into ones
	checksum bool          // payload CRC32C on the wire (collective's default: on)
	algos    []string      // forced algorithms, "op=name"
	spin     time.Duration // collective.WithSpin; negative: the default
	cc       string        // the links' TCP congestion control (rendezvous.WithCongestionControl)
	procs    int           // GOMAXPROCS of each worker (-1: max(1, CPUs/np); 0: Go's default)
	profile  string        // directory for per-rank CPU profiles
	csv      string
	json     string
	png      string
	progress bool
	args     []string // the arguments as given, passed on to workers
}

// workerProcs is the GOMAXPROCS each worker runs with, 0 for Go's default.
func (o *benchOptions) workerProcs() int {
	if o.procs >= 0 {
		return o.procs
	}
	return max(1, runtime.NumCPU()/o.np)
}

// sizeFlag is a flag.Value for a byte count in OSU's binary units (8K, 16M).
type sizeFlag struct{ p *int }

func (s sizeFlag) Set(v string) error {
	n, err := osu.ParseSize(v)
	if err != nil {
		return err
	}
	*s.p = n
	return nil
}

func (s sizeFlag) String() string {
	if s.p == nil {
		return ""
	}
	return osu.FormatSize(*s.p)
}

func parseBenchFlags(args []string, stderr io.Writer) (*benchOptions, error) {
	o := &benchOptions{cfg: osu.DefaultConfig(), args: args}
	fs := flag.NewFlagSet("fnmesh bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: fnmesh bench [flags]
       fnmesh bench compare [flags] ours.csv theirs.csv

Measures fnmesh's collectives the way the OSU micro-benchmarks do, with -np
local processes joined over loopback TCP through an in-process rendezvous
server, and prints a table (avg/min/max over ranks of each rank's average
call time, in microseconds). bench/mpi/run.sh runs the same with Open MPI.

flags:
`)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.np, "np", 2, "number of ranks (local worker processes)")
	ops := fs.String("ops", strings.Join(benchOps, ","), "operations to measure, comma-separated: "+strings.Join(benchOps, ", "))
	fs.Var(sizeFlag{&o.cfg.MinSize}, "min", "smallest message size")
	fs.Var(sizeFlag{&o.cfg.MaxSize}, "max", "largest message size (sizes double from -min)")
	fs.Var(sizeFlag{&o.cfg.LargeSize}, "large", "largest size that counts as small for the iteration counts")
	fs.IntVar(&o.cfg.Iterations, "iters", o.cfg.Iterations, "timed calls per size up to -large")
	fs.IntVar(&o.cfg.Warmup, "warmup", o.cfg.Warmup, "untimed warm-up calls per size up to -large")
	fs.IntVar(&o.cfg.LargeIterations, "iters-large", o.cfg.LargeIterations, "timed calls per size above -large")
	fs.IntVar(&o.cfg.LargeWarmup, "warmup-large", o.cfg.LargeWarmup, "warm-up calls per size above -large")
	fs.IntVar(&o.cfg.Window, "window", o.cfg.Window, "bw: messages in flight per acknowledgement")
	fs.IntVar(&o.cfg.BWLargeIterations, "bw-iters-large", o.cfg.BWLargeIterations, "bw: timed windows per size above -large")
	fs.IntVar(&o.cfg.BWLargeWarmup, "bw-warmup-large", o.cfg.BWLargeWarmup, "bw: warm-up windows per size above -large")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	fs.BoolVar(&o.check, "check", true, "verify each collective's result once per size (outside the timed part)")
	fs.BoolVar(&o.alloc, "alloc", false, "measure the forms that return new buffers (Bcast, Allgather, Alltoallv, Allreduce) instead of the MPI-style ones into prepared buffers (BcastInto, AllgatherInto, AlltoallvInto, AllreduceInto)")
	fs.BoolVar(&o.checksum, "checksum", true, "CRC32C of every payload on the wire (the communicator's default)")
	fs.StringVar(&o.cc, "congestion", punch.DefaultCongestionControl, "TCP congestion control of the links (rendezvous.WithCongestionControl; \"\": the system's)")
	fs.DurationVar(&o.spin, "spin", -1, "how long a rank polls a socket before sleeping (collective.WithSpin; negative: the default, collective.DefaultSpin)")
	algo := fs.String("algo", "", "force algorithms, e.g. allgather=ring,allreduce=rabenseifner (default: chosen by size)")
	fs.IntVar(&o.procs, "procs", -1, "GOMAXPROCS of each worker: -1 shares the CPUs out, max(1, CPUs/np), one rank per core as mpirun places them; 0 is Go's default (every CPU per worker)")
	fs.StringVar(&o.profile, "cpuprofile", "", "write each worker's CPU profile to `dir`/cpu-rank<N>.pprof")
	fs.StringVar(&o.csv, "csv", "", "write the results as CSV to `file`")
	fs.StringVar(&o.json, "json", "", "write the results and how they were made as JSON to `file`")
	fs.StringVar(&o.png, "png", "", "plot time and bandwidth against size (log-log) to PNG `file`")
	fs.BoolVar(&o.progress, "progress", false, "show a progress bar on stderr (default: when stderr is a terminal)")
	if err := parseFlags(fs, args, stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			err = flagError{err}
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("-timeout %s: want a positive duration", o.timeout)
	}
	// One file for two outputs: the one written last would replace the
	// other without a word.
	outs := benchOutputs(o)
	for i, a := range outs {
		for _, b := range outs[i+1:] {
			if samePath(a[1], b[1]) {
				return nil, fmt.Errorf("%s and %s name the same file %s", a[0], b[0], b[1])
			}
		}
	}
	// Unless asked either way, a bar only where someone watches: redrawn
	// with carriage returns, it garbles a log file.
	if !flagSet(fs, "progress") {
		o.progress = isTerminal(stderr)
	}
	if o.np < 1 || o.np > 256 {
		return nil, fmt.Errorf("-np %d: want 1 to 256 ranks", o.np)
	}
	for _, op := range strings.Split(*ops, ",") {
		op = strings.TrimSpace(op)
		if !slices.Contains(benchOps, op) {
			return nil, fmt.Errorf("-ops: unknown operation %q (have %s)", op, strings.Join(benchOps, ", "))
		}
		if !slices.Contains(o.ops, op) {
			o.ops = append(o.ops, op)
		}
	}
	if o.np < 2 {
		// The point-to-point measurements need a second rank: named
		// explicitly they are an error, in the default list they are left
		// out.
		explicit := flagSet(fs, "ops")
		p2p := slices.DeleteFunc(slices.Clone(o.ops), func(op string) bool { return op != "latency" && op != "bw" })
		if len(p2p) > 0 && explicit {
			return nil, fmt.Errorf("-ops %s: point-to-point measurements need -np 2 or more", strings.Join(p2p, ","))
		}
		o.ops = slices.DeleteFunc(o.ops, func(op string) bool { return op == "latency" || op == "bw" })
	}
	if *algo != "" {
		for _, a := range strings.Split(*algo, ",") {
			if op, name, ok := strings.Cut(strings.TrimSpace(a), "="); !ok || op == "" || name == "" {
				return nil, fmt.Errorf("-algo %q: want op=algorithm", a)
			}
			// Checked here, not first in every worker once they have
			// started (each said the same, and the run exited 1).
			if _, err := parseAlgorithm(strings.TrimSpace(a)); err != nil {
				return nil, err
			}
			o.algos = append(o.algos, strings.TrimSpace(a))
		}
	}
	// Only one asked for: the default falls back to the system's where a
	// sandbox forbids setting any (as the library documents).
	if flagSet(fs, "congestion") {
		if err := checkCongestion(o.cc); err != nil {
			return nil, err
		}
	}
	if o.procs < -1 {
		return nil, fmt.Errorf("-procs %d: want -1 (CPUs/np), 0 (Go's default) or a count", o.procs)
	}
	if err := o.cfg.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// samePath reports whether paths a and b name the same file, spelled alike
// or not (./r.csv and /dir/r.csv, or two links to one file). A device or a
// pipe (/dev/stdout) takes one output after another, and is not counted.
func samePath(a, b string) bool {
	if fa, err := os.Stat(a); err == nil {
		if fb, err := os.Stat(b); err == nil {
			return fa.Mode().IsRegular() && os.SameFile(fa, fb)
		}
	}
	aa, errA := filepath.Abs(a)
	ab, errB := filepath.Abs(b)
	return errA == nil && errB == nil && aa == ab
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// checkCongestion checks that this system lets a TCP socket use congestion
// control name: the links fall back to the system's quietly, which would
// have the report name an algorithm the run did not use.
func checkCongestion(name string) error {
	if name == "" {
		return nil
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fmt.Errorf("-congestion %q: a socket to try it on: %w", name, err)
	}
	defer ln.Close()
	if err := punch.SetCongestionControl(ln, name); err != nil {
		return fmt.Errorf("-congestion %q: not available here (see /proc/sys/net/ipv4/tcp_available_congestion_control): %w", name, err)
	}
	return nil
}

// flagError is a flag that did not parse: fnmesh bench adds where the flags
// are described.
type flagError struct{ error }

func (e flagError) Unwrap() error { return e.error }
