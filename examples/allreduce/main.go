// Command allreduce is the "hello world" of fnmesh: start it once per rank,
// all with the same job ID. The processes meet at a rendezvous server, get a
// mesh of links (direct, punched through NATs, or relayed), each prints which
// tier every one of its links took, and they run collectives over the mesh,
// checking every result:
//
//   - Allreduce(sum): rank r contributes x[i] = (r+1)*(i+1), so every rank
//     must get (i+1)*N*(N+1)/2 in element i, exactly (the sums are integers
//     below 2^53, which float64 adds without rounding, in any order);
//   - Bcast: rank 0 sends a greeting, every rank compares it with the one it
//     expects;
//   - Gather: every rank sends rank 0 its links and how long each collective
//     took, and rank 0 prints them as a report.
//
// A rank whose check fails exits with an error naming its rank and the step;
// it leaves the job, so the others fail too (naming that rank, at the latest
// in a final barrier) instead of printing a report. Exit status: 0 every
// check on every rank passed, 1 the job failed, 2 bad flags.
//
// On one machine, with the server and three workers (from the repository's
// root, in bash):
//
//	export FNMESH_SECRET=$(head -c 32 /dev/urandom | base64)
//	go build -o /tmp/rendezvous ./cmd/rendezvous && go build -o /tmp/allreduce ./examples/allreduce
//	/tmp/rendezvous --listen 127.0.0.1:7000 & server=$!
//	workers=(); for i in 1 2 3; do
//	  /tmp/allreduce -rendezvous 127.0.0.1:7000 -job hello -world 3 & workers+=($!)
//	done
//	failed=0; for w in "${workers[@]}"; do wait $w || failed=1; done; kill $server; echo "failed=$failed"
//
// The server assigns the ranks (-rank picks one). Rank 0's report ends with
// "all checks passed".
//
// collective.Join makes the mesh and the communicator in one call; this
// program calls rendezvous.Join and collective.FromMesh instead, because only
// the mesh says which tier each link took.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fnmesh/fnmesh/collective"
	"github.com/fnmesh/fnmesh/rendezvous"
)

func main() {
	// Interrupted, the process leaves the job: its peers see the links
	// close instead of waiting out their timeouts.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		if usage.msg != "" { // else the flag package has said what is wrong
			fmt.Fprintln(os.Stderr, "allreduce:", usage.msg)
		}
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "allreduce:", err)
		os.Exit(1)
	}
}

// usageError is a command line that cannot run (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return "usage: " + e.msg }

const synopsis = "usage: allreduce -rendezvous HOST:PORT -job ID -world N [-rank R] [-secret-file FILE] [-n ELEMS] [-timeout D]"

