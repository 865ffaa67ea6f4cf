package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// demoExpectedTier is the tier the design takes between workers at sites a
// and b (a at rank ra, b at rank rb): direct when one of them is a public
// host or both share a NAT's LAN; relay when a cloud NAT (address-and-port
// dependent mapping) is on the path, unless the other side's NAT is a full
// cone (whose endpoint-independent filtering admits the SYN from whatever
// port the cloud NAT picked); punched otherwise, including two subscribers
// of the same carrier-grade NAT (their home routers are distinct; the
// carrier hairpins).
func demoExpectedTier(a, b demoSite, sameNAT bool) string {
	switch {
	case a == sitePublic || b == sitePublic:
		return "direct"
	case sameNAT:
		return "direct"
	case a.symmetric() && b.symmetric():
		return "relay"
	case a.symmetric() && b == siteFullCone, b.symmetric() && a == siteFullCone:
		return "punched"
	case a.symmetric() || b.symmetric():
		return "relay"
	}
	return "punched"
}

var demoRow = regexp.MustCompile(`^(\d+) <-> (\d+) +(.+?) +(direct|punched|relay) +(\d+\.\d+ m?s) +(.*)$`)

// demoRows parses the pair table of the demo's output.
type demoRowT struct {
	a, b     int
	sa, sb   demoSite
	tier     string
	verified string
}

func parseDemoRows(out string) []demoRowT {
	var rows []demoRowT
	for _, line := range strings.Split(out, "\n") {
		m := demoRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		rows = append(rows, demoRowT{a: a, b: b, sa: demoSite(a % int(numSites)), sb: demoSite(b % int(numSites)), tier: m[4], verified: m[6]})
	}
	return rows
}

// sameNAT reports whether the pair shares a NAT's LAN (each worker behind
// the carrier-grade NAT has its own home router; public hosts have none).
func (r demoRowT) sameNAT() bool {
	return r.sa == r.sb && r.sa != siteCarrierGrade && r.sa != sitePublic
}

// TestDemo runs the demo, exactly as the command does, in a synctest bubble:
// the emulated internet then runs in virtual time, so that the tiers do not
// depend on how loaded the machine is. 8 workers: two sites get a second
// worker, on the same LAN. Every row of the tables is checked.
func TestDemo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		const workers = 8
		status := run(context.Background(), []string{"demo", "--workers", fmt.Sprint(workers), "--bytes", "64KiB",
			"--latency", "2ms", "--seed", "7", "--coll-bytes", "40000", "--orders", "3000", "--customers", "700"}, &stdout, &stderr)
		out := stdout.String()
		t.Log("\n" + out)
		require.Equal(t, 0, status, "stderr: %s", stderr.String())

		rows := parseDemoRows(out)
		for _, r := range rows {
			assert.Equal(t, demoExpectedTier(r.sa, r.sb, r.sameNAT()), r.tier, "pair %d (%s) <-> %d (%s)", r.a, r.sa, r.b, r.sb)
			assert.Equal(t, "64 KiB both ways", r.verified, "pair %d <-> %d", r.a, r.b)
		}
		assert.Len(t, rows, workers*(workers-1)/2, "one row per pair")
		assert.Contains(t, out, "28 links (9 direct, 14 punched, 5 relay): all 28 verified, 64 KiB each way")

		assertCollectives(t, out, workers, true)
		assertFrame(t, out, workers, 700, 3000, 7)
		assert.Contains(t, out, "\neverything checked out (mesh, collectives, frame) in ")
	})
}

