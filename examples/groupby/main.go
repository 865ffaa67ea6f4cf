// Command groupby is one worker of a distributed group-by, the shape of a
// job fnmesh is for: start it once per rank (as serverless functions,
// containers or local processes), all with the same job ID. The workers
// meet at a rendezvous server, get a mesh of direct links (punched through
// their NATs, relayed where a NAT forbids it), each reads its share of the
// CSV files, they aggregate together over those links, and rank 0 prints
// the groups as CSV on stdout, largest sum first.
//
// On one machine, with the server and three workers (from the repository's
// root, in bash; the first lines make four small CSV files to group):
//
//	export FNMESH_SECRET=$(head -c 32 /dev/urandom | base64)
//	mkdir -p /tmp/sales && for i in 1 2 3 4; do
//	  printf 'region,amount\neu,%d.50\nus,%d\neu,1\n' $i $((10 * i)) >/tmp/sales/part-$i.csv
//	done
//	go build -o /tmp/rendezvous ./cmd/rendezvous && go build -o /tmp/groupby ./examples/groupby
//	for r in 0 1 2; do
//	  /tmp/groupby -rendezvous 127.0.0.1:7000 -job sales -world 3 -rank $r \
//	    -by region -sum amount '/tmp/sales/*.csv' & workers+=($!)
//	done
//	/tmp/rendezvous --listen 127.0.0.1:7000 & server=$!
//	wait "${workers[@]}"; kill $server
//
// (Workers started before their server keep dialing it for a while:
// rendezvous.WithConnectRetry.)
//
// Rank 0 prints the two groups (us: 4 rows, sum 100; eu: 8 rows, sum 16).
//
// The files of a pattern are dealt out over the ranks (frame.Files); a path
// with {rank} names each rank's own file instead.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/csv"

	"github.com/fnmesh/fnmesh/collective"
	"github.com/fnmesh/fnmesh/frame"
	"github.com/fnmesh/fnmesh/rendezvous"
)

func main() {
	// Interrupted, the worker leaves the job cleanly: its peers see the
	// links close instead of waiting out their timeouts.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	var usage usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		// -h: the flag package printed the flags.
	case errors.As(err, &usage):
		if usage.msg != "" { // the flag package has printed its own complaint
			fmt.Fprintln(os.Stderr, "groupby:", usage.msg)
		}
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "groupby:", err)
		os.Exit(1)
	}
}

// usageError is a command line that cannot run: the process exits 2, as
// for a flag the flag package rejects, rather than 1, a failed job.
type usageError struct{ msg string }

func (e usageError) Error() string {
	if e.msg == "" {
		return "bad flags"
	}
	return e.msg
}

const synopsis = "usage: groupby -rendezvous HOST:PORT -job ID -world N [-rank R] -by COL -sum COL FILE|PATTERN..."

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("groupby", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	addr := fs.String("rendezvous", "", "rendezvous server `host:port`")
	job := fs.String("job", "", "job ID, the same on every worker")
	world := fs.Int("world", 0, "number of workers")
	rank := fs.Int("rank", -1, "this worker's rank, 0..N-1 (default: assigned by the server)")
	by := fs.String("by", "", "column to group by")
	sum := fs.String("sum", "", "numeric column to sum per group")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{}
	}
	var missing []string
	for _, m := range []struct {
		miss bool
		what string
	}{{*addr == "", "-rendezvous"}, {*job == "", "-job"}, {*world < 1, "-world (1 or more)"},
		{*by == "", "-by"}, {*sum == "", "-sum"}, {fs.NArg() == 0, "the files"}} {
		if m.miss {
			missing = append(missing, m.what)
		}
	}
	for _, a := range fs.Args() {
		if strings.HasPrefix(a, "-") {
			// The flag package stops at the first file.
			return usageError{fmt.Sprintf("%q after the files: flags go before them (a file named -x can be given as ./-x)\n%s", a, synopsis)}
		}
	}
	switch {
	case len(missing) > 0 && len(args) == 0:
		return usageError{synopsis}
	case len(missing) > 0:
		// Not only the synopsis: which of its six parts is missing.
		return usageError{"missing " + strings.Join(missing, ", ") + "\n" + synopsis}
	case rendezvous.CheckAddr(*addr) != nil:
		return usageError{fmt.Sprintf("-rendezvous %q: %v", *addr, rendezvous.CheckAddr(*addr))}
	case *world > rendezvous.MaxWorld:
		return usageError{fmt.Sprintf("-world %d: at most %d", *world, rendezvous.MaxWorld)}
	case rendezvous.CheckJob(*job) != nil:
		return usageError{fmt.Sprintf("-job: %v", rendezvous.CheckJob(*job))}
	case *rank < -1 || *rank >= *world:
		return usageError{fmt.Sprintf("-rank %d: want 0..%d, or -1 for any", *rank, *world-1)}
	case *timeout <= 0:
		return usageError{fmt.Sprintf("-timeout %s: want a positive duration", *timeout)}
	}
	secret := os.Getenv("FNMESH_SECRET")
	if secret == "" {
		return usageError{"set FNMESH_SECRET to the job secret the rendezvous server has"}
	}
	signalled := ctx
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	err := groupBy(ctx, stdout, *addr, *job, *world, *rank, []byte(secret), fs.Args(), *by, *sum)
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

// groupBy is the job: join it, read this rank's share of the files, group
// and sort together, and print the result on rank 0.
func groupBy(ctx context.Context, stdout io.Writer, addr, job string, world, rank int, secret []byte, files []string, by, sum string) error {
	var joinOpts []rendezvous.Option
	if rank >= 0 {
		joinOpts = append(joinOpts, rendezvous.WithRank(rank))
	}
	comm, err := collective.Join(ctx, addr, job, world, secret, collective.WithJoinOptions(joinOpts...))
	if err != nil {
		return err
	}
	defer comm.Close()

	data, err := frame.ReadCSV(ctx, comm, files, nil)
	if err != nil {
		return err
	}
	defer data.Release()
	groups, err := data.GroupBy(by).Agg(ctx, frame.CountRows().As("rows"), frame.Sum(sum))
	if err != nil {
		return err
	}
	defer groups.Release()
	sorted, err := groups.Sort(ctx, frame.Desc(frame.Sum(sum).OutputName()), frame.Asc(by))
	if err != nil {
		return err
	}
	defer sorted.Release()
	result, err := sorted.Gather(ctx, 0)
	if err != nil || result == nil { // only rank 0 gets the result
		return err
	}
	defer result.Release()
	return writeCSV(stdout, result)
}

// writeCSV prints t as CSV with a header row.
func writeCSV(w io.Writer, t arrow.Table) error {
	cw := csv.NewWriter(w, t.Schema(), csv.WithHeader(true))
	tr := array.NewTableReader(t, -1)
	defer tr.Release()
	for tr.Next() {
		if err := cw.Write(tr.RecordBatch()); err != nil {
			return err
		}
	}
	return cw.Flush()
}