// maxElems keeps every sum of the check below 2^53: with rendezvous.MaxWorld
// ranks, N*(N+1)/2 < 2^24.
const maxElems = 1 << 24

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("allreduce", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	addr := fs.String("rendezvous", "", "rendezvous server `host:port`")
	job := fs.String("job", "", "job ID, the same on every process")
	world := fs.Int("world", 0, "number of processes in the job")
	rank := fs.Int("rank", -1, "this process's rank, 0..N-1 (default: assigned by the server)")
	secretFile := fs.String("secret-file", "", "read the job secret from this `file` (default: $FNMESH_SECRET)")
	elems := fs.Int("n", 1<<16, "float64 elements each rank contributes to the allreduce")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{}
	}
	switch {
	case *addr == "" || *job == "" || *world < 1:
		return usageError{"-rendezvous, -job and -world (1 or more) are required\n" + synopsis}
	case fs.NArg() > 0:
		return usageError{fmt.Sprintf("unexpected argument %q\n%s", fs.Arg(0), synopsis)}
	case rendezvous.CheckAddr(*addr) != nil:
		return usageError{fmt.Sprintf("-rendezvous %q: %v", *addr, rendezvous.CheckAddr(*addr))}
	case *world > rendezvous.MaxWorld:
		return usageError{fmt.Sprintf("-world %d: at most %d", *world, rendezvous.MaxWorld)}
	case rendezvous.CheckJob(*job) != nil:
		return usageError{fmt.Sprintf("-job: %v", rendezvous.CheckJob(*job))}
	case *rank < -1 || *rank >= *world:
		return usageError{fmt.Sprintf("-rank %d: want 0..%d, or -1 for any", *rank, *world-1)}
	case *elems < 1 || *elems > maxElems:
		return usageError{fmt.Sprintf("-n %d: want 1..%d", *elems, maxElems)}
	case *timeout <= 0:
		return usageError{fmt.Sprintf("-timeout %s: want a positive duration", *timeout)}
	}
	// The secret file may be a pipe nobody has written yet: read it on the
	// side, so that an interrupt still ends the worker.
	type loaded struct {
		secret []byte
		err    error
	}
	got := make(chan loaded, 1)
	go func() {
		secret, err := loadSecret(*secretFile)
		got <- loaded{secret, err}
	}()
	var secret []byte
	select {
	case l := <-got:
		if l.err != nil {
			return l.err
		}
		secret = l.secret
	case <-ctx.Done():
		return fmt.Errorf("interrupted: reading the secret: %w", context.Cause(ctx))
	}
	signalled := ctx
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	// why says why a step failed when the context ended first.
	why := func(err error) error {
		switch {
		case err == nil:
			return nil
		case signalled.Err() != nil:
			return fmt.Errorf("interrupted: %w", err)
		case ctx.Err() != nil:
			return fmt.Errorf("gave up after -timeout %s: %w", *timeout, err)
		}
		return err
	}

	var opts []rendezvous.Option
	if *rank >= 0 {
		opts = append(opts, rendezvous.WithRank(*rank))
	}
	mesh, err := rendezvous.Join(ctx, *addr, *job, *world, secret, opts...)
	if err != nil {
		return why(err) // names the job, the server and, once assigned, the rank
	}
	comm, err := collective.FromMesh(mesh)
	if err != nil {
		_ = mesh.Close()
		return fmt.Errorf("rank %d: communicator: %w", mesh.Rank, err)
	}
	defer comm.Close()

	me := stats{Rank: mesh.Rank, Setup: mesh.Setup, Tiers: make([]string, mesh.World)}
	for _, l := range mesh.Links {
		if l != nil {
			me.Tiers[l.Peer] = l.Tier.String()
		}
	}
	fmt.Fprintf(stdout, "rank %d of %d: mesh ready in %s, links: %s\n",
		me.Rank, mesh.World, round(me.Setup), linksOf(me))

	return why(hello(ctx, stdout, comm, *job, *elems, &me))
}

// stats is what every rank reports to rank 0.
type stats struct {
	Rank  int
	Setup time.Duration
	Tiers []string        // Tiers[peer]: how the link to peer was made; "" for this rank
	Times []time.Duration // one per collective in steps
}

var steps = []string{"barrier", "allreduce", "bcast"}