// TestDemoRealTime runs the demo as a user does, in real time. On a loaded
// machine a punch may miss its deadline and be relayed instead, so only what
// holds whatever the load is checked: everything verified, and no pair that
// a symmetric NAT makes unpunchable got anything but the relay.
func TestDemoRealTime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	status := run(ctx, []string{"demo", "--bytes", "100000", "--coll-bytes", "64KiB", "--orders", "5000"}, &stdout, &stderr)
	out := stdout.String()
	t.Log("\n" + out)
	require.Equal(t, 0, status, "stderr: %s", stderr.String())
	rows := parseDemoRows(out)
	assert.Len(t, rows, 15)
	for _, r := range rows {
		assert.Equal(t, "97.7 KiB both ways", r.verified, "pair %d <-> %d", r.a, r.b)
		if demoExpectedTier(r.sa, r.sb, r.sameNAT()) == "relay" {
			assert.Equal(t, "relay", r.tier, "pair %d (%s) <-> %d (%s)", r.a, r.sa, r.b, r.sb)
		}
	}
	assert.Contains(t, out, "all 15 verified")
	assertCollectives(t, out, 6, true)
	assertFrame(t, out, 6, 5000, 5000, 1)
	assert.Contains(t, out, "\neverything checked out (mesh, collectives, frame) in ")
}

// TestDemoSkip runs the later steps alone or in their short form.
func TestDemoSkip(t *testing.T) {
	for _, tc := range []struct {
		name                string
		args                []string
		collectives, frames bool
		allAlgorithms       bool
		ran                 string
	}{
		{"auto collectives, no frames", []string{"--collectives", "auto", "--skip", "frame"}, true, false, false, "mesh, collectives"},
		{"frames only", []string{"--skip", "collectives", "--orders", "500"}, false, true, false, "mesh, frame"},
		{"mesh only", []string{"--skip", "frame, collectives"}, false, false, false, "mesh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				args := append([]string{"demo", "--workers", "3", "--bytes", "1KiB", "--coll-bytes", "5000"}, tc.args...)
				status := run(context.Background(), args, &stdout, &stderr)
				out := stdout.String()
				t.Log("\n" + out)
				require.Equal(t, 0, status, "stderr: %s", stderr.String())
				assert.Contains(t, out, "all 3 verified")
				if tc.collectives {
					assertCollectives(t, out, 3, tc.allAlgorithms)
				} else {
					assert.NotContains(t, out, "collectives over the mesh")
				}
				if tc.frames {
					assertFrame(t, out, 3, 5000, 500, 1)
				} else {
					assert.NotContains(t, out, "data frames over the mesh")
				}
				assert.Contains(t, out, "\neverything checked out ("+tc.ran+") in ")
			})
		})
	}
}

// demoCollectiveOps are the collectives the demo runs, in order.
var demoCollectiveOps = []collective.Collective{
	collective.OpBarrier, collective.OpBcast, collective.OpGather, collective.OpScatter,
	collective.OpAllgather, collective.OpAlltoall, collective.OpAlltoallv, collective.OpReduce,
	collective.OpAllreduce, collective.OpAllreduce, collective.OpReduceScatter,
}

// collTableRow is a row of the collectives table.
type collTableRow struct{ collective, algorithm, data, time, result string }

var columnGap = regexp.MustCompile(`\s{2,}`)

// parseCollTable returns the rows of the collectives table, with the
// collective's name filled in where the table leaves it blank.
func parseCollTable(out string) []collTableRow {
	var rows []collTableRow
	in, name := false, ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "collective "):
			in = true
			continue
		case !in:
			continue
		case line == "":
			return rows
		}
		f := columnGap.Split(line, -1)
		if len(f) != 5 {
			rows = append(rows, collTableRow{result: "unparsed: " + line})
			continue
		}
		if f[0] != "" {
			name = f[0]
		}
		rows = append(rows, collTableRow{name, f[1], f[2], f[3], f[4]})
	}
	return rows
}

