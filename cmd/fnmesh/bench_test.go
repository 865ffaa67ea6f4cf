package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/collective"
	"github.com/fnmesh/fnmesh/internal/osu"
)

// buildFnmesh builds this command into a temporary directory: bench starts
// its workers by re-executing its own binary, so the test runs the real one.
func buildFnmesh(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fnmesh")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func TestBenchEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes over loopback TCP; skipped with -short")
	}
	bin := buildFnmesh(t)
	// np=2 measures the MPI-style calls into prepared buffers (the default),
	// np=3 the allocating ones.
	for _, np := range []int{2, 3} {
		alloc := np == 3
		t.Run(fmt.Sprintf("np=%d", np), func(t *testing.T) {
			dir := t.TempDir()
			csvPath, jsonPath, pngPath := filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.json"), filepath.Join(dir, "r.png")
			cfg := osu.DefaultConfig()
			cfg.MinSize, cfg.MaxSize, cfg.LargeSize = 1, 4<<10, 1<<10
			cfg.Iterations, cfg.Warmup, cfg.LargeIterations, cfg.LargeWarmup = 20, 2, 5, 1
			cfg.Window, cfg.BWLargeIterations, cfg.BWLargeWarmup = 8, 3, 1
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "bench", "-np", strconv.Itoa(np),
				"-min", "1", "-max", "4K", "-large", "1K", "-iters", "20", "-warmup", "2",
				"-iters-large", "5", "-warmup-large", "1", "-window", "8", "-bw-iters-large", "3", "-bw-warmup-large", "1",
				"-csv", csvPath, "-json", jsonPath, "-png", pngPath, "-timeout", "2m", fmt.Sprintf("-alloc=%v", alloc))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.NoError(t, cmd.Run(), "stderr:\n%s", stderr.String())

			// What must be there: every op at every size it applies to.
			type row struct {
				op   string
				size int
			}
			var want []row
			want = append(want, row{"barrier", 0})
			for _, op := range []string{"bcast", "allgather", "alltoallv", "allreduce", "latency", "bw"} {
				for _, s := range cfg.Sizes() {
					if op != "allreduce" || s >= 4 {
						want = append(want, row{op, s})
					}
				}
			}

			f, err := os.Open(csvPath)
			require.NoError(t, err)
			defer f.Close()
			results, err := osu.ReadCSV(f)
			require.NoError(t, err)
			require.Len(t, results, len(want))
			for i, r := range results {
				assert.Equal(t, want[i], row{r.Op, r.Size})
				assert.Equal(t, np, r.Ranks)
				iters, _ := cfg.Counts(r.Size)
				if r.Op == "bw" && r.Size > cfg.LargeSize {
					iters = cfg.BWLargeIterations
				}
				assert.Equal(t, iters, r.Iterations, "%+v", r)
				assert.Greater(t, r.AvgUs, 0.0, "%+v", r)
				assert.Less(t, r.AvgUs, 1e6, "a call under a second on loopback: %+v", r)
				assert.LessOrEqual(t, r.MinUs, r.AvgUs+0.002, "%+v", r)
				assert.GreaterOrEqual(t, r.MaxUs, r.AvgUs-0.002, "%+v", r)
				// MB/s is the size over the time per call (bytes per µs);
				// the CSV rounds both to 3 decimals (so a byte that takes
				// milliseconds on a loaded machine shows 0.000), which moves
				// the quotient by up to 0.0005 µs in AvgUs and 0.0005 in MBps.
				want := float64(r.Size) / r.AvgUs
				assert.InDelta(t, want, r.MBps, 0.001+want*0.001/r.AvgUs, "%+v", r)
			}

			// The table on stdout has a line per result, plus header lines.
			out := stdout.String()
			assert.Contains(t, out, fmt.Sprintf("fnmesh bench: np=%d", np))
			assert.Regexp(t, `(?m)^op\s+np\s+size\s+iters\s+avg us\s+min us\s+max us\s+MB/s$`, out)
			for _, r := range results {
				assert.Regexp(t, fmt.Sprintf(`(?m)^%s\s+%d\s+%s\s+%d\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+|-)$`, r.Op, np, osu.FormatSize(r.Size), r.Iterations), out)
			}

			// The JSON report holds the same results (CSV rounds to 3 decimals).
			jf, err := os.Open(jsonPath)
			require.NoError(t, err)
			defer jf.Close()
			rep, err := osu.ReadJSON(jf)
			require.NoError(t, err)
			assert.Equal(t, "fnmesh", rep.Tool)
			assert.Equal(t, cfg, rep.Config)
			// By default each worker gets its share of the CPUs.
			wantOpts := []string{fmt.Sprintf("GOMAXPROCS=%d", max(1, runtime.NumCPU()/np))}
			if alloc {
				wantOpts = append(wantOpts, "api=allocating")
			}
			assert.Equal(t, wantOpts, rep.Options)
			assert.Contains(t, rep.Command, "fnmesh bench -np "+strconv.Itoa(np))
			require.Len(t, rep.Results, len(results))
			for i, r := range rep.Results {
				assert.Equal(t, results[i].Op, r.Op)
				assert.Equal(t, results[i].Size, r.Size)
				assert.InDelta(t, results[i].AvgUs, r.AvgUs, 0.001)
			}

			pf, err := os.Open(pngPath)
			require.NoError(t, err)
			defer pf.Close()
			img, err := png.Decode(pf)
			require.NoError(t, err)
			assert.Greater(t, img.Bounds().Dx(), 500)
		})
	}
}

func TestBenchFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-np", "0"}, "-np 0"},
		{[]string{"-ops", "allgather,nope"}, `unknown operation "nope"`},
		{[]string{"-np", "1", "-ops", "bcast,latency,bw"}, "-ops latency,bw: point-to-point measurements need -np 2"},
		{[]string{"-min", "1K", "-max", "1"}, "below the minimum"},
		{[]string{"-max", "12Q"}, "want a byte count"},
		{[]string{"-algo", "allreduce"}, "want op=algorithm"},
		{[]string{"-iters", "0"}, "iterations must be at least 1"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		// A zero or negative -timeout used to start the workers and fail
		// (exit 1) with "starting worker 0: context deadline exceeded".
		{[]string{"-timeout", "0"}, "-timeout 0s: want a positive duration"},
		{[]string{"-timeout", "-1s"}, "-timeout -1s: want a positive duration"},
		// Both used to be found by every worker once started (exit 1).
		{[]string{"-algo", "allreduce=nope"}, `allreduce has no algorithm "nope"`},
		{[]string{"-algo", "latency=fast"}, `no collective "latency"`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"bench"}, tc.args...), &stdout, &stderr)
		assert.Equal(t, 2, code, "%v", tc.args)
		assert.Contains(t, stderr.String(), tc.want, "%v", tc.args)
	}
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, run(context.Background(), []string{"bench", "-h"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "-np")
}

func TestParseAlgorithm(t *testing.T) {
	a, err := parseAlgorithm("allreduce=ring")
	require.NoError(t, err)
	assert.Equal(t, collective.AllreduceRing, a)
	a, err = parseAlgorithm("allgather=recursive-doubling")
	require.NoError(t, err)
	assert.Equal(t, collective.AllgatherRecursiveDoubling, a)
	_, err = parseAlgorithm("allreduce=nope")
	assert.ErrorContains(t, err, "have recursive-doubling, rabenseifner, ring")
	_, err = parseAlgorithm("latency=fast")
	assert.ErrorContains(t, err, `no collective "latency"`)
}

