package osu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// Ratio compares one operation at one size and rank count between two runs.
type Ratio struct {
	Op       string  `json:"op"`
	Ranks    int     `json:"np"`
	Size     int     `json:"size"`
	OursUs   float64 `json:"ours_us"`
	TheirsUs float64 `json:"theirs_us"`
	// Ratio is OursUs / TheirsUs: at most 1.0 means ours is at least as fast.
	// It is judged (WriteRatios' "slower", Targets.Check) at the precision it
	// is printed with, 3 decimals: see Judged.
	Ratio float64 `json:"ratio"`
}

// Judged is the ratio as it is printed and judged: rounded to 3 decimals.
// A ratio that prints as 1.000 is a tie, neither slower nor behind a
// "ratio <= 1" target, whatever lies below the third decimal: a CSV file
// carries its times to 0.001 us and a JSON report all their digits, and the
// rounding of one file is not to decide a verdict that the table, showing
// 1.000, would contradict.
func (r Ratio) Judged() float64 { return math.Round(r.Ratio*1000) / 1000 }

type rowKey struct {
	op       string
	np, size int
}

func keyOf(r Result) rowKey { return rowKey{r.Op, r.Ranks, r.Size} }

// Best keeps one row per (op, np, size): the one with the lowest average
// time, in the order each first appears. Several runs concatenated thus
// count as their best, the usual way to see through a machine's noise.
func Best(results []Result) []Result {
	idx := map[rowKey]int{}
	var out []Result
	for _, r := range results {
		i, ok := idx[keyOf(r)]
		switch {
		case !ok:
			idx[keyOf(r)] = len(out)
			out = append(out, r)
		case r.AvgUs < out[i].AvgUs:
			out[i] = r
		}
	}
	return out
}

// Compare pairs the rows of two runs on (op, np, size), in the order of ours,
// and returns their ratios of average times. Rows present in only one run
// are left out; a row repeated within a run counts by its best (see Best).
func Compare(ours, theirs []Result) []Ratio {
	ours = Best(ours)
	ref := map[rowKey]Result{}
	for _, r := range Best(theirs) {
		ref[keyOf(r)] = r
	}
	var out []Ratio
	for _, r := range ours {
		t, ok := ref[keyOf(r)]
		if !ok || t.AvgUs <= 0 {
			continue
		}
		out = append(out, Ratio{Op: r.Op, Ranks: r.Ranks, Size: r.Size,
			OursUs: r.AvgUs, TheirsUs: t.AvgUs, Ratio: r.AvgUs / t.AvgUs})
	}
	return out
}

// Mismatches lists where two runs did not measure alike, by the rows each
// counts by (see Best): a row (op, np, size) that only one of them has, and
// a pair of rows timed over different numbers of calls. Compare leaves the
// first out of its ratios and pairs the second as if alike; ours and theirs
// name the runs in the lines, e.g. "bcast np=2 16: only in ours" or "bcast
// np=2 8: 200 calls in ours, 1000 in theirs".
func Mismatches(ours, theirs []Result, oursName, theirsName string) []string {
	ours, theirs = Best(ours), Best(theirs)
	index := func(rs []Result) map[rowKey]Result {
		m := make(map[rowKey]Result, len(rs))
		for _, r := range rs {
			m[keyOf(r)] = r
		}
		return m
	}
	mine, ref := index(ours), index(theirs)
	name := func(r Result) string { return fmt.Sprintf("%s np=%d %s", r.Op, r.Ranks, FormatSize(r.Size)) }
	var out []string
	for _, r := range ours {
		t, ok := ref[keyOf(r)]
		switch {
		case !ok:
			out = append(out, name(r)+": only in "+oursName)
		case t.Iterations != r.Iterations:
			out = append(out, fmt.Sprintf("%s: %d calls in %s, %d in %s", name(r), r.Iterations, oursName, t.Iterations, theirsName))
		}
	}
	for _, t := range theirs {
		if _, ok := mine[keyOf(t)]; !ok {
			out = append(out, name(t)+": only in "+theirsName)
		}
	}
	return out
}

// WriteRatios prints ratios as a table, one block per operation and rank
// count; ours and theirs name the two runs in the header.
func WriteRatios(w io.Writer, ours, theirs string, ratios []Ratio) error {
	rows := [][]string{{"op", "np", "size", ours + " us", theirs + " us", "ratio", ""}}
	var last string
	for _, r := range ratios {
		k := r.Op + "/" + strconv.Itoa(r.Ranks)
		if last != "" && k != last {
			rows = append(rows, nil)
		}
		last = k
		mark := ""
		if r.Judged() > 1 {
			mark = "slower"
		}
		rows = append(rows, []string{r.Op, strconv.Itoa(r.Ranks), FormatSize(r.Size),
			fmt.Sprintf("%.2f", r.OursUs), fmt.Sprintf("%.2f", r.TheirsUs), fmt.Sprintf("%.3f", r.Ratio), mark})
	}
	return writeAligned(w, "lrrrrrl", rows)
}

// Targets are the goals fnmesh is measured against (issue 4).
type Targets struct {
	// LargeOps must take at most LargeRatio times the reference's time at
	// LargeSize bytes and above.
	LargeOps   []string
	LargeSize  int
	LargeRatio float64
	// LatencySize-byte one-way latency within LatencyRatio of the reference.
	LatencySize  int
	LatencyRatio float64
	// A 2-rank bw at LargeSize and above reaches CeilingShare of the TCP
	// ceiling (iperf3 on the same machine).
	CeilingShare float64
}