// assertCollectives checks the collectives table: one row per collective
// and algorithm (or one per collective, chosen by the communicator), every
// one checked out on every rank.
func assertCollectives(t *testing.T, out string, ranks int, allAlgorithms bool) {
	t.Helper()
	var want []collTableRow
	for _, op := range demoCollectiveOps {
		algos := []collective.Algorithm{collective.Auto}
		if allAlgorithms {
			algos = collective.Algorithms(op)
		}
		for _, a := range algos {
			_, name, _ := strings.Cut(a.String(), "/")
			if a == collective.Auto {
				name = "auto"
			}
			want = append(want, collTableRow{collective: op.String(), algorithm: name, result: fmt.Sprintf("ok on all %d ranks", ranks)})
		}
	}
	rows := parseCollTable(out)
	require.Len(t, rows, len(want), "one row per collective and algorithm")
	for i, r := range rows {
		assert.Equal(t, want[i], collTableRow{collective: r.collective, algorithm: r.algorithm, result: r.result}, "row %d", i)
		assert.Regexp(t, `^\d+\.\d+ m?s$`, r.time, "row %d", i)
		assert.NotEmpty(t, r.data, "row %d", i)
	}
	assert.Contains(t, out, fmt.Sprintf("%d runs of 10 collectives over %d ranks: all %d checked out on every rank", len(want), ranks, len(want)))
}

// assertFrame checks the data-frame step's result table against totals the
// test computes itself from the demo's generated rows, and its verdict.
func assertFrame(t *testing.T, out string, ranks, customers, orders int, seed uint64) {
	t.Helper()
	cust, ord := demoData(ranks, customers, orders, seed)
	region := map[int64]string{}
	for _, part := range cust {
		for _, c := range part {
			region[c.id] = c.region
		}
	}
	type total struct {
		orders, items int64
		revenue       float64
	}
	want := map[string]*total{}
	var joined int64
	for _, part := range ord {
		for _, o := range part {
			if r, ok := region[o.customer]; ok && o.customer != 0 {
				if want[r] == nil {
					want[r] = &total{}
				}
				want[r].orders++
				want[r].items += o.quantity
				want[r].revenue += o.amount
				joined++
			}
		}
	}

	var lines []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "region "):
			in = true
		case in && line == "":
			in = false
		case in:
			lines = append(lines, line)
		}
	}
	require.Len(t, lines, len(want), "one row per region")
	prev := math.Inf(1)
	for _, line := range lines {
		f := strings.Fields(line)
		require.Len(t, f, 5, line)
		w := want[f[0]]
		require.NotNil(t, w, "region %q", f[0])
		orders, _ := strconv.ParseInt(f[1], 10, 64)
		items, _ := strconv.ParseInt(f[2], 10, 64)
		revenue, _ := strconv.ParseFloat(f[3], 64)
		avg, _ := strconv.ParseFloat(f[4], 64)
		assert.Equal(t, w.orders, orders, line)
		assert.Equal(t, w.items, items, line)
		assert.InDelta(t, w.revenue, revenue, 0.006, line)
		assert.InDelta(t, w.revenue/float64(w.orders), avg, 0.006, line)
		assert.LessOrEqual(t, revenue, prev, "sorted by revenue, largest first: %s", line)
		prev = revenue
	}
	assert.Contains(t, out, fmt.Sprintf("%d orders joined to %d rows: the result matches the oracle", ranks*orders, joined))
	for _, phase := range []string{"partition", "exchange", "local join", "local aggregate", "gather"} {
		assert.Contains(t, out, "  "+phase+"  ", "the phase table shows %s", phase)
	}
}

func TestDemoUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--workers", "1"},
		{"--workers", "65"},
		{"--bytes", "x"},
		{"--punch-timeout", "0s"},
		{"stray"},
		{"--skip", "mesh"},
		{"--skip", "nothing"},
		{"--collectives", "some"},
		{"--coll-bytes", "1GiB"},
		{"--orders", "-1"},
		{"--customers", "0"},
	} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, 2, run(context.Background(), append([]string{"demo"}, args...), &stdout, &stderr), "%v", args)
		assert.NotEmpty(t, stderr.String(), "%v", args)
	}
}

