package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/fnmesh/fnmesh/collective"
	"github.com/fnmesh/fnmesh/rendezvous"
)

func init() {
	commands["demo"] = command{
		summary: "run a job on an emulated internet of assorted NATs, in one process, no setup",
		run:     runDemo,
	}
}

// demoConfig is what the demo's flags set.
type demoConfig struct {
	workers      int
	bytes        int64
	seed         uint64
	latency      time.Duration
	punchTimeout time.Duration
	timeout      time.Duration
	skip         []string // steps not to run
	collBytes    int      // order of size of each collective
	collAlgos    string   // "all": every algorithm of each collective; "auto": the communicator's choice
	orders       int      // orders per worker in the data-frame step
	customers    int      // customers in all in the data-frame step
}

// demoEnv is the world the demo's steps run in: the emulated internet, the
// rendezvous server on it, the workers, and what earlier steps left for
// later ones.
type demoEnv struct {
	cfg    demoConfig
	world  *demoWorld
	secret []byte
	job    string
	out    io.Writer
	log    *slog.Logger

	// meshes, indexed by rank, are set by the mesh step; their links stay
	// open for the steps after it.
	meshes []*rendezvous.Mesh
	// comms, indexed by rank, are the communicators over the meshes, made
	// by the first step that needs them (communicators).
	comms []*collective.Comm
}

// communicators returns one communicator per worker over the mesh step's
// links, making them the first time.
func (env *demoEnv) communicators() ([]*collective.Comm, error) {
	if env.comms != nil {
		return env.comms, nil
	}
	if env.meshes == nil {
		return nil, errors.New("no mesh")
	}
	comms := make([]*collective.Comm, len(env.meshes))
	for i, m := range env.meshes {
		c, err := collective.FromMesh(m, collective.WithLogger(env.log.With("rank", i)))
		if err != nil {
			for _, c := range comms[:i] {
				c.Close()
			}
			return nil, fmt.Errorf("rank %d: %w", i, err)
		}
		comms[i] = c
	}
	env.comms = comms
	return comms, nil
}

// demoStep is one part of the demo. It writes its own section of the output
// and returns an error if anything it checks did not hold (the demo then
// exits 1 after the remaining output).
type demoStep struct {
	name string
	run  func(ctx context.Context, env *demoEnv) error
}

// demoSteps run in this order; each may use what the ones before it set up.
// Add a step in its own demo_*.go file and list it here. Every step but the
// first may be skipped (--skip).
var demoSteps = []demoStep{
	{"mesh", demoMesh},
	{"collectives", demoCollectives},
	{"frame", demoFrame},
}

