//go:build unix

package main

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// report is the whole benchmark run, as written with -json.
type report struct {
	Date       string  `json:"date"`
	Scaling    string  `json:"scaling"`
	Uniqueness float64 `json:"uniqueness"`
	Ceiling    ceiling `json:"loopback_ceiling"` // in the driver process, a reference
	Runs       []run   `json:"runs"`
}

// ceiling is the loopback TCP throughput of one connection inside one
// process, in bytes/s.
type ceiling struct {
	OneWay   float64 `json:"one_way"`
	BothWays float64 `json:"both_ways_per_direction"`
}

// run is one worker count: the best of its reps, each phase the slowest
// rank's.
type run struct {
	Workers   int     `json:"workers"`
	RowsPer   int     `json:"rows_per_worker"`
	RowsTotal int     `json:"rows_total"`
	Join      opStats `json:"join"`
	GroupBy   opStats `json:"groupby"`
	Shuffle   opStats `json:"shuffle"` // the all-to-all exchange of one table alone
	SetupSec  float64 `json:"setup_s"`
	// Ceiling is the raw loopback TCP all-to-all between the workers, on
	// the communicator's own links, memory to memory (best rep; zero for one
	// worker): what the exchange is held against. CeilingHot is the same
	// from and into a buffer that stays in cache, as iperf3 measures.
	Ceiling    workerCeiling `json:"worker_ceiling"`
	CeilingHot workerCeiling `json:"worker_ceiling_hot"`
}

// workerCeiling is the raw all-to-all of rawAlltoall: bytes a rank sends per
// second (mean over ranks) and the CPU time all ranks spent per byte sent.
type workerCeiling struct {
	BytesPerSec  float64 `json:"bytes_per_s_per_rank"`
	CPUNsPerByte float64 `json:"cpu_ns_per_byte"`
	BytesPerRank int64   `json:"bytes_per_rank"`
}

type opStats struct {
	TotalSec     float64 `json:"total_s"`
	PartitionSec float64 `json:"partition_s"`
	ExchangeSec  float64 `json:"exchange_s"`
	LocalSec     float64 `json:"local_s"`
	OutRows      int64   `json:"out_rows"`
	RowsPerSec   float64 `json:"input_rows_per_s"`
	ExchangeBps  float64 `json:"exchange_bytes_per_s_per_rank"`        // bytes a rank sends / its exchange time (mean over ranks)
	OfCeiling    float64 `json:"exchange_of_ceiling"`                  // ExchangeBps / both-ways ceiling
	MedianBps    float64 `json:"median_exchange_bytes_per_s_per_rank"` // ExchangeBps of the median rep
	Reps         int     `json:"reps"`
	BytesPerRank int64   `json:"bytes_per_rank"`
	CPUSec       float64 `json:"cpu_s"`           // CPU time of all ranks together: less sensitive to a busy machine than wall time
	CPUNsPerByte float64 `json:"cpu_ns_per_byte"` // CPUSec per byte sent by all ranks (the exchange alone)
	// MaxRSS is the largest over ranks of each rank process's peak resident
	// memory during the timed run (not summed over ranks; the rank's inputs
	// and Go runtime included), bytes; 0: not measured (needs Linux's
	// /proc/self/clear_refs).
	MaxRSS int64 `json:"max_rss"`
}

func summarize(res *workerResult, c ceiling) run {
	r := run{Workers: res.World, RowsPer: res.Rows, RowsTotal: res.Total, SetupSec: res.Setup.Seconds()}
	r.Ceiling = bestCeiling(res.Ceiling)
	r.CeilingHot = bestCeiling(res.CeilingHot)
	ref := c.BothWays
	if r.Ceiling.BytesPerSec > 0 {
		ref = r.Ceiling.BytesPerSec
	}
	r.Join = best(res.Join, 2*int64(res.Total), ref, false)
	r.GroupBy = best(res.GroupBy, int64(res.Total), ref, false)
	r.Shuffle = best(res.Shuffle, int64(res.Total), ref, true)
	return r
}

// bestCeiling picks the fastest rep of the raw all-to-all.
func bestCeiling(reps [][]rawSample) workerCeiling {
	var out workerCeiling
	for _, ranks := range reps {
		var c workerCeiling
		var cpu time.Duration
		var bytes int64
		for _, s := range ranks {
			if s.Dur > 0 {
				c.BytesPerSec += float64(s.Bytes) / s.Dur.Seconds() / float64(len(ranks))
			}
			cpu += s.CPU
			bytes += s.Bytes
		}
		if bytes > 0 {
			c.CPUNsPerByte = float64(cpu.Nanoseconds()) / float64(bytes)
			c.BytesPerRank = bytes / int64(len(ranks))
		}
		if c.BytesPerSec > out.BytesPerSec {
			out = c
		}
	}
	return out
}