func TestBenchCompare(t *testing.T) {
	dir := t.TempDir()
	// Open MPI's side of the fixture, and ours computed from it with known factors.
	var theirs, ours []osu.Result
	factor := map[string]float64{"allgather": 0.9, "allreduce": 1.2, "latency": 1.5, "bw": 1.25}
	for _, np := range []int{2, 4} {
		for _, op := range []string{"allgather", "allreduce", "latency", "bw"} {
			for _, size := range []int{8, 1 << 20, 2 << 20} {
				t0 := float64(size)/1000 + 5
				r := osu.Result{Op: op, Ranks: np, Size: size, Iterations: 100, AvgUs: t0, MinUs: t0, MaxUs: t0, MBps: float64(size) / t0}
				theirs = append(theirs, r)
				r.AvgUs *= factor[op]
				r.MinUs, r.MaxUs, r.MBps = r.AvgUs, r.AvgUs, float64(size)/r.AvgUs
				ours = append(ours, r)
			}
		}
	}
	writeCSV := func(name string, rs []osu.Result) string {
		p := filepath.Join(dir, name)
		var b bytes.Buffer
		require.NoError(t, osu.WriteCSV(&b, rs))
		require.NoError(t, os.WriteFile(p, b.Bytes(), 0o644))
		return p
	}
	oursCSV, theirsCSV := writeCSV("ours.csv", ours), writeCSV("theirs.csv", theirs)
	var jb bytes.Buffer
	require.NoError(t, osu.WriteJSON(&jb, osu.Report{Tool: "fnmesh", Results: ours}))
	oursJSON := filepath.Join(dir, "ours.json")
	require.NoError(t, os.WriteFile(oursJSON, jb.Bytes(), 0o644))
	// ceiling: bw at 2 MiB, np=2, is size/(1.25*(2097.152+5)) us = 797.7 MB/s; make it 90% of the ceiling.
	best := float64(2<<20) / (1.25 * (float64(2<<20)/1000 + 5))
	iperf := filepath.Join(dir, "iperf3.json")
	require.NoError(t, os.WriteFile(iperf, fmt.Appendf(nil, `{"end":{"sum_received":{"bits_per_second":%f}}}`, best/0.9*8e6), 0o644))
	pngPath := filepath.Join(dir, "ratio.png")

	for _, oursPath := range []string{oursCSV, oursJSON} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"bench", "compare", "-iperf3", iperf, "-png", pngPath,
			"-names", "fnmesh,openmpi", oursPath, theirsCSV}, &stdout, &stderr)
		require.Equal(t, 0, code, stderr.String())
		out := stdout.String()
		assert.Regexp(t, `(?m)^op\s+np\s+size\s+fnmesh us\s+openmpi us\s+ratio$`, out)
		assert.Regexp(t, `(?m)^allgather\s+4\s+1M\s+948\.22\s+1053\.58\s+0\.900$`, out)
		assert.Regexp(t, `(?m)^allreduce\s+2\s+2M\s+2522\.58\s+2102\.15\s+1\.200\s+slower$`, out)
		assert.Regexp(t, `(?m)^MET\s+np=4\s+allgather >= 1M: ratio <= 1\.00\s+worst 0\.900`, out)
		assert.Regexp(t, `(?m)^BEHIND\s+np=2\s+allreduce >= 1M: ratio <= 1\.00\s+worst 1\.200`, out)
		assert.Regexp(t, `(?m)^MET\s+np=2\s+latency 8 B: ratio <= 2\.00\s+`, out)
		assert.Regexp(t, `(?m)^MET\s+np=2\s+bw >= 1M: >= 80% of the TCP ceiling\s+best 798 MB/s at 2M = 90\.0% of 887 MB/s$`, out)
		assert.Contains(t, out, "bw    2M:     798 MB/s =  90.0%")
		f, err := os.Open(pngPath)
		require.NoError(t, err)
		_, err = png.Decode(f)
		f.Close()
		require.NoError(t, err)
	}

	var stdout, stderr bytes.Buffer
	assert.Equal(t, 3, run(context.Background(), []string{"bench", "compare", "-strict", oursCSV, theirsCSV}, &stdout, &stderr),
		"-strict: a missed target is exit status 3")
	barrierOnly := func(name string, us float64) string {
		return writeCSV(name, []osu.Result{{Op: "barrier", Ranks: 2, Size: 0, Iterations: 10, AvgUs: us, MinUs: us, MaxUs: us}})
	}
	stderr.Reset()
	assert.Equal(t, 3, run(context.Background(), []string{"bench", "compare", "-strict", barrierOnly("b1.csv", 10), barrierOnly("b2.csv", 9)}, &stdout, &stderr),
		"-strict: no target checked is not a pass")
	assert.Contains(t, stderr.String(), "no target could be checked")
	stderr.Reset()
	assert.Equal(t, 1, run(context.Background(), []string{"bench", "compare", oursCSV, filepath.Join(dir, "missing.csv")}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "missing.csv")
	stderr.Reset()
	assert.Equal(t, 2, run(context.Background(), []string{"bench", "compare", oursCSV}, &stdout, &stderr))
}

