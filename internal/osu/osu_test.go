package osu

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
)

func TestParseAndFormatSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		text string
	}{
		{"1", 1, "1"}, {"1000", 1000, "1000"}, {"8K", 8192, "8K"}, {"8KiB", 8192, "8K"},
		{"16M", 16 << 20, "16M"}, {"1MiB", 1 << 20, "1M"}, {"1G", 1 << 30, "1G"}, {"3072", 3072, "3K"},
		// Units in either case, with or without B or iB (8kb was refused).
		{"8k", 8192, "8K"}, {"8KB", 8192, "8K"}, {"16mib", 16 << 20, "16M"}, {"1 gb", 1 << 30, "1G"}, {"5B", 5, "5"},
	} {
		got, err := ParseSize(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
		assert.Equal(t, tc.text, FormatSize(got), tc.in)
	}
	for _, bad := range []string{"", "x", "-1", "+1", "1.5M", "K", "3G", "1Mi", "1T", "0x10"} {
		_, err := ParseSize(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestConfig(t *testing.T) {
	c := DefaultConfig()
	require.NoError(t, c.Validate())
	sizes := c.Sizes()
	require.Len(t, sizes, 25)
	assert.Equal(t, 1, sizes[0])
	assert.Equal(t, 16<<20, sizes[24])
	it, wu := c.Counts(8192)
	assert.Equal(t, [2]int{1000, 100}, [2]int{it, wu})
	it, wu = c.Counts(16384)
	assert.Equal(t, [2]int{100, 10}, [2]int{it, wu})
	it, wu = c.bwCounts(1 << 20)
	assert.Equal(t, [2]int{20, 2}, [2]int{it, wu})

	for name, mod := range map[string]func(*Config){
		"zero min":      func(c *Config) { c.MinSize = 0 },
		"max below min": func(c *Config) { c.MaxSize = 0 },
		"no iterations": func(c *Config) { c.LargeIterations = 0 },
		"neg warmup":    func(c *Config) { c.Warmup = -1 },
		"no window":     func(c *Config) { c.Window = 0 },
	} {
		bad := DefaultConfig()
		mod(&bad)
		assert.Error(t, bad.Validate(), name)
	}
}

func TestSteps(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MinSize, cfg.MaxSize = 1, 16
	noop := func(int) (Case, error) { return Case{}, nil }
	benches := []Benchmark{Barrier(nil), Collective("allreduce", 4, noop), Latency()}

	var got []string
	for _, s := range Steps(cfg, 2, benches) {
		got = append(got, fmt.Sprintf("%s/%d", s.Bench.Name, s.Size))
	}
	assert.Equal(t, []string{"barrier/0", "allreduce/4", "allreduce/8", "allreduce/16",
		"latency/1", "latency/2", "latency/4", "latency/8", "latency/16"}, got)
	assert.Len(t, Steps(cfg, 1, benches), 4, "point-to-point needs two ranks")
}

// runAll runs steps on every rank of an in-process communicator and returns
// rank 0's results and what report saw.
func runAll(t *testing.T, np int, cfg Config, benches func(c *chanComm) []Benchmark) ([]Result, []Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	comms := newChanNet(np)
	var results, reported []Result
	g, ctx := errgroup.WithContext(ctx)
	for _, c := range comms {
		g.Go(func() error {
			res, err := Run(ctx, c, cfg, Steps(cfg, np, benches(c)), func(r Result) { reported = append(reported, r) })
			if c.Rank() == 0 {
				results = res
			} else {
				assert.Empty(t, res, "rank %d returns no results", c.Rank())
			}
			return err
		})
	}
	err := g.Wait()
	return results, reported, err
}

func allgatherBench(c *chanComm) Benchmark {
	return Collective("allgather", 1, func(size int) (Case, error) {
		mine := Pattern(size, c.Rank())
		var got [][]byte
		return Case{
			Call: func(ctx context.Context) (err error) {
				got, err = c.allgather(ctx, mine)
				return err
			},
			Check: func() error {
				for r := range c.Size() {
					if err := CheckBytes(fmt.Sprintf("block of rank %d", r), got[r], Pattern(size, r)); err != nil {
						return err
					}
				}
				return nil
			},
		}, nil
	})
}

func TestRunMeasuresEveryStep(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MinSize, cfg.MaxSize, cfg.LargeSize = 1, 1024, 64
	cfg.Iterations, cfg.Warmup, cfg.LargeIterations, cfg.LargeWarmup = 20, 2, 5, 1
	cfg.Window, cfg.BWLargeIterations, cfg.BWLargeWarmup = 4, 3, 1
	const np = 3
	results, reported, err := runAll(t, np, cfg, func(c *chanComm) []Benchmark {
		return []Benchmark{Barrier(c.Barrier), allgatherBench(c), Latency(), Bandwidth()}
	})
	require.NoError(t, err)
	assert.Equal(t, results, reported, "report sees every result as it comes")
	require.Len(t, results, 1+3*11)

	sizes := cfg.Sizes()
	for i, r := range results {
		assert.Equal(t, np, r.Ranks)
		assert.Greater(t, r.AvgUs, 0.0, "%+v", r)
		assert.LessOrEqual(t, r.MinUs, r.AvgUs*(1+1e-9), "%+v", r)
		assert.GreaterOrEqual(t, r.MaxUs, r.AvgUs*(1-1e-9), "%+v", r)
		if i == 0 {
			assert.Equal(t, Result{Op: "barrier", Ranks: np, Iterations: 20}, Result{Op: r.Op, Ranks: r.Ranks, Size: r.Size, Iterations: r.Iterations})
			assert.Zero(t, r.MBps)
			continue
		}
		op := []string{"allgather", "latency", "bw"}[(i-1)/11]
		size := sizes[(i-1)%11]
		assert.Equal(t, op, r.Op)
		assert.Equal(t, size, r.Size)
		wantIters, _ := cfg.Counts(size)
		if op == "bw" {
			wantIters, _ = cfg.bwCounts(size)
		}
		assert.Equal(t, wantIters, r.Iterations, "%+v", r)
		if op != "bw" {
			assert.InDelta(t, float64(size)/r.AvgUs, r.MBps, 1e-6*r.MBps, "%+v", r)
		}
	}
}

func TestRunReportsWrongResults(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MinSize, cfg.MaxSize = 4, 4
	cfg.Iterations, cfg.Warmup = 3, 1
	_, _, err := runAll(t, 2, cfg, func(c *chanComm) []Benchmark {
		return []Benchmark{Collective("broken", 1, func(size int) (Case, error) {
			return Case{
				Call:  func(context.Context) error { return nil },
				Check: func() error { return CheckBytes("rank 1's block", []byte{1, 2, 3, 5}, []byte{1, 2, 3, 4}) },
			}, nil
		})}
	})
	require.ErrorIs(t, err, ErrMismatch)
	assert.Contains(t, err.Error(), "broken at 4 B: wrong result: rank 1's block: byte 3 is 0x5, want 0x4")
}

func TestRunStopsOnCancel(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MinSize, cfg.MaxSize = 1, 1
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	comms := newChanNet(2)
	_, err := Run(ctx, comms[0], cfg, Steps(cfg, 2, []Benchmark{Latency()}), nil)
	require.ErrorIs(t, err, context.Canceled)
}

var fixture = []Result{
	{Op: "barrier", Ranks: 2, Size: 0, Iterations: 1000, AvgUs: 7.5, MinUs: 7.25, MaxUs: 7.75},
	{Op: "allgather", Ranks: 2, Size: 1 << 20, Iterations: 100, AvgUs: 250, MinUs: 240, MaxUs: 260, MBps: 4194.304},
	{Op: "allgather", Ranks: 2, Size: 2 << 20, Iterations: 100, AvgUs: 500.125, MinUs: 490, MaxUs: 510.25, MBps: 4193.256},
	{Op: "latency", Ranks: 2, Size: 8, Iterations: 1000, AvgUs: 12, MinUs: 12, MaxUs: 12, MBps: 0.667},
	{Op: "bw", Ranks: 2, Size: 1 << 20, Iterations: 20, AvgUs: 200, MinUs: 200, MaxUs: 200, MBps: 5242.88},
}

func TestCSVRoundTrip(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteCSV(&b, fixture))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 1+len(fixture))
	assert.Equal(t, "op,np,size,iterations,avg_us,min_us,max_us,mb_per_s", lines[0])
	assert.Equal(t, "allgather,2,1048576,100,250.000,240.000,260.000,4194.304", lines[2])

	// Two files concatenated, with a comment: the second header is skipped.
	doubled := b.String() + "# from another run\n" + b.String()
	got, err := ReadCSV(strings.NewReader(doubled))
	require.NoError(t, err)
	assert.Equal(t, append(append([]Result{}, fixture...), fixture...), got)

	for name, in := range map[string]string{
		"short row":    "allgather,2,8\n",
		"bad np":       "allgather,x,8,1,1,1,1,1\n",
		"negative avg": "allgather,2,8,1,-1,1,1,1\n",
		"empty op":     ",2,8,1,1,1,1,1\n",
	} {
		_, err := ReadCSV(strings.NewReader(in))
		assert.Error(t, err, name)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	rep := Report{Tool: "fnmesh", Command: "fnmesh bench -np 2", CPUs: 2, Config: DefaultConfig(),
		Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Elapsed: 1.5, Results: fixture}
	var b bytes.Buffer
	require.NoError(t, WriteJSON(&b, rep))
	assert.Contains(t, b.String(), `"avg_us": 250`)
	got, err := ReadJSON(&b)
	require.NoError(t, err)
	assert.Equal(t, rep, got)
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteTable(&b, fixture))
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	// header, 5 rows, and a blank line between each of the 4 blocks
	require.Len(t, lines, 1+5+3)
	assert.Regexp(t, `allgather\s+2\s+1M\s+100\s+250\.00\s+240\.00\s+260\.00\s+4194\.30`, lines[3])
	assert.Regexp(t, `barrier\s+2\s+0\s+1000\s+7\.50\s+7\.25\s+7\.75\s+-`, lines[1])
}

func TestWritePNG(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WritePNG(&b, "test", fixture))
	img, err := png.Decode(&b)
	require.NoError(t, err)
	assert.Greater(t, img.Bounds().Dx(), img.Bounds().Dy(), "two panels side by side")

	b.Reset()
	require.NoError(t, WriteRatioPNG(&b, "ratio", Compare(fixture, fixture)))
	_, err = png.Decode(&b)
	require.NoError(t, err)
}