// skippable lists the steps --skip accepts.
func skippable() []string {
	var names []string
	for _, s := range demoSteps[1:] {
		names = append(names, s.name)
	}
	return names
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fnmesh demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: fnmesh demo [flags]

Runs fnmesh's main job on an emulated internet, in this process and in real
time: a rendezvous server on a public host and workers behind assorted NATs
(Linux masquerade, a home router, full cone, a home router behind
carrier-grade NAT, a cloud NAT gateway, a public host; more workers reuse
the same NATs). Every pair of workers gets a link, punched where the NATs
allow, relayed where they do not, and every link carries random bytes both
ways that are checked byte for byte. Then the workers run every collective
(barrier, bcast, gather, scatter, allgather, alltoall(v), reduce, allreduce,
reduce-scatter) with each of its algorithms over those links, checking every
rank's result against a sequential oracle, and a distributed data-frame job
(join orders with customers, group by region, sort) checked against plain
Go maps. Exits 0 only if everything verified.

flags:
`)
		fs.PrintDefaults()
	}
	var cfg demoConfig
	fs.IntVar(&cfg.workers, "workers", 6, "number of workers (2 to 64)")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the emulated internet (NAT port choices) and of the generated data")
	fs.DurationVar(&cfg.latency, "latency", 5*time.Millisecond, "one-way latency of every link (a packet between two hosts crosses two or more)")
	fs.DurationVar(&cfg.punchTimeout, "punch-timeout", 2*time.Second, "how long a pair tries to punch before it is relayed")
	fs.DurationVar(&cfg.timeout, "timeout", 2*time.Minute, "give up after this long")
	verbose := fs.Bool("v", false, "log progress to stderr")
	size := byteSize(1 << 20)
	fs.Var(&size, "bytes", "bytes every link carries each way (e.g. 64KiB, 1MiB)")
	collSize := byteSize(256 << 10)
	fs.Var(&collSize, "coll-bytes", "order of size of each collective's data (per rank, or in all where ranks send pieces of different sizes)")
	fs.StringVar(&cfg.collAlgos, "collectives", "all", `"all" runs each collective with each of its algorithms; "auto" once, with the communicator's choice`)
	fs.IntVar(&cfg.orders, "orders", 20000, "orders per worker in the data-frame job")
	fs.IntVar(&cfg.customers, "customers", 5000, "customers in the data-frame job (all workers together)")
	skip := fs.String("skip", "", "comma-separated steps not to run: "+strings.Join(skippable(), ", "))
	if err := parseFlags(fs, args, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "fnmesh demo: %v\n", err)
		flagHint(stderr, "fnmesh demo")
		return 2
	}
	cfg.bytes = int64(size)
	cfg.collBytes = int(collSize)
	for _, s := range strings.Split(*skip, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.skip = append(cfg.skip, s)
		}
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "fnmesh demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	case cfg.workers < 2 || cfg.workers > 64:
		fmt.Fprintln(stderr, "fnmesh demo: --workers must be 2 to 64")
		return 2
	case cfg.latency < 0 || cfg.latency > time.Second:
		fmt.Fprintln(stderr, "fnmesh demo: --latency must be 0 to 1s")
		return 2
	case cfg.punchTimeout <= 0 || cfg.timeout <= 0:
		fmt.Fprintln(stderr, "fnmesh demo: --punch-timeout and --timeout must be positive")
		return 2
	case cfg.punchTimeout < time.Millisecond:
		// The protocol carries it in milliseconds: the rendezvous server
		// refuses a shorter one, and would not start.
		fmt.Fprintf(stderr, "fnmesh demo: --punch-timeout %v is under the protocol's unit: it must be at least 1ms\n", cfg.punchTimeout)
		return 2
	case cfg.collBytes < 0 || cfg.collBytes > 64<<20:
		fmt.Fprintln(stderr, "fnmesh demo: --coll-bytes must be 0 to 64MiB")
		return 2
	case cfg.collAlgos != "all" && cfg.collAlgos != "auto":
		fmt.Fprintln(stderr, `fnmesh demo: --collectives must be "all" or "auto"`)
		return 2
	case cfg.orders < 0 || cfg.orders > 10_000_000 || cfg.customers < 1 || cfg.customers > 10_000_000:
		fmt.Fprintln(stderr, "fnmesh demo: --orders must be 0 to 10M and --customers 1 to 10M")
		return 2
	}
	for _, s := range cfg.skip {
		if !slices.Contains(skippable(), s) {
			fmt.Fprintf(stderr, "fnmesh demo: --skip: no step %q (steps: %s)\n", s, strings.Join(skippable(), ", "))
			return 2
		}
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.timeout, fmt.Errorf("--timeout %s reached", cfg.timeout))
	defer cancel()
	if err := demo(ctx, cfg, stdout, logger); err != nil {
		fmt.Fprintf(stderr, "fnmesh demo: %v\n", err)
		return 1
	}
	return 0
}

// demo builds the world, runs every step and tears the world down.
func demo(ctx context.Context, cfg demoConfig, out io.Writer, logger *slog.Logger) error {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("job secret: %w", err)
	}
	world, err := newDemoWorld(cfg, secret, logger)
	if err != nil {
		return err
	}
	env := &demoEnv{cfg: cfg, world: world, secret: secret, job: "demo", out: out, log: logger}
	defer func() {
		for _, c := range env.comms {
			c.Close()
		}
		for _, m := range env.meshes {
			if m != nil {
				m.Close()
			}
		}
		world.close()
	}()
	world.describe(out, cfg)
	began := time.Now()
	var errs []error
	var ran, failed, notRun []string
	var why error // why the steps in notRun were not run
	for _, s := range demoSteps {
		if slices.Contains(cfg.skip, s.name) {
			continue
		}
		if why == nil && ctx.Err() != nil {
			// Interrupted or out of time: the steps left would only fail.
			why = context.Cause(ctx)
		}
		if why != nil {
			notRun = append(notRun, s.name)
			continue
		}
		ran = append(ran, s.name)
		if err := s.run(ctx, env); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			failed = append(failed, s.name)
			if env.meshes == nil && ctx.Err() == nil {
				why = errors.New("no mesh") // nothing later can run
			}
		}
	}
	verdict := "everything checked out"
	if len(failed) > 0 {
		verdict = "FAILED: " + strings.Join(failed, ", ")
	}
	stopped := ""
	if len(notRun) > 0 {
		stopped = fmt.Sprintf("; stopped (%v), not run: %s", why, strings.Join(notRun, ", "))
		errs = append(errs, fmt.Errorf("not run: %s: %w", strings.Join(notRun, ", "), why))
	}
	fmt.Fprintf(out, "\n%s (%s) in %s%s\n", verdict, strings.Join(ran, ", "), humanDuration(time.Since(began)), stopped)
	return errors.Join(errs...)
}
