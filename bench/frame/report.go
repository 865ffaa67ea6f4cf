package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// report is the whole benchmark run, as written with -json.
type report struct {
	Date       string  `json:"date"`
	Scaling    string  `json:"scaling"`
	Uniqueness float64 `json:"uniqueness"`
	Ceiling    ceiling `json:"loopback_ceiling"`
	Runs       []run   `json:"runs"`
}

// ceiling is the loopback TCP throughput of one connection, in bytes/s.
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
}

type opStats struct {
	TotalSec     float64 `json:"total_s"`
	PartitionSec float64 `json:"partition_s"`
	ExchangeSec  float64 `json:"exchange_s"`
	LocalSec     float64 `json:"local_s"`
	OutRows      int64   `json:"out_rows"`
	RowsPerSec   float64 `json:"input_rows_per_s"`
	ExchangeBps  float64 `json:"exchange_bytes_per_s_per_rank"` // bytes a rank sends / its exchange time (mean over ranks)
	OfCeiling    float64 `json:"exchange_of_ceiling"`           // ExchangeBps / both-ways ceiling
	BytesPerRank int64   `json:"bytes_per_rank"`
	CPUSec       float64 `json:"cpu_s"`   // CPU time of all ranks together: less sensitive to a busy machine than wall time
	MaxRSS       int64   `json:"max_rss"` // the largest peak resident memory of a rank, bytes
}

func summarize(res *workerResult, c ceiling) run {
	r := run{Workers: res.World, RowsPer: res.Rows, RowsTotal: res.Total, SetupSec: res.Setup.Seconds()}
	r.Join = best(res.Join, 2*int64(res.Total), c)
	r.GroupBy = best(res.GroupBy, int64(res.Total), c)
	r.Shuffle = best(res.Shuffle, int64(res.Total), c)
	return r
}

// best picks the rep with the shortest total and reports its slowest rank
// per phase; inputRows is the rows the operator reads over all ranks.
func best(reps [][]phaseTimes, inputRows int64, c ceiling) opStats {
	var out opStats
	for i, ranks := range reps {
		var s opStats
		var bps float64
		var bytes int64
		for _, pt := range ranks {
			s.TotalSec = max(s.TotalSec, pt.Total.Seconds())
			s.PartitionSec = max(s.PartitionSec, pt.Partition.Seconds())
			s.ExchangeSec = max(s.ExchangeSec, pt.Exchange.Seconds())
			s.LocalSec = max(s.LocalSec, pt.Local.Seconds())
			s.OutRows = pt.OutRows
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
		if c.BothWays > 0 {
			s.OfCeiling = s.ExchangeBps / c.BothWays
		}
		if i == 0 || s.TotalSec < out.TotalSec {
			out = s
		}
	}
	return out
}

func printRun(r run) {
	fmt.Printf("\n%d workers, %d rows per table per worker (%d in total)\n", r.Workers, r.RowsPer, r.RowsTotal)
	fmt.Printf("  %-8s %9s %10s %10s %10s %8s %12s %14s %12s %9s\n", "op", "total s", "partition", "exchange", "local", "CPU s", "out rows", "input rows/s", "exch MB/s", "peak MiB")
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
		fmt.Printf("  %-8s %9.3f %10.3f %10.3f %10.3f %8.2f %12d %14.3g %12s %9d\n", o.name, o.s.TotalSec, o.s.PartitionSec, o.s.ExchangeSec, o.s.LocalSec, o.s.CPUSec, o.s.OutRows, o.s.RowsPerSec, ex, o.s.MaxRSS>>20)
	}
}

// measureCeiling times n bytes over one loopback TCP connection, one way and
// then both ways at once (what two ranks exchanging see); best of three.
func measureCeiling(n int64) ceiling {
	var best ceiling
	for range 3 {
		c := measureCeilingOnce(n)
		best.OneWay = max(best.OneWay, c.OneWay)
		best.BothWays = max(best.BothWays, c.BothWays)
	}
	return best
}

func measureCeilingOnce(n int64) ceiling {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ceiling{}
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return ceiling{}
	}
	defer a.Close()
	b, ok := <-accepted
	if !ok {
		return ceiling{}
	}
	defer b.Close()
	send := func(c net.Conn) {
		buf := make([]byte, 1<<20)
		for left := n; left > 0; left -= int64(len(buf)) {
			if _, err := c.Write(buf[:min(int64(len(buf)), left)]); err != nil {
				return
			}
		}
	}
	recv := func(c net.Conn) { _, _ = io.CopyN(io.Discard, c, n) }
	var out ceiling
	t0 := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); recv(b) }()
	send(a)
	wg.Wait()
	out.OneWay = float64(n) / time.Since(t0).Seconds()

	t0 = time.Now()
	wg.Add(4)
	go func() { defer wg.Done(); send(a) }()
	go func() { defer wg.Done(); send(b) }()
	go func() { defer wg.Done(); recv(a) }()
	go func() { defer wg.Done(); recv(b) }()
	wg.Wait()
	out.BothWays = float64(n) / time.Since(t0).Seconds()
	return out
}