// TestCollCases runs the demo's collectives and their checks over
// in-process communicators: at rank counts the demo's netsim runs do not
// cover, with every algorithm, and with sizes that round to nothing.
func TestCollCases(t *testing.T) {
	for _, tc := range []struct{ p, n int }{{2, 0}, {2, 1000}, {3, 4096}, {5, 10000}, {9, 777}} {
		t.Run(fmt.Sprintf("p=%d,n=%d", tc.p, tc.n), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			comms, err := collective.Local(ctx, tc.p)
			require.NoError(t, err)
			defer func() {
				for _, c := range comms {
					c.Close()
				}
			}()
			cases := collCases(tc.p, tc.n, 3)
			require.Len(t, cases, len(demoCollectiveOps))
			var rows []collRow
			for i := range cases {
				assert.Equal(t, demoCollectiveOps[i], cases[i].op)
				for _, a := range append([]collective.Algorithm{collective.Auto}, collective.Algorithms(cases[i].op)...) {
					rows = append(rows, collRow{c: &cases[i], algo: a, run: cases[i].newRun()})
				}
			}
			line := newLineUp(tc.p)
			errs := make([][]error, tc.p)
			var wg sync.WaitGroup
			for r, c := range comms {
				wg.Go(func() {
					for _, row := range rows {
						o := runCollRow(ctx, c, row, line)
						assert.False(t, o.end.Before(o.start))
						errs[r] = append(errs[r], o.err)
					}
				})
			}
			wg.Wait()
			for r := range errs {
				for i, err := range errs[r] {
					assert.NoError(t, err, "rank %d, %v with %v", r, rows[i].c.op, rows[i].algo)
				}
			}
		})
	}
}

// TestDemoChecks shows that the demo's comparisons catch what they are for.
func TestDemoChecks(t *testing.T) {
	assert.NoError(t, sameBytes("x", []byte{1, 2, 3}, []byte{1, 2, 3}))
	assert.EqualError(t, sameBytes("x", []byte{1, 2, 3}, []byte{1, 2, 4}), "x: byte 2 is 0x03, want 0x04")
	assert.EqualError(t, sameBytes("x", []byte{1, 2}, []byte{1, 2, 3}), "x: 2 bytes, want 3")
	assert.EqualError(t, sameBlocks("r", [][]byte{{1}, {2}}, [][]byte{{1}, {3}}), "r: block from rank 1: byte 0 is 0x02, want 0x03")
	assert.EqualError(t, sameValues([]float64{1, 2.5}, []float64{1, 2.25}), "element 1 is 2.5, want 2.25")
	assert.EqualError(t, sameValues([]int64{1}, []int64{1, 2}), "1 elements, want 2")
	assert.NoError(t, kept([]byte{1, 2}, []byte{1, 2}))
	assert.EqualError(t, kept([]int64{1, 3}, []int64{1, 2}), "the collective changed this rank's input buffer")
	in := [][]byte{{1, 2}, {3}}
	mine := cloneBlocks(in)
	mine[1][0] = 9 // a row's copy is its own: the oracle stays as it was
	assert.Equal(t, [][]byte{{1, 2}, {3}}, in)

	// The oracle, by hand: customer 1 in eu, 2 in us; order 4's customer
	// does not exist and order 5 has none.
	cust := [][]demoCustomer{{{id: 1, region: "eu"}}, {{id: 2, region: "us"}}}
	ord := [][]demoOrder{
		{{id: 1, customer: 1, quantity: 2, amount: 10}, {id: 2, customer: 2, quantity: 1, amount: 30}},
		{{id: 3, customer: 1, quantity: 3, amount: 5}, {id: 4, customer: 9, quantity: 1, amount: 99}, {id: 5, quantity: 1, amount: 7}},
	}
	joined, totals := frameOracle(cust, ord)
	assert.Equal(t, int64(3), joined)
	want := []regionTotal{
		{region: "us", orders: 1, items: 1, revenue: 30, avgOrder: 30},
		{region: "eu", orders: 2, items: 5, revenue: 15, avgOrder: 7.5},
	}
	assert.Equal(t, want, totals)
	assert.NoError(t, checkTotals(want, totals))
	off := slices.Clone(want)
	off[1].revenue += 1e-6
	assert.ErrorContains(t, checkTotals(off, totals), "row 1 is")
	assert.ErrorContains(t, checkTotals(want[:1], totals), "1 rows, want 2")
	swapped := []regionTotal{want[1], want[0]}
	assert.ErrorContains(t, checkTotals(swapped, totals), "row 0 is")

	// Generated data: reproducible from the seed, every worker its share.
	c1, o1 := demoData(4, 1000, 200, 9)
	c2, o2 := demoData(4, 1000, 200, 9)
	assert.Equal(t, c1, c2)
	assert.Equal(t, o1, o2)
	n := 0
	for r := range c1 {
		n += len(c1[r])
		assert.Len(t, o1[r], 200)
	}
	assert.Equal(t, 1000, n)
}