// The progress bar is drawn only on a terminal unless asked for: it used to
// fill a redirected stderr with carriage-return redraws.
func TestBenchProgressDefault(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseBenchFlags(nil, &stderr)
	require.NoError(t, err)
	assert.False(t, o.progress, "no bar on a buffer")
	o, err = parseBenchFlags([]string{"-progress"}, &stderr)
	require.NoError(t, err)
	assert.True(t, o.progress, "-progress asks for it anyway")
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, isTerminal(f), "a file is no terminal")
}

// The output files are checked before the run: a -csv into a directory that
// does not exist used to fail only once the whole run was over, its results
// lost. The check starts no worker.
func TestBenchOutputsCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "-np", "1", "-ops", "barrier", "-min", "1", "-max", "1",
		"-csv", filepath.Join(dir, "missing", "r.csv"), "-json", dir, "-png", filepath.Join(dir, "ok.png")}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout.String())
	assert.Contains(t, stderr.String(), "-csv "+filepath.Join(dir, "missing", "r.csv")+": cannot create a file in "+filepath.Join(dir, "missing"))
	assert.Contains(t, stderr.String(), "-json "+dir+": is a directory")
	assert.NotContains(t, stderr.String(), "-png")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "the check leaves nothing behind")
}

// bench compare refuses what it cannot compare, and says which file and why.
func TestBenchCompareBadInputs(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	const header = "op,np,size,iterations,avg_us,min_us,max_us,mb_per_s\n"
	good := file("good.csv", header+"allreduce,2,8,5,13.3,7.8,18.7,0.6\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		// NaN and Inf used to pass, into a ratio of NaN or 0.000.
		{"NaN", []string{good, file("nan.csv", header+"allreduce,2,8,5,NaN,1,1,1\n")}, 1, `nan.csv: osu: csv line 2: avg_us "NaN": not a non-negative number`},
		{"Inf", []string{file("inf.csv", header+"allreduce,2,8,5,Inf,1,1,1\n"), good}, 1, `inf.csv: osu: csv line 2: avg_us "Inf": not a non-negative number`},
		{"negative in JSON", []string{good, file("neg.json", `{"results":[{"op":"allreduce","np":2,"size":8,"avg_us":-1}]}`)}, 1, "neg.json: osu: json report: result 1: allreduce np=2 size 8: avg_us -1: not a finite non-negative number"},
		{"no results", []string{good, file("none.json", "{}")}, 1, "none.json: no results"},
		{"empty", []string{good, file("empty.csv", "\n \n")}, 1, "empty.csv: empty"},
		// A directory used to be reported as "empty".
		{"directory", []string{good, dir}, 1, "reading " + dir + ": read " + dir + ": is a directory"},
		{"three names", []string{"-names", "a,b,c", good, good}, 2, `-names "a,b,c": want two names`},
		{"empty name", []string{"-names", ",b", good, good}, 2, `-names ",b": want two names`},
		{"empty iperf3 file", []string{"-iperf3", ",", good, good}, 2, `-iperf3 ",": an empty file name`},
		// Checked first: the table used to be printed, then the PNG fail.
		{"unwritable png", []string{"-png", filepath.Join(dir, "missing", "r.png"), good, good}, 1, "-png " + filepath.Join(dir, "missing", "r.png") + ": cannot create a file in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"bench", "compare"}, tc.args...), &stdout, &stderr)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, stderr.String(), tc.want)
			assert.Empty(t, stdout.String())
		})
	}
}

// An unknown congestion control used to be accepted: the links quietly kept
// the system's, and the report named the one asked for.
func TestBenchCongestionChecked(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_CONGESTION is Linux's")
	}
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 2, run(context.Background(), []string{"bench", "-congestion", "no-such-cc"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), `-congestion "no-such-cc": not available here`)
	_, err := parseBenchFlags([]string{"-congestion", ""}, &stderr)
	assert.NoError(t, err, `"" keeps the system's`)
	_, err = parseBenchFlags([]string{"-congestion", "reno"}, &stderr)
	assert.NoError(t, err, "reno is built into every Linux kernel")
}
