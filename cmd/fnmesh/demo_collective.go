package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
	"unsafe"

	"github.com/fnmesh/fnmesh/collective"
)

// The collectives step: every worker runs the same sequence of collectives
// over the communicator built on its mesh, as the ranks of an MPI job do,
// and checks what it got against an oracle that the demo computed
// beforehand, sequentially, from every rank's input.
//
// The communicator chooses an algorithm by size and rank count but does not
// say which one it chose, so the step forces each algorithm in turn (the
// same on every rank, between calls): every row of the table names the
// algorithm that really ran. With --collectives=auto it runs each collective
// once, as a user's call would, with the communicator's own choice.

// collCase is one collective with its inputs and oracle.
type collCase struct {
	op   collective.Collective
	data string // what moves, for the table
	// newRun returns what every rank runs for one row: call the collective
	// with this rank's input and compare the result with the oracle. A row
	// gets its own function, so that a case can keep per-row state.
	newRun func() func(ctx context.Context, c *collective.Comm) error
}

// collRow is one run of a case with one algorithm (Auto: the
// communicator's choice).
type collRow struct {
	c    *collCase
	algo collective.Algorithm
	run  func(ctx context.Context, c *collective.Comm) error
}

// collOutcome is what one rank saw of one row.
type collOutcome struct {
	ran        bool      // false: the demo was stopped before the row
	start, end time.Time // when the rank called the collective and when it returned (with its check)
	err        error
}

// collResult sums a row up over the ranks.
type collResult struct {
	Collective string
	Algorithm  string
	Data       string
	Took       time.Duration // from the common start to the last rank's return
	OK         int           // ranks whose result matched the oracle
	Err        string        // the first failure, with the rank
	NotRun     bool          // the demo was stopped before the row
}

// demoCollectives runs the collectives over the communicators on the
// step's meshes, prints one row per collective and algorithm, and fails if
// any rank's result differed from the oracle.
func demoCollectives(ctx context.Context, env *demoEnv) error {
	comms, err := env.communicators()
	if err != nil {
		fmt.Fprintf(env.out, "\ncollectives: no communicator: %v\n", err)
		return err
	}
	p := len(comms)
	cases := collCases(p, env.cfg.collBytes, env.cfg.seed)
	var rows []collRow
	for i := range cases {
		algos := []collective.Algorithm{collective.Auto}
		if env.cfg.collAlgos == "all" {
			algos = collective.Algorithms(cases[i].op)
		}
		for _, a := range algos {
			rows = append(rows, collRow{c: &cases[i], algo: a, run: cases[i].newRun()})
		}
	}

	fmt.Fprintf(env.out, "\ncollectives over the mesh: %d ranks, each result checked on every rank against a sequential oracle\n"+
		"(time: from a common start to the last rank's return, with its check)\n\n", p)
	outcomes := make([][]collOutcome, len(rows)) // [row][rank]
	for i := range outcomes {
		outcomes[i] = make([]collOutcome, p)
	}
	began := time.Now()
	line := newLineUp(p)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() {
			for i, row := range rows {
				outcomes[i][r] = runCollRow(ctx, c, row, line)
				if !outcomes[i][r].ran {
					return // every rank stops at the same row
				}
			}
		})
	}
	wg.Wait()
	total := time.Since(began)

	results := make([]collResult, len(rows))
	for i, row := range rows {
		res := collResult{Collective: row.c.op.String(), Algorithm: algoName(row.algo), Data: row.c.data}
		if !outcomes[i][0].ran {
			res.NotRun = true
			results[i] = res
			continue
		}
		for _, o := range outcomes[i] {
			res.Took = max(res.Took, o.end.Sub(o.start))
			if o.err == nil {
				res.OK++
			} else if res.Err == "" {
				res.Err = o.err.Error()
			}
		}
		results[i] = res
	}
	return printCollResults(env, results, p, total, context.Cause(ctx))
}