// An interrupted demo runs no further step and says why: it used to go on
// into each remaining step, report each as FAILED with "context canceled",
// and never mention the interrupt.
func TestDemoInterrupted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		status, out, stderr := interruptedDemo(0, func(s []demoStep, interrupt demoStep) []demoStep {
			return []demoStep{s[0], interrupt, s[1], s[2]}
		}, "--workers", "2", "--bytes", "1KiB")
		assert.Equal(t, 1, status)
		assert.Contains(t, out, "all 1 verified")
		assert.NotContains(t, out, "collectives over the mesh")
		assert.NotContains(t, out, "data frames over the mesh")
		assert.Regexp(t, `\neverything checked out \(mesh, interrupt\) in .*; stopped \(interrupt signal received\), not run: collectives, frame\n$`, out)
		assert.Contains(t, stderr, "not run: collectives, frame: interrupt signal received")
	})
}

// Interrupted during the collectives step, the demo runs no further
// collective: the row in flight fails (its error naming the rank once) and
// the rest are "not run", with the reason. It used to run all 26 rows on the
// cancelled communicators, print each as FAILED with the same error, and
// name the rank twice in it ("rank 0: collective: rank 0: barrier: ...").
func TestDemoInterruptedInCollectives(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Fires 1 ms (of the bubble's time) into the first collective, a
		// barrier that takes at least a 4 ms round trip.
		status, out, stderr := interruptedDemo(time.Millisecond, func(s []demoStep, interrupt demoStep) []demoStep {
			return []demoStep{s[0], interrupt, s[1], s[2]}
		}, "--workers", "3", "--bytes", "1KiB", "--latency", "2ms", "--coll-bytes", "4KiB")
		t.Log("\n" + out)
		assert.Equal(t, 1, status)
		rows := parseCollTable(out)
		require.NotEmpty(t, rows)
		assert.Regexp(t, `^FAILED on 3 of 3 ranks: collective: rank \d: barrier: interrupt signal received$`, rows[0].result)
		for _, r := range rows[1:] {
			assert.Equal(t, "not run", r.result, "%s %s", r.collective, r.algorithm)
		}
		n := len(rows)
		assert.Contains(t, out, fmt.Sprintf("\n%d runs of 10 collectives over 3 ranks: 1 of %d FAILED, %d not run (interrupt signal received), in ", n, n, n-1))
		assert.Regexp(t, `\nFAILED: collectives \(mesh, interrupt, collectives\) in .*; stopped \(interrupt signal received\), not run: frame\n$`, out)
		assert.Contains(t, stderr, fmt.Sprintf("collectives: 1 of %d collective runs failed, %d not run: interrupt signal received", n, n-1))
	})
}