func TestCompareAndTargets(t *testing.T) {
	// theirs: the fixture; ours: computed from it with known factors.
	theirs := fixture
	factor := map[string]float64{"barrier": 3, "allgather": 0.8, "latency": 2.5, "bw": 1.25}
	var ours []Result
	for _, r := range theirs {
		r.AvgUs *= factor[r.Op]
		if r.Op == "bw" {
			r.MBps /= factor[r.Op]
		}
		ours = append(ours, r)
	}
	ours[2].AvgUs = theirs[2].AvgUs * 1.1 // allgather 2 MiB slower
	ours = append(ours, Result{Op: "allreduce", Ranks: 2, Size: 4, AvgUs: 9})

	ratios := Compare(ours, theirs)
	require.Len(t, ratios, len(theirs), "rows missing from theirs are left out")
	for i, r := range ratios {
		assert.InDelta(t, ours[i].AvgUs/theirs[i].AvgUs, r.Ratio, 1e-12, r.Op)
	}
	assert.InDelta(t, 3.0, ratios[0].Ratio, 1e-12)
	assert.InDelta(t, 1.1, ratios[2].Ratio, 1e-12)

	vs := DefaultTargets().Check(ratios, ours, 5242.88)
	require.Len(t, vs, 3)
	assert.Equal(t, Verdict{Target: "allgather >= 1M: ratio <= 1.00", Ranks: 2, Met: false,
		Detail: "worst 1.100 at 2M over 2 sizes"}, vs[0])
	assert.False(t, vs[1].Met, "latency 2.5x")
	assert.Equal(t, "latency 8 B: ratio <= 2.00", vs[1].Target)
	assert.True(t, vs[2].Met, "bw at 80%%: %s", vs[2].Detail)
	assert.Equal(t, "best 4194 MB/s at 1M = 80.0% of 5243 MB/s", vs[2].Detail)

	var b bytes.Buffer
	require.NoError(t, WriteVerdicts(&b, vs))
	assert.Contains(t, b.String(), "BEHIND  np=2  allgather")
	b.Reset()
	require.NoError(t, WriteRatios(&b, "fnmesh", "openmpi", ratios))
	assert.Regexp(t, `allgather\s+2\s+2M\s+550\.14\s+500\.12\s+1\.100\s+slower`, b.String())
}