// hello runs the collectives, checking each result, and on rank 0 prints the
// report. A collective's error already names the rank and the collective
// (and, when a peer failed, that peer and why), so it is returned as it is;
// a failed check is named here the same way.
func hello(ctx context.Context, stdout io.Writer, comm *collective.Comm, job string, elems int, me *stats) error {
	rank, world := comm.Rank(), comm.Size()
	checkFailed := func(step, format string, args ...any) error {
		return fmt.Errorf("rank %d: %s: "+format, append([]any{rank, step}, args...)...)
	}
	timed := func(f func() error) error {
		start := time.Now()
		if err := f(); err != nil {
			return err
		}
		me.Times = append(me.Times, time.Since(start))
		return nil
	}

	if err := timed(func() error { return comm.Barrier(ctx) }); err != nil {
		return err
	}

	err := timed(func() error {
		x := make([]float64, elems)
		for i := range x {
			x[i] = float64((rank + 1) * (i + 1))
		}
		sum, err := collective.Allreduce(ctx, comm, x, collective.Sum[float64]())
		if err != nil {
			return err
		}
		for i, got := range sum {
			if want := float64((i + 1) * world * (world + 1) / 2); got != want {
				return checkFailed("allreduce", "element %d is %v, want %v", i, got, want)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	greeting := fmt.Sprintf("hello from rank 0 of job %q", job)
	err = timed(func() error {
		var msg []byte
		if rank == 0 {
			msg = []byte(greeting)
		}
		got, err := comm.Bcast(ctx, 0, msg)
		if err != nil {
			return err
		}
		if string(got) != greeting {
			return checkFailed("bcast", "got %q, want %q", got, greeting)
		}
		return nil
	})
	if err != nil {
		return err
	}

	mine, err := json.Marshal(me)
	if err != nil {
		return checkFailed("gather", "encoding its stats: %w", err)
	}
	start := time.Now()
	all, err := comm.Gather(ctx, 0, mine)
	if err != nil {
		return err
	}
	gather := time.Since(start)
	ranks := make([]stats, len(all)) // all is nil but on rank 0
	for r, b := range all {
		if err := json.Unmarshal(b, &ranks[r]); err != nil {
			return checkFailed("gather", "rank %d's stats: %w", r, err)
		}
		if len(ranks[r].Times) != len(steps) || len(ranks[r].Tiers) != world {
			return checkFailed("gather", "rank %d's stats: %d times and %d tiers, want %d and %d",
				r, len(ranks[r].Times), len(ranks[r].Tiers), len(steps), world)
		}
	}

	// A rank whose check failed has left, and rank 0 fails if the gather
	// did: a last barrier makes every rank fail then (its error names the
	// rank that left), so that exit status 0 on any rank means the whole
	// job passed.
	if err := comm.Barrier(ctx); err != nil {
		return err
	}
	if rank != 0 {
		return nil
	}
	return printReport(stdout, ranks, elems, greeting, gather)
}

// printReport prints rank 0's report. Every rank checked its own results
// before the gather, so a report means every check passed.
func printReport(w io.Writer, ranks []stats, elems int, greeting string, gather time.Duration) error {
	n := len(ranks)
	fmt.Fprintf(w, "\nallreduce: sum of %d float64 over %d ranks, every element equal to (i+1)*%d*%d/2 on every rank: ok\n",
		elems, n, n, n+1)
	fmt.Fprintf(w, "bcast: every rank got %q: ok\n", greeting)
	fmt.Fprintf(w, "gather: rank 0 got every rank's stats in %s: ok\n\n", round(gather))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "rank\tsetup\t%s\tlinks (peer:tier)\n", strings.Join(steps, "\t"))
	for _, s := range ranks {
		fmt.Fprintf(tw, "%d\t%s", s.Rank, round(s.Setup))
		for _, d := range s.Times {
			fmt.Fprintf(tw, "\t%s", round(d))
		}
		fmt.Fprintf(tw, "\t%s\n", linksOf(s))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	_, err := fmt.Fprintln(w, "\nall checks passed")
	return err
}

// linksOf lists s's links as "peer:tier", in rank order.
func linksOf(s stats) string {
	var links []string
	for peer, tier := range s.Tiers {
		if peer != s.Rank {
			links = append(links, fmt.Sprintf("%d:%s", peer, tier))
		}
	}
	if len(links) == 0 {
		return "none (a world of 1)"
	}
	return strings.Join(links, " ")
}

func round(d time.Duration) time.Duration { return d.Round(time.Microsecond) }

// loadSecret returns the job secret: the contents of file (without trailing
// newlines) if file is set, else $FNMESH_SECRET, as cmd/rendezvous reads it.
func loadSecret(file string) ([]byte, error) {
	if file == "" {
		if s := os.Getenv("FNMESH_SECRET"); s != "" {
			return []byte(s), nil
		}
		return nil, usageError{"no job secret: pass -secret-file or set FNMESH_SECRET"}
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	defer f.Close()
	// A secret is tens of bytes: read no more than 64 KiB, so that a wrong
	// file (or /dev/zero) is refused rather than read until memory runs out.
	const maxSecret = 64 << 10
	b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	if len(b) > maxSecret {
		return nil, fmt.Errorf("secret: %s holds more than %d bytes: it is not a job secret", file, maxSecret)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) == 0 {
		return nil, fmt.Errorf("secret: %s is empty", file)
	}
	return b, nil
}