// A failed check says which rank saw it; the collective's own errors
// already do, and pass unchanged.
func TestRunCollRowNamesRankOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	comms, err := collective.Local(ctx, 2)
	require.NoError(t, err)
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	c := comms[1]
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"mismatch", sameValues([]int64{1, 2}, []int64{1, 3}), "rank 1: element 1 is 2, want 3"},
		{"collective", errors.New("collective: bcast: rank 1: link to rank 0: peer closed the link"), "collective: bcast: rank 1: link to rank 0: peer closed the link"},
		{"none", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := collCase{op: collective.OpBcast}
			row := collRow{c: &cc, algo: collective.Auto, run: func(context.Context, *collective.Comm) error { return tc.err }}
			o := runCollRow(ctx, c, row, newLineUp(1))
			require.True(t, o.ran)
			if tc.want == "" {
				require.NoError(t, o.err)
				return
			}
			require.EqualError(t, o.err, tc.want)
		})
	}
	// Once ctx is done, the row is not run at all.
	done, stop := context.WithCancel(ctx)
	stop()
	ran := false
	o := runCollRow(done, c, collRow{c: &collCase{op: collective.OpBcast}, algo: collective.Auto,
		run: func(context.Context, *collective.Comm) error { ran = true; return nil }}, newLineUp(1))
	assert.False(t, o.ran)
	assert.False(t, ran)
}

// Interrupted while the mesh is being made, the demo says it was stopped
// and which steps it did not run; it used to say only "FAILED: mesh".
func TestDemoInterruptedInMesh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		status, out, stderr := interruptedDemo(10*time.Millisecond, func(s []demoStep, interrupt demoStep) []demoStep {
			return []demoStep{interrupt, s[0], s[1], s[2]}
		}, "--workers", "3", "--bytes", "1KiB", "--latency", "2ms")
		t.Log("\n" + out)
		assert.Equal(t, 1, status)
		assert.Regexp(t, `\nFAILED: mesh \(interrupt, mesh\) in .*; stopped \(interrupt signal received\), not run: collectives, frame\n$`, out)
		assert.Contains(t, stderr, "not run: collectives, frame: interrupt signal received")
	})
}

// Interrupted during the data-frame job, the demo reports the failure with
// the rank named by the frame package alone; it used to put its own in
// front ("rank 0: frame: rank 0: join: ...").
func TestDemoInterruptedInFrame(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		status, out, stderr := interruptedDemo(5*time.Millisecond, func(s []demoStep, interrupt demoStep) []demoStep {
			return []demoStep{s[0], interrupt, s[2]}
		}, "--workers", "3", "--bytes", "1KiB", "--latency", "2ms", "--orders", "300", "--customers", "50")
		t.Log("\n" + out)
		assert.Equal(t, 1, status)
		assert.Regexp(t, `\nthe job FAILED: frame: [^\n]*rank \d: [^\n]*interrupt signal received\n`, out)
		assert.Regexp(t, `^fnmesh demo: frame: the job failed: frame: [^\n]*rank \d: [^\n]*interrupt signal received\n$`, stderr)
	})
}

// interruptedDemo runs "fnmesh demo args" with its steps replaced by
// steps(the demo's own, interrupt), where interrupt is a step that cancels
// the run's context as SIGINT does ("interrupt signal received"), delay
// after it starts (at once if 0) and returns at once. It returns the exit
// status, stdout and stderr. Call it in a synctest bubble: the delays are
// the bubble's time.
func interruptedDemo(delay time.Duration, steps func(demo []demoStep, interrupt demoStep) []demoStep, args ...string) (status int, stdout, stderr string) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	saved := demoSteps
	defer func() { demoSteps = saved }()
	stop := func() { cancel(errors.New("interrupt signal received")) }
	interrupt := demoStep{"interrupt", func(context.Context, *demoEnv) error {
		if delay == 0 {
			stop()
		} else {
			time.AfterFunc(delay, stop)
		}
		return nil
	}}
	demoSteps = steps(saved, interrupt)
	var out, errOut bytes.Buffer
	status = run(ctx, append([]string{"demo"}, args...), &out, &errOut)
	return status, out.String(), errOut.String()
}