func TestReadIperf3(t *testing.T) {
	mbps, err := ReadIperf3(strings.NewReader(`{"start":{},"end":{"sum_sent":{"bits_per_second":4.1e10},"sum_received":{"bits_per_second":4e10}}}`))
	require.NoError(t, err)
	assert.InDelta(t, 5000.0, mbps, 1e-9)
	_, err = ReadIperf3(strings.NewReader(`{"error":"unable to connect to server"}`))
	assert.ErrorContains(t, err, "unable to connect")
	_, err = ReadIperf3(strings.NewReader(`{"end":{}}`))
	assert.Error(t, err)
}

func TestBest(t *testing.T) {
	runs := []Result{
		{Op: "allgather", Ranks: 2, Size: 8, AvgUs: 30},
		{Op: "latency", Ranks: 2, Size: 8, AvgUs: 12},
		{Op: "allgather", Ranks: 2, Size: 8, AvgUs: 20}, // a second, faster run
		{Op: "allgather", Ranks: 4, Size: 8, AvgUs: 50}, // another rank count: its own row
		{Op: "latency", Ranks: 2, Size: 8, AvgUs: 15},
	}
	assert.Equal(t, []Result{runs[2], runs[1], runs[3]}, Best(runs))

	ratios := Compare(runs, []Result{{Op: "allgather", Ranks: 2, Size: 8, AvgUs: 40}, {Op: "allgather", Ranks: 2, Size: 8, AvgUs: 10}})
	require.Len(t, ratios, 1)
	assert.Equal(t, Ratio{Op: "allgather", Ranks: 2, Size: 8, OursUs: 20, TheirsUs: 10, Ratio: 2}, ratios[0])
}

