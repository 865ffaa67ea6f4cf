//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"os"
)

// duckResult is what bench/duckdb writes with -json.
type duckResult struct {
	Threads     int     `json:"threads"`
	LeftRows    int64   `json:"left_rows"`  // the input DuckDB read (0: not recorded)
	RightRows   int64   `json:"right_rows"` // likewise
	JoinSec     float64 `json:"join_s"`
	JoinRows    int64   `json:"join_rows"`
	GroupBySec  float64 `json:"groupby_s"`
	GroupByRows int64   `json:"groupby_rows"`
	JoinCPU     float64 `json:"join_cpu_s"`
	GroupByCPU  float64 `json:"groupby_cpu_s"`
	Version     string  `json:"version"`
}

// compare prints fnmesh's largest run beside DuckDB's run on the same data,
// and the exchange against the loopback ceilings (iperf3's in bytes/s, if
// measured). It fails when DuckDB read other inputs than fnmesh's run
// generated (files of another run left in the -data directory) or when the
// two engines' results have different row counts; no target is then said
// to be met.
func compare(framePath, duckPath string, iperfBps float64) error {
	var rep report
	var duck duckResult
	for _, f := range []struct {
		path string
		v    any
	}{{framePath, &rep}, {duckPath, &duck}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, f.v); err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
	}
	if len(rep.Runs) == 0 {
		return fmt.Errorf("%s has no runs", framePath)
	}
	if !(duck.JoinSec > 0) {
		return fmt.Errorf("%s: no join time (join_s): not bench/duckdb's -json output", duckPath)
	}
	r := rep.Runs[len(rep.Runs)-1]
	// The engines must have read the same rows and agree on the result
	// before their times mean anything.
	var differ error
	switch total := int64(r.RowsTotal); {
	case (duck.LeftRows != 0 || duck.RightRows != 0) && (duck.LeftRows != total || duck.RightRows != total):
		differ = fmt.Errorf("the inputs differ: DuckDB read %d left and %d right rows (%s), fnmesh's run of %d workers had %d per table (%s): does the -data directory hold files of another run?",
			duck.LeftRows, duck.RightRows, duckPath, r.Workers, total, framePath)
	case r.Join.OutRows != duck.JoinRows || (r.GroupBy.OutRows != 0 && r.GroupBy.OutRows != duck.GroupByRows):
		differ = fmt.Errorf("the result row counts differ: join %d (fnmesh) vs %d (DuckDB), group-by %d vs %d",
			r.Join.OutRows, duck.JoinRows, r.GroupBy.OutRows, duck.GroupByRows)
	}
	fmt.Printf("\n== fnmesh (%d worker processes) vs DuckDB %s (%d threads), %d rows per table in total\n", r.Workers, duck.Version, duck.Threads, r.RowsTotal)
	fmt.Printf("%-8s %12s %12s %10s %8s %s\n", "op", "fnmesh s", "DuckDB s", "ratio", "target", "rows (fnmesh / DuckDB)")
	line := func(op string, ours, theirs float64, target string, ourRows, theirRows int64) {
		verdict := ""
		switch {
		case target == "-":
		case differ != nil:
			verdict = "(not comparable)"
		case ours > 2*theirs:
			verdict = "MISSED"
		default:
			verdict = "MET"
		}
		fmt.Printf("%-8s %12.3f %12.3f %9.2fx %8s %d / %d %s\n", op, ours, theirs, ours/theirs, target, ourRows, theirRows, verdict)
	}
	line("join", r.Join.TotalSec, duck.JoinSec, "<=2x", r.Join.OutRows, duck.JoinRows)
	line("groupby", r.GroupBy.TotalSec, duck.GroupBySec, "-", r.GroupBy.OutRows, duck.GroupByRows)
	if duck.JoinCPU > 0 {
		fmt.Printf("CPU seconds (all ranks / all threads; robust to a busy machine): join %.2f vs %.2f (%.2fx), groupby %.2f vs %.2f (%.2fx)\n",
			r.Join.CPUSec, duck.JoinCPU, r.Join.CPUSec/duck.JoinCPU, r.GroupBy.CPUSec, duck.GroupByCPU, r.GroupBy.CPUSec/duck.GroupByCPU)
	}
	if differ != nil {
		fmt.Println("FAILED:", differ)
	}
	ex := r.Shuffle.ExchangeBps
	fmt.Printf("\n== shuffle exchange alone: %.0f MB/s sent per rank (%.0f MB/s within the join, where it also waits for the slower rank's partitioning)\n",
		ex/1e6, r.Join.ExchangeBps/1e6)
	if c := r.Ceiling; c.BytesPerSec > 0 {
		v := "MET"
		if ex < 0.7*c.BytesPerSec {
			v = "MISSED"
		}
		fmt.Printf("  loopback TCP ceiling, raw all-to-all between the same workers on the same links: %.0f MB/s per rank -> %.0f%% (target >= 70%%: %s)\n", c.BytesPerSec/1e6, 100*ex/c.BytesPerSec, v)
		if m := r.Shuffle.MedianBps; m > 0 {
			fmt.Printf("  median of the %d exchanges: %.0f MB/s per rank -> %.0f%% of the ceiling\n", r.Shuffle.Reps, m/1e6, 100*m/c.BytesPerSec)
		}
		if s := r.Shuffle.CPUNsPerByte; s > 0 && c.CPUNsPerByte > 0 {
			fmt.Printf("  CPU per byte sent (load-independent): exchange %.2f ns, raw TCP %.2f ns (%.2fx)\n", s, c.CPUNsPerByte, s/c.CPUNsPerByte)
		}
	}
	if h := r.CeilingHot; h.BytesPerSec > 0 {
		fmt.Printf("  the same from and into a buffer in cache (as iperf3): %.0f MB/s per rank -> %.0f%%\n", h.BytesPerSec/1e6, 100*ex/h.BytesPerSec)
	}
	if c := rep.Ceiling.BothWays; c > 0 {
		fmt.Printf("  Go loopback TCP in one process, both directions at once: %.0f MB/s per direction -> %.0f%%\n", c/1e6, 100*ex/c)
	}
	if c := rep.Ceiling.OneWay; c > 0 {
		fmt.Printf("  Go loopback TCP, one way: %.0f MB/s -> %.0f%%\n", c/1e6, 100*ex/c)
	}
	if iperfBps > 0 {
		fmt.Printf("  iperf3 loopback, one stream one way: %.0f MB/s -> %.0f%%\n", iperfBps/1e6, 100*ex/iperfBps)
	}
	return differ
}