// lineUp is a reusable barrier for the workers' goroutines. The workers of
// the demo share this process, so it lines them up before each collective
// at no cost, where a collective barrier would cost a few WAN round trips
// per row; every row is then timed from the same instant.
type lineUp struct {
	mu      sync.Mutex
	n, in   int
	release chan struct{}
	at      time.Time // when the last one arrived
	stop    bool      // the last one to arrive saw its context done
}

func newLineUp(n int) *lineUp { return &lineUp{n: n, release: make(chan struct{})} }

// wait blocks until all n have called it and returns the instant the last
// one did, and whether that one found ctx done: the same answer for all n,
// so that they all stop at the same row (a rank that stopped alone would
// leave the others waiting here). wait does not take ctx for itself: every
// caller arrives, as soon as its previous row returns.
func (l *lineUp) wait(ctx context.Context) (time.Time, bool) {
	l.mu.Lock()
	l.in++
	if l.in == l.n {
		l.at, l.stop = time.Now(), ctx.Err() != nil
		close(l.release)
		l.release, l.in = make(chan struct{}), 0
		at, stop := l.at, l.stop
		l.mu.Unlock()
		return at, stop
	}
	ch := l.release
	l.mu.Unlock()
	<-ch
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.at, l.stop // not overwritten before this caller's next wait
}

// runCollRow runs one row on one rank: force the row's algorithm, wait
// for the others, then run the collective and check its result. Every rank
// of the row is timed from the same instant, so the slowest rank's time is
// the collective's. If the demo was stopped (ctx done) by the time the last
// rank lined up, no rank runs the row (ran is false).
//
// The collective's errors already name the rank; a failed check (a
// mismatch) and a refused tuning are named here.
func runCollRow(ctx context.Context, c *collective.Comm, row collRow, line *lineUp) collOutcome {
	t := c.Tuning()
	t.Force[row.c.op] = row.algo
	setErr := c.SetTuning(t)
	start, stop := line.wait(ctx)
	if stop {
		return collOutcome{}
	}
	o := collOutcome{ran: true, start: start}
	if setErr != nil {
		o.end, o.err = o.start, fmt.Errorf("rank %d: %w", c.Rank(), setErr)
		return o
	}
	o.err = row.run(ctx, c)
	o.end = time.Now()
	var m mismatch
	if errors.As(o.err, &m) {
		o.err = fmt.Errorf("rank %d: %w", c.Rank(), o.err)
	}
	return o
}

// mismatch is a result that differs from the oracle.
type mismatch struct{ error }

func mismatchf(format string, args ...any) error { return mismatch{fmt.Errorf(format, args...)} }

