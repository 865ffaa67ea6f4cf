// Command duckdb runs the Cylon join benchmark's join and group-by in DuckDB,
// on the Parquet files bench/frame writes (-data), so that fnmesh and DuckDB
// join the very same rows at the same core count. It lives in its own Go
// module so that fnmesh does not depend on DuckDB (cgo, a large C++ library).
//
//	go run . -data /tmp/cylon -threads 2
//
// The tables are loaded into DuckDB's memory first (not timed); then the
// join and the group-by each materialise their result into a temporary
// table, as fnmesh materialises Arrow tables, best of -reps runs.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"syscall"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

type result struct {
	Threads     int     `json:"threads"`
	LeftRows    int64   `json:"left_rows"`
	RightRows   int64   `json:"right_rows"`
	LoadSec     float64 `json:"load_s"`
	JoinSec     float64 `json:"join_s"`
	JoinRows    int64   `json:"join_rows"`
	GroupBySec  float64 `json:"groupby_s"`
	GroupByRows int64   `json:"groupby_rows"`
	JoinCPU     float64 `json:"join_cpu_s"`    // CPU time of the best join run, all threads
	GroupByCPU  float64 `json:"groupby_cpu_s"` // likewise for the group-by
	Version     string  `json:"version"`
}

// cpuTime is the user+system CPU time this process (every DuckDB thread) has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	var (
		data    = flag.String("data", "", "directory with left-*.parquet and right-*.parquet (from bench/frame -data)")
		threads = flag.Int("threads", 2, "DuckDB threads")
		reps    = flag.Int("reps", 3, "timed runs (the best is reported)")
		jsonOut = flag.String("json", "", "write the result as JSON to this file")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("duckbench: ")
	if err := checkArgs(*data, *threads, *reps, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "duckbench: %v\nRun duckbench -h for the flags.\n", err)
		os.Exit(2)
	}
	ctx := context.Background()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string, args ...any) {
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			log.Fatalf("%s: %v", q, err)
		}
	}
	count := func(q string) int64 {
		var n int64
		if err := conn.QueryRowContext(ctx, q).Scan(&n); err != nil {
			log.Fatalf("%s: %v", q, err)
		}
		return n
	}
	res := result{Threads: *threads}
	if err := conn.QueryRowContext(ctx, "SELECT version()").Scan(&res.Version); err != nil {
		log.Fatal(err)
	}
	exec(fmt.Sprintf("SET threads = %d", *threads))
	exec("SET preserve_insertion_order = false")

	t0 := time.Now()
	exec(fmt.Sprintf("CREATE TABLE l AS SELECT * FROM read_parquet('%s')", filepath.Join(*data, "left-*.parquet")))
	exec(fmt.Sprintf("CREATE TABLE r AS SELECT * FROM read_parquet('%s')", filepath.Join(*data, "right-*.parquet")))
	res.LoadSec = time.Since(t0).Seconds()
	res.LeftRows, res.RightRows = count("SELECT count(*) FROM l"), count("SELECT count(*) FROM r")

	timed := func(q string) (best, cpu float64) {
		for i := range *reps {
			exec("DROP TABLE IF EXISTS out")
			t0, c0 := time.Now(), cpuTime()
			exec(q)
			d, c := time.Since(t0).Seconds(), (cpuTime() - c0).Seconds()
			if i == 0 || d < best {
				best, cpu = d, c
			}
		}
		return best, cpu
	}
	// The same result as fnmesh's Join(..., Inner, On("k")): the key once,
	// then each side's value.
	res.JoinSec, res.JoinCPU = timed("CREATE TEMP TABLE out AS SELECT l.k, l.v AS v_x, r.v AS v_y FROM l JOIN r ON l.k = r.k")
	res.JoinRows = count("SELECT count(*) FROM out")
	res.GroupBySec, res.GroupByCPU = timed("CREATE TEMP TABLE out AS SELECT k, sum(v) AS sum_v, count(*) AS count FROM l GROUP BY k")
	res.GroupByRows = count("SELECT count(*) FROM out")

	fmt.Printf("DuckDB %s, %d threads: %d x %d rows loaded in %.2f s\n", res.Version, res.Threads, res.LeftRows, res.RightRows, res.LoadSec)
	fmt.Printf("  join    %.3f s, %.2f CPU s  (%d rows)\n", res.JoinSec, res.JoinCPU, res.JoinRows)
	fmt.Printf("  groupby %.3f s, %.2f CPU s  (%d rows)\n", res.GroupBySec, res.GroupByCPU, res.GroupByRows)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// checkArgs rejects a command line that cannot run: -reps 0 used to fail
// after loading the tables, with DuckDB's "Table with name out does not
// exist", and a stray argument was ignored.
func checkArgs(data string, threads, reps int, args []string) error {
	switch {
	case len(args) > 0:
		return fmt.Errorf("unexpected argument %q", args[0])
	case data == "":
		return fmt.Errorf("-data is required (the directory bench/frame -data wrote)")
	case threads < 1:
		return fmt.Errorf("-threads %d: want at least 1", threads)
	case reps < 1:
		return fmt.Errorf("-reps %d: want at least 1", reps)
	}
	return nil
}