// intoComm adds RecvInto to chanComm and counts its calls.
type intoComm struct {
	*chanComm
	calls *atomic.Int64
}

func (c intoComm) RecvInto(ctx context.Context, src, tag int, buf []byte) (int, error) {
	c.calls.Add(1)
	b, err := c.Recv(ctx, src, tag)
	if err != nil {
		return 0, err
	}
	if len(b) > len(buf) {
		return 0, fmt.Errorf("%d-byte message into a %d-byte buffer", len(b), len(buf))
	}
	return copy(buf, b), nil
}

func TestPointToPointReceivesIntoBuffers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MinSize, cfg.MaxSize = 1, 64
	cfg.Iterations, cfg.Warmup, cfg.Window = 10, 1, 4
	var calls atomic.Int64
	comms := newChanNet(2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	for _, c := range comms {
		g.Go(func() error {
			ic := intoComm{c, &calls}
			_, err := Run(ctx, ic, cfg, Steps(cfg, 2, []Benchmark{Latency(), Bandwidth()}), nil)
			return err
		})
	}
	require.NoError(t, g.Wait())
	// 7 sizes; latency: 11 receives on each of two ranks; bw: 11*(4 on rank 1 + 1 ack on rank 0)
	assert.Equal(t, int64(7*(2*11+11*5)), calls.Load())
}