// algoName is the algorithm's name without its collective's.
func algoName(a collective.Algorithm) string {
	s := a.String()
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// printCollResults writes the table and the summary line; stopped is why
// the rows not run were not.
func printCollResults(env *demoEnv, results []collResult, p int, total time.Duration, stopped error) error {
	tw := tabwriter.NewWriter(env.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "collective\talgorithm\tdata\ttime\tresult")
	failed, notRun, prev := 0, 0, ""
	for _, r := range results {
		name := r.Collective
		if name == prev {
			name = "" // one name per group of algorithms
		}
		prev = r.Collective
		took, verdict := humanDuration(r.Took), fmt.Sprintf("ok on all %d ranks", p)
		switch {
		case r.NotRun:
			notRun++
			took, verdict = "-", "not run"
		case r.OK < p:
			failed++
			verdict = fmt.Sprintf("FAILED on %d of %d ranks: %s", p-r.OK, p, r.Err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, r.Algorithm, r.Data, took, verdict)
	}
	tw.Flush()
	ops := map[string]bool{}
	for _, r := range results {
		ops[r.Collective] = true
	}
	var outcome []string
	if failed == 0 && notRun == 0 {
		outcome = append(outcome, fmt.Sprintf("all %d checked out on every rank", len(results)))
	}
	if failed > 0 {
		outcome = append(outcome, fmt.Sprintf("%d of %d FAILED", failed, len(results)))
	}
	if notRun > 0 {
		outcome = append(outcome, fmt.Sprintf("%d not run (%v)", notRun, stopped))
	}
	fmt.Fprintf(env.out, "\n%d runs of %d collectives over %d ranks: %s, in %s\n",
		len(results), len(ops), p, strings.Join(outcome, ", "), humanDuration(total))
	switch {
	case notRun > 0:
		return fmt.Errorf("%d of %d collective runs failed, %d not run: %w", failed, len(results), notRun, stopped)
	case failed > 0:
		return fmt.Errorf("%d of %d collective runs failed", failed, len(results))
	}
	return nil
}

// collCases builds the demo's collectives for p ranks, with n bytes as the
// order of size of each (per rank for bcast and the reductions, in all for
// the collectives whose ranks contribute pieces of different sizes), and
// their oracles, computed here, sequentially, from every rank's input.
//
// Floating-point inputs are multiples of 1/256 below 2^20 in magnitude, so
// every order of summation gives the exact sum: results are compared bit
// for bit whichever algorithm combined them.
func collCases(p int, n int, seed uint64) []collCase {
	g := &collGen{seed: seed}
	k := max(n/8, 1) // elements of the reductions' vectors
	return []collCase{
		collBarrier(p),
		collBcast(g, p, n, p-1),
		collGather(g, p, n, 0),
		collScatter(g, p, n, min(1, p-1)),
		collAllgather(g, p, n),
		collAlltoall(g, p, n),
		collAlltoallv(g, p, n),
		collReduce(p, 2%p, genInts(g, p, k), collective.Max[int64](), func(a, b int64) int64 { return max(a, b) }, "int64"),
		collAllreduce(p, genFloats(g, p, k), collective.Sum[float64](), func(a, b float64) float64 { return a + b }, "float64"),
		collAllreduce(p, genInts(g, p, k), collective.Sum[int64](), func(a, b int64) int64 { return a + b }, "int64"),
		collReduceScatter(g, p, k),
	}
}

// collGen makes each input from its own stream, so inputs do not depend on
// the order they are made in.
type collGen struct {
	seed   uint64
	stream uint64
}

func (g *collGen) rng() *rand.Rand {
	g.stream++
	return rand.New(rand.NewPCG(g.seed, g.stream))
}

// bytes returns n random bytes.
func (g *collGen) bytes(n int) []byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], g.seed)
	g.stream++
	binary.LittleEndian.PutUint64(seed[8:], g.stream)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(seed).Read(b) // never fails
	return b
}

// spread splits about total bytes into p sizes in proportion to weights,
// plus r bytes for rank r (so sizes are odd and differ even at weight 0 ...
// except that weight 0 means an empty contribution).
func spread(total int, weights []int) []int {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	sizes := make([]int, len(weights))
	for r, w := range weights {
		if w > 0 && sum > 0 {
			sizes[r] = total*w/sum + r
		}
	}
	return sizes
}

// sizeRange describes sizes for the table: "0-85.3 KiB", "12.2-73.1 KiB".
func sizeRange(sizes []int) string {
	lo, hi := humanBytes(int64(slices.Min(sizes))), humanBytes(int64(slices.Max(sizes)))
	switch {
	case lo == hi:
		return lo
	case lo == "0 B":
		lo = "0"
	default:
		if l, lu, _ := strings.Cut(lo, " "); strings.HasSuffix(hi, " "+lu) {
			lo = l // one unit for both
		}
	}
	return lo + "-" + hi
}