// best picks the rep with the shortest total and reports its slowest rank
// per phase; inputRows is the rows the operator reads over all ranks.
// perRankRows says that each rank's OutRows counts its own output rows only
// (the exchange alone), which are then summed, rather than every rank's
// (an operator's result, counted by Frame.Count).
func best(reps [][]phaseTimes, inputRows int64, ceilingBps float64, perRankRows bool) opStats {
	var out opStats
	var rates []float64
	for i, ranks := range reps {
		var s opStats
		var bps float64
		var bytes int64
		for _, pt := range ranks {
			s.TotalSec = max(s.TotalSec, pt.Total.Seconds())
			s.PartitionSec = max(s.PartitionSec, pt.Partition.Seconds())
			s.ExchangeSec = max(s.ExchangeSec, pt.Exchange.Seconds())
			s.LocalSec = max(s.LocalSec, pt.Local.Seconds())
			if perRankRows {
				s.OutRows += pt.OutRows
			} else {
				s.OutRows = pt.OutRows
			}
			if pt.Exchange > 0 {
				bps += float64(pt.Bytes) / pt.Exchange.Seconds()
			}
			bytes += pt.Bytes
			s.CPUSec += pt.CPU.Seconds()
			s.MaxRSS = max(s.MaxRSS, pt.MaxRSS)
		}
		if len(ranks) > 0 {
			s.ExchangeBps = bps / float64(len(ranks))
			s.BytesPerRank = bytes / int64(len(ranks))
		}
		if s.TotalSec > 0 {
			s.RowsPerSec = float64(inputRows) / s.TotalSec
		}
		if ceilingBps > 0 {
			s.OfCeiling = s.ExchangeBps / ceilingBps
		}
		if bytes > 0 {
			s.CPUNsPerByte = s.CPUSec * 1e9 / float64(bytes)
		}
		rates = append(rates, s.ExchangeBps)
		if i == 0 || s.TotalSec < out.TotalSec {
			out = s
		}
	}
	out.Reps = len(reps)
	if len(rates) > 0 {
		slices.Sort(rates)
		out.MedianBps = rates[(len(rates)-1)/2] // the lower median
	}
	return out
}

func printRun(r run) {
	fmt.Printf("\n%d workers, %d rows per table per worker (%d in total)\n", r.Workers, r.RowsPer, r.RowsTotal)
	if c, h := r.Ceiling, r.CeilingHot; c.BytesPerSec > 0 {
		fmt.Printf("  loopback TCP ceiling between the workers (raw all-to-all on their links, %d MiB per rank): %.0f MB/s per rank, %.2f CPU ns per byte (from and to cache, as iperf3: %.0f MB/s, %.2f ns)\n",
			c.BytesPerRank>>20, c.BytesPerSec/1e6, c.CPUNsPerByte, h.BytesPerSec/1e6, h.CPUNsPerByte)
	}
	fmt.Printf("  %-8s %9s %10s %10s %10s %8s %12s %14s %12s %13s\n", "op", "total s", "partition", "exchange", "local", "CPU s", "out rows", "input rows/s", "exch MB/s", "rank peak MiB")
	for _, o := range []struct {
		name string
		s    opStats
	}{{"join", r.Join}, {"groupby", r.GroupBy}, {"shuffle", r.Shuffle}} {
		if o.s.TotalSec == 0 {
			continue
		}
		ex := "-"
		if o.s.ExchangeBps > 0 {
			ex = fmt.Sprintf("%.0f (%.0f%%)", o.s.ExchangeBps/1e6, 100*o.s.OfCeiling)
		}
		peak := "-"
		if o.s.MaxRSS > 0 {
			peak = strconv.FormatInt(o.s.MaxRSS>>20, 10)
		}
		fmt.Printf("  %-8s %9.3f %10.3f %10.3f %10.3f %8.2f %12d %14.3g %12s %13s\n", o.name, o.s.TotalSec, o.s.PartitionSec, o.s.ExchangeSec, o.s.LocalSec, o.s.CPUSec, o.s.OutRows, o.s.RowsPerSec, ex, peak)
	}
	if s := r.Shuffle; s.MedianBps > 0 && s.OfCeiling > 0 {
		fmt.Printf("  shuffle exchange alone, median of %d runs: %.0f MB/s (%.0f%%)\n", s.Reps, s.MedianBps/1e6, 100*s.OfCeiling*s.MedianBps/s.ExchangeBps)
	}
	if s, c := r.Shuffle, r.Ceiling; s.CPUNsPerByte > 0 {
		fmt.Printf("  shuffle exchange alone: %.2f CPU ns per byte sent (all ranks)", s.CPUNsPerByte)
		if c.CPUNsPerByte > 0 {
			fmt.Printf(", %.2fx the raw all-to-all's %.2f", s.CPUNsPerByte/c.CPUNsPerByte, c.CPUNsPerByte)
		}
		fmt.Println()
	}
}