// DefaultTargets returns issue 4's targets: allgather, alltoallv, allreduce
// and bcast at 1 MiB and above no slower than Open MPI; 8-byte latency within
// 2x; a 2-rank large message at 80% of the iperf3 ceiling.
func DefaultTargets() Targets {
	return Targets{
		LargeOps: []string{"allgather", "alltoallv", "allreduce", "bcast"}, LargeSize: 1 << 20, LargeRatio: 1,
		LatencySize: 8, LatencyRatio: 2, CeilingShare: 0.8,
	}
}

// Verdict is the outcome of one target.
type Verdict struct {
	Target string `json:"target"`
	Ranks  int    `json:"np"`
	Met    bool   `json:"met"`
	Detail string `json:"detail"`
}

// Check evaluates the targets on ratios and on our bw rows against a TCP
// ceiling in MB/s (0: no ceiling known; that target is then left out).
func (t Targets) Check(ratios []Ratio, ours []Result, ceilingMBps float64) []Verdict {
	var nps []int
	for _, r := range ratios {
		if !slices.Contains(nps, r.Ranks) {
			nps = append(nps, r.Ranks)
		}
	}
	slices.Sort(nps)
	var out []Verdict
	for _, np := range nps {
		for _, op := range t.LargeOps {
			worst := Ratio{}
			n := 0
			for _, r := range ratios {
				if r.Op == op && r.Ranks == np && r.Size >= t.LargeSize {
					n++
					if n == 1 || r.Ratio > worst.Ratio {
						worst = r
					}
				}
			}
			if n == 0 {
				continue
			}
			out = append(out, Verdict{
				Target: fmt.Sprintf("%s >= %s: ratio <= %.2f", op, FormatSize(t.LargeSize), t.LargeRatio),
				Ranks:  np, Met: worst.Judged() <= t.LargeRatio,
				Detail: fmt.Sprintf("worst %.3f at %s over %d sizes", worst.Ratio, FormatSize(worst.Size), n),
			})
		}
		for _, r := range ratios {
			if r.Op == "latency" && r.Ranks == np && r.Size == t.LatencySize {
				out = append(out, Verdict{
					Target: fmt.Sprintf("latency %d B: ratio <= %.2f", t.LatencySize, t.LatencyRatio),
					Ranks:  np, Met: r.Judged() <= t.LatencyRatio,
					Detail: fmt.Sprintf("%.2f us vs %.2f us: %.3f", r.OursUs, r.TheirsUs, r.Ratio),
				})
			}
		}
	}
	if ceilingMBps > 0 {
		best := Result{}
		for _, r := range Best(ours) {
			if r.Op == "bw" && r.Ranks == 2 && r.Size >= t.LargeSize && r.MBps > best.MBps {
				best = r
			}
		}
		if best.Op != "" {
			share := best.MBps / ceilingMBps
			out = append(out, Verdict{
				Target: fmt.Sprintf("bw >= %s: >= %.0f%% of the TCP ceiling", FormatSize(t.LargeSize), 100*t.CeilingShare),
				// Judged as printed, to 0.1%, as ratios are (see Ratio.Judged).
				Ranks: 2, Met: math.Round(share*1000)/1000 >= t.CeilingShare,
				Detail: fmt.Sprintf("best %.0f MB/s at %s = %.1f%% of %.0f MB/s", best.MBps, FormatSize(best.Size), 100*share, ceilingMBps),
			})
		}
	}
	return out
}

// WriteVerdicts prints verdicts, one a line: MET or BEHIND, the rank count,
// the target and the figures behind the verdict; with none, a line that
// says no target applies (so that a heading above is never left alone).
func WriteVerdicts(w io.Writer, vs []Verdict) error {
	if len(vs) == 0 {
		_, err := io.WriteString(w, "none applies: the runs share no row a target covers\n")
		return err
	}
	var rows [][]string
	for _, v := range vs {
		status := "MET"
		if !v.Met {
			status = "BEHIND"
		}
		rows = append(rows, []string{status, fmt.Sprintf("np=%d", v.Ranks), v.Target, v.Detail})
	}
	return writeAligned(w, "llll", rows)
}

// ReadIperf3 returns the receiver's throughput in MB/s (10^6 bytes per
// second, as Result.MBps) from `iperf3 -J` output of one TCP stream: the
// ceiling of one link. A run of several streams (-P) or of UDP is an error,
// not a ceiling: parallel streams carry more than one link can.
func ReadIperf3(r io.Reader) (float64, error) {
	var doc struct {
		Error string `json:"error"`
		Start struct {
			TestStart struct {
				Protocol   string `json:"protocol"`
				NumStreams int    `json:"num_streams"`
			} `json:"test_start"`
		} `json:"start"`
		End struct {
			Streams     []json.RawMessage `json:"streams"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		return 0, fmt.Errorf("osu: iperf3 json: %w", err)
	}
	if doc.Error != "" {
		return 0, fmt.Errorf("osu: iperf3 reported: %s", doc.Error)
	}
	ts := doc.Start.TestStart
	if ts.Protocol != "" && ts.Protocol != "TCP" {
		return 0, fmt.Errorf("osu: iperf3 json: a %s test, want TCP", ts.Protocol)
	}
	if n := max(ts.NumStreams, len(doc.End.Streams)); n > 1 {
		return 0, fmt.Errorf("osu: iperf3 json: %d streams, want one (the ceiling of one link; run iperf3 without -P)", n)
	}
	if doc.End.SumReceived.BitsPerSecond <= 0 {
		return 0, errors.New("osu: iperf3 json: no end.sum_received.bits_per_second")
	}
	return doc.End.SumReceived.BitsPerSecond / 8 / 1e6, nil
}