func sumInts(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

// sameBytes says where got differs from want.
func sameBytes(what string, got, want []byte) error {
	if len(got) != len(want) {
		return mismatchf("%s: %d bytes, want %d", what, len(got), len(want))
	}
	if bytes.Equal(got, want) {
		return nil
	}
	for i := range got {
		if got[i] != want[i] {
			return mismatchf("%s: byte %d is %#02x, want %#02x", what, i, got[i], want[i])
		}
	}
	return nil
}

// sameBlocks compares a result of one block per rank.
func sameBlocks(what string, got, want [][]byte) error {
	if len(got) != len(want) {
		return mismatchf("%s: %d blocks, want %d", what, len(got), len(want))
	}
	for j := range got {
		if err := sameBytes(fmt.Sprintf("%s: block from rank %d", what, j), got[j], want[j]); err != nil {
			return err
		}
	}
	return nil
}

// sameValues says where got differs from want.
func sameValues[T collective.Number](got, want []T) error {
	if len(got) != len(want) {
		return mismatchf("%d elements, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return mismatchf("element %d is %v, want %v", i, got[i], want[i])
		}
	}
	return nil
}

// cloneBlocks copies every rank's input for one row: the ranks of the demo
// share this process, so a collective that wrote into a caller's buffer
// would otherwise change the oracle it is checked against.
func cloneBlocks[T any](in [][]T) [][]T {
	out := make([][]T, len(in))
	for r := range in {
		out[r] = slices.Clone(in[r])
	}
	return out
}

// kept checks that a collective left its caller's input as it was.
func kept[T comparable](mine, orig []T) error {
	if !slices.Equal(mine, orig) {
		return mismatchf("the collective changed this rank's input buffer")
	}
	return nil
}

// collBarrier checks the barrier's one promise: no rank leaves it before
// every rank has entered it.
func collBarrier(p int) collCase {
	return collCase{op: collective.OpBarrier, data: "-", newRun: func() func(context.Context, *collective.Comm) error {
		var arrived atomic.Int64
		return func(ctx context.Context, c *collective.Comm) error {
			arrived.Add(1)
			if err := c.Barrier(ctx); err != nil {
				return err
			}
			if got := arrived.Load(); got != int64(p) {
				return mismatchf("left the barrier when %d of %d ranks had entered it", got, p)
			}
			return nil
		}
	}}
}

func collBcast(g *collGen, p, n, root int) collCase {
	data := g.bytes(n)
	return collCase{op: collective.OpBcast, data: fmt.Sprintf("%s from rank %d", humanBytes(int64(n)), root),
		newRun: func() func(context.Context, *collective.Comm) error {
			mine := bytes.Clone(data)
			return func(ctx context.Context, c *collective.Comm) error {
				var in []byte
				if c.Rank() == root {
					in = mine
				}
				got, err := c.Bcast(ctx, root, in)
				if err != nil {
					return err
				}
				if err := kept(mine, data); err != nil {
					return err
				}
				return sameBytes("result", got, data)
			}
		}}
}

// collGather: rank r sends a piece that grows with r (rank 0's is empty).
func collGather(g *collGen, p, n, root int) collCase {
	w := make([]int, p)
	for r := range w {
		w[r] = r
	}
	sizes := spread(n, w)
	in := make([][]byte, p)
	for r := range in {
		in[r] = g.bytes(sizes[r])
	}
	return collCase{op: collective.OpGather,
		data: fmt.Sprintf("%s to rank %d, %s per rank", humanBytes(int64(sumInts(sizes))), root, sizeRange(sizes)),
		newRun: func() func(context.Context, *collective.Comm) error {
			mine := cloneBlocks(in)
			return func(ctx context.Context, c *collective.Comm) error {
				got, err := c.Gather(ctx, root, mine[c.Rank()])
				switch {
				case err != nil:
					return err
				case !slices.Equal(mine[c.Rank()], in[c.Rank()]):
					return kept(mine[c.Rank()], in[c.Rank()]) // the caller's buffer is the caller's
				case c.Rank() != root && got != nil:
					return mismatchf("a result off the root")
				case c.Rank() != root:
					return nil
				}
				return sameBlocks("result", got, in)
			}
		}}
}

// collScatter: the root sends rank r a piece that shrinks with r.
func collScatter(g *collGen, p, n, root int) collCase {
	w := make([]int, p)
	for r := range w {
		w[r] = p - r
	}
	sizes := spread(n, w)
	parts := make([][]byte, p)
	for r := range parts {
		parts[r] = g.bytes(sizes[r])
	}
	return collCase{op: collective.OpScatter,
		data: fmt.Sprintf("%s from rank %d, %s per rank", humanBytes(int64(sumInts(sizes))), root, sizeRange(sizes)),
		newRun: func() func(context.Context, *collective.Comm) error {
			mine := cloneBlocks(parts)
			return func(ctx context.Context, c *collective.Comm) error {
				var in [][]byte
				if c.Rank() == root {
					in = mine
				}
				got, err := c.Scatter(ctx, root, in)
				if err != nil {
					return err
				}
				if c.Rank() == root {
					if err := sameBlocks("the root's input after the call", mine, parts); err != nil {
						return err
					}
				}
				return sameBytes("result", got, parts[c.Rank()])
			}
		}}
}

// collAllgather: every rank contributes a piece of its own size; rank 1's
// is empty.
func collAllgather(g *collGen, p, n int) collCase {
	w := make([]int, p)
	for r := range w {
		w[r] = r + 1
	}
	w[min(1, p-1)] = 0
	sizes := spread(n, w)
	in := make([][]byte, p)
	for r := range in {
		in[r] = g.bytes(sizes[r])
	}
	return collCase{op: collective.OpAllgather,
		data: fmt.Sprintf("%s, %s per rank", humanBytes(int64(sumInts(sizes))), sizeRange(sizes)),
		newRun: func() func(context.Context, *collective.Comm) error {
			mine := cloneBlocks(in)
			return func(ctx context.Context, c *collective.Comm) error {
				got, err := c.Allgather(ctx, mine[c.Rank()])
				if err != nil {
					return err
				}
				if err := kept(mine[c.Rank()], in[c.Rank()]); err != nil {
					return err
				}
				return sameBlocks("result", got, in)
			}
		}}
}

// collAlltoall: every rank sends every rank one block of the same size.
func collAlltoall(g *collGen, p, n int) collCase {
	block := n/p + 1
	in := make([][]byte, p)
	for r := range in {
		in[r] = g.bytes(p * block)
	}
	return collCase{op: collective.OpAlltoall,
		data: fmt.Sprintf("%s per rank, %s per pair", humanBytes(int64(p*block)), humanBytes(int64(block))),
		newRun: func() func(context.Context, *collective.Comm) error {
			mine := cloneBlocks(in)
			return func(ctx context.Context, c *collective.Comm) error {
				r := c.Rank()
				got, err := c.Alltoall(ctx, mine[r])
				if err != nil {
					return err
				}
				if err := kept(mine[r], in[r]); err != nil {
					return err
				}
				want := make([]byte, 0, p*block)
				for j := range p {
					want = append(want, in[j][r*block:(r+1)*block]...)
				}
				return sameBytes("result", got, want)
			}
		}}
}

// collAlltoallv: rank r sends rank j a part of its own size, zero for about
// a quarter of the pairs.
func collAlltoallv(g *collGen, p, n int) collCase {
	parts := make([][][]byte, p) // [from][to]
	var sizes []int
	sent := 0
	for r := range parts {
		parts[r] = make([][]byte, p)
		for j := range parts[r] {
			size := 0
			if f := (r + 2*j) % 4; f > 0 {
				size = n/p*f*2/3 + j
			}
			parts[r][j] = g.bytes(size)
			sizes = append(sizes, size)
			sent += size
		}
	}
	return collCase{op: collective.OpAlltoallv,
		data: fmt.Sprintf("%s per rank, %s per pair", humanBytes(int64(sent/p)), sizeRange(sizes)),
		newRun: func() func(context.Context, *collective.Comm) error {
			mine := make([][][]byte, p)
			for r := range mine {
				mine[r] = cloneBlocks(parts[r])
			}
			return func(ctx context.Context, c *collective.Comm) error {
				r := c.Rank()
				got, err := c.Alltoallv(ctx, mine[r])
				if err != nil {
					return err
				}
				if err := sameBlocks("this rank's input after the call", mine[r], parts[r]); err != nil {
					return err
				}
				want := make([][]byte, p)
				for j := range want {
					want[j] = parts[j][r]
				}
				return sameBlocks("result", got, want)
			}
		}}
}

// genFloats returns p vectors of k multiples of 1/256 in (-2^20, 2^20).
func genFloats(g *collGen, p, k int) [][]float64 {
	in := make([][]float64, p)
	for r := range in {
		rng := g.rng()
		in[r] = make([]float64, k)
		for i := range in[r] {
			in[r][i] = float64(rng.Int64N(1<<29)-1<<28) / 256
		}
	}
	return in
}

// genInts returns p vectors of k int64s (sums of a few of them do not
// overflow, and wrapping would be exact anyway).
func genInts(g *collGen, p, k int) [][]int64 {
	in := make([][]int64, p)
	for r := range in {
		rng := g.rng()
		in[r] = make([]int64, k)
		for i := range in[r] {
			in[r][i] = rng.Int64N(1<<40) - 1<<39
		}
	}
	return in
}

// fold is the oracle of a reduction: the vectors combined in rank order,
// one element at a time.
func fold[T collective.Number](in [][]T, f func(a, b T) T) []T {
	out := slices.Clone(in[0])
	for _, v := range in[1:] {
		for i := range out {
			out[i] = f(out[i], v[i])
		}
	}
	return out
}

func typeLabel[T collective.Number](k int, typ string, op collective.Op[T]) string {
	var zero T
	return fmt.Sprintf("%d × %s (%s), %s", k, typ, humanBytes(int64(k)*int64(unsafe.Sizeof(zero))), op)
}

func collReduce[T collective.Number](p, root int, in [][]T, op collective.Op[T], f func(a, b T) T, typ string) collCase {
	want := fold(in, f)
	return collCase{op: collective.OpReduce, data: typeLabel(len(want), typ, op) + fmt.Sprintf(" to rank %d", root),
		newRun: func() func(context.Context, *collective.Comm) error {
			mine := cloneBlocks(in)
			return func(ctx context.Context, c *collective.Comm) error {
				got, err := collective.Reduce(ctx, c, root, mine[c.Rank()], op)
				switch {
				case err != nil:
					return err
				case !slices.Equal(mine[c.Rank()], in[c.Rank()]):
					return kept(mine[c.Rank()], in[c.Rank()]) // the caller's buffer is the caller's
				case c.Rank() != root && got != nil:
					return mismatchf("a result off the root")
				case c.Rank() != root:
					return nil
				}
				return sameValues(got, want)
			}
		}}
}

func collAllreduce[T collective.Number](p int, in [][]T, op collective.Op[T], f func(a, b T) T, typ string) collCase {
	want := fold(in, f)
	return collCase{op: collective.OpAllreduce, data: typeLabel(len(want), typ, op),
		newRun: func() func(context.Context, *collective.Comm) error {
			mine := cloneBlocks(in)
			return func(ctx context.Context, c *collective.Comm) error {
				got, err := collective.Allreduce(ctx, c, mine[c.Rank()], op)
				if err != nil {
					return err
				}
				if err := kept(mine[c.Rank()], in[c.Rank()]); err != nil {
					return err
				}
				return sameValues(got, want)
			}
		}}
}

// collReduceScatter: an int64 sum of about k elements, of which rank r gets
// a block that grows with r (rank 0's is empty).
func collReduceScatter(g *collGen, p, k int) collCase {
	w := make([]int, p)
	for r := range w {
		w[r] = r
	}
	counts := spread(k, w)
	total := sumInts(counts)
	in := genInts(g, p, total)
	want := fold(in, func(a, b int64) int64 { return a + b })
	offs := make([]int, p+1)
	for r, n := range counts {
		offs[r+1] = offs[r] + n
	}
	return collCase{op: collective.OpReduceScatter,
		data: fmt.Sprintf("%d × int64 (%s), sum, %d-%d per rank", total, humanBytes(int64(8*total)), slices.Min(counts), slices.Max(counts)),
		newRun: func() func(context.Context, *collective.Comm) error {
			mine := cloneBlocks(in)
			return func(ctx context.Context, c *collective.Comm) error {
				r := c.Rank()
				got, err := collective.ReduceScatter(ctx, c, mine[r], counts, collective.Sum[int64]())
				if err != nil {
					return err
				}
				if err := kept(mine[r], in[r]); err != nil {
					return err
				}
				return sameValues(got, want[offs[r]:offs[r+1]])
			}
		}}
}
