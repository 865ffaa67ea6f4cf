package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/fnmesh/fnmesh/internal/osu"
	"github.com/fnmesh/fnmesh/internal/outfile"
)

// runBenchCompare is `fnmesh bench compare`: the ratios of times between two
// runs (ours / theirs) per operation, rank count and size, and the targets
// of issue 4.
func runBenchCompare(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fnmesh bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: fnmesh bench compare [flags] ours theirs

Pairs the rows of two bench results (CSV from fnmesh bench -csv or
bench/mpi/osu.c, or JSON from fnmesh bench -json) on operation, rank count
and size, and prints ours/theirs ratios of average times: at most 1.0 means
ours is at least as fast. A file may hold several runs concatenated: each
row then counts by its best (lowest) time. Then checks the targets: allgather, alltoallv,
allreduce and bcast at 1 MiB and above no slower; 8-byte latency within 2x;
2-rank bandwidth at 80% of the iperf3 ceiling (with -iperf3).

A JSON report of a partial run (fnmesh bench cut short) is compared, with a
warning first: its missing rows are left out, and targets over them go
unchecked; with -strict it exits 3. So it does when the two runs did not
measure alike: rows that only one of them has, or timed over other numbers
of calls, are listed first.

flags:
`)
		fs.PrintDefaults()
	}
	iperf := fs.String("iperf3", "", "`files` of iperf3 -J output on loopback, comma-separated: the TCP ceiling for bw (the highest)")
	png := fs.String("png", "", "plot the ratios against size to PNG `file`")
	names := fs.String("names", "ours,theirs", "names of the two runs in the table")
	strict := fs.Bool("strict", false, "exit with status 3 when a target is missed, none could be checked, a run is partial, or the runs did not measure alike")
	if err := parseFlags(fs, args, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "fnmesh bench compare: %v\n", err)
		flagHint(stderr, "fnmesh bench compare")
		return 2
	}
	for _, a := range fs.Args() {
		// The flag package stops at the first file: a flag after it would
		// be counted as a file ("want two result files (got 3)").
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && fs.Lookup(name) != nil {
			fmt.Fprintf(stderr, "fnmesh bench compare: %q after the files: flags go before them\n", a)
			flagHint(stderr, "fnmesh bench compare")
			return 2
		}
	}
	if fs.NArg() != 2 {
		// It printed the whole help without saying what was wrong.
		fmt.Fprintf(stderr, "fnmesh bench compare: want two result files, ours and theirs (got %d)\n", fs.NArg())
		flagHint(stderr, "fnmesh bench compare")
		return 2
	}
	ourName, theirName, ok := strings.Cut(*names, ",")
	if !ok || ourName == "" || theirName == "" || strings.Contains(theirName, ",") {
		fmt.Fprintf(stderr, "fnmesh bench compare: -names %q: want two names, comma-separated\n", *names)
		return 2
	}
	if *iperf != "" && slices.Contains(strings.Split(*iperf, ","), "") {
		fmt.Fprintf(stderr, "fnmesh bench compare: -iperf3 %q: an empty file name\n", *iperf)
		return 2
	}
	if *png != "" {
		inputs := append(fs.Args(), strings.Split(*iperf, ",")...)
		for _, in := range inputs {
			if in != "" && samePath(*png, in) {
				fmt.Fprintf(stderr, "fnmesh bench compare: -png %s: is one of the input files (it would be overwritten)\n", *png)
				return 2
			}
		}
		if err := outfile.CheckWritable(*png); err != nil {
			fmt.Fprintf(stderr, "fnmesh bench compare: -png %v\n", err)
			return 1
		}
	}
	verdicts, partial, err := benchCompare(stdout, fs.Arg(0), fs.Arg(1), ourName, theirName, *iperf, *png)
	if err != nil {
		fmt.Fprintf(stderr, "fnmesh bench compare: %v\n", err)
		return 1
	}
	if *strict {
		if len(partial) > 0 {
			fmt.Fprintf(stderr, "fnmesh bench compare: -strict: %s\n", strings.Join(partial, "; "))
			return 3
		}
		if len(verdicts) == 0 {
			fmt.Fprintln(stderr, "fnmesh bench compare: -strict: no target could be checked (the runs share no row a target applies to)")
			return 3
		}
		for _, v := range verdicts {
			if !v.Met {
				return 3
			}
		}
	}
	return 0
}

// benchCompare also returns a note for each input that is a partial run,
// and one if the two runs did not measure alike (osu.Mismatches).
func benchCompare(w io.Writer, oursPath, theirsPath, ourName, theirName, iperfPath, pngPath string) ([]osu.Verdict, []string, error) {
	ours, oursNote, err := readResults(oursPath)
	if err != nil {
		return nil, nil, err
	}
	theirs, theirsNote, err := readResults(theirsPath)
	if err != nil {
		return nil, nil, err
	}
	var partial []string
	for _, n := range [][2]string{{oursPath, oursNote}, {theirsPath, theirsNote}} {
		if n[1] != "" {
			partial = append(partial, n[0]+": "+n[1])
		}
	}
	ratios := osu.Compare(ours, theirs)
	if len(ratios) == 0 {
		return nil, nil, fmt.Errorf("%s and %s have no operation, rank count and size in common", oursPath, theirsPath)
	}
	var ceiling float64
	if iperfPath != "" {
		for _, p := range strings.Split(iperfPath, ",") {
			c, err := readCeiling(strings.TrimSpace(p))
			if err != nil {
				return nil, nil, err
			}
			ceiling = max(ceiling, c)
		}
	}
	for _, p := range partial {
		fmt.Fprintf(w, "WARNING: %s: the rows it lacks are not compared, and the targets over them not checked\n\n", p)
	}
	// Rows one run lacks are left out of the table, and rows timed over
	// other numbers of calls are paired as if alike: say which.
	if unlike := osu.Mismatches(ours, theirs, ourName, theirName); len(unlike) > 0 {
		const most = 20
		for i, u := range unlike {
			if i == most {
				fmt.Fprintf(w, "WARNING: not measured alike: and %d more\n", len(unlike)-most)
				break
			}
			fmt.Fprintf(w, "WARNING: not measured alike: %s\n", u)
		}
		fmt.Fprintln(w)
		partial = append(partial, fmt.Sprintf("not measured alike: %s", unlike[0]))
		if len(unlike) > 1 {
			partial[len(partial)-1] += fmt.Sprintf(" (and %d more)", len(unlike)-1)
		}
	}
	if err := osu.WriteRatios(w, ourName, theirName, ratios); err != nil {
		return nil, nil, err
	}
	if ceiling > 0 {
		fmt.Fprintf(w, "\nTCP ceiling (iperf3, one stream on loopback): %.0f MB/s (%.1f Gbit/s)\n", ceiling, ceiling*8/1000)
		var rows []string
		for _, r := range osu.Best(ours) {
			if r.Op == "bw" && r.Ranks == 2 && r.Size >= 64<<10 {
				rows = append(rows, fmt.Sprintf("  bw %5s: %7.0f MB/s = %5.1f%%", osu.FormatSize(r.Size), r.MBps, 100*r.MBps/ceiling))
			}
		}
		if len(rows) > 0 {
			fmt.Fprintf(w, "%s 2-rank bw as a share of it:\n%s\n", ourName, strings.Join(rows, "\n"))
		}
	}
	verdicts := osu.DefaultTargets().Check(ratios, ours, ceiling)
	fmt.Fprintf(w, "\ntargets (%s vs %s):\n", ourName, theirName)
	if err := osu.WriteVerdicts(w, verdicts); err != nil {
		return nil, nil, err
	}
	if pngPath != "" {
		err := outfile.WriteAtomic(pngPath, func(w io.Writer) error {
			return osu.WriteRatioPNG(w, fmt.Sprintf("%s / %s: ratio of times", ourName, theirName), ratios)
		})
		if err != nil {
			return nil, nil, fmt.Errorf("writing %s: %w", pngPath, err)
		}
	}
	return verdicts, partial, nil
}

// readCeiling reads the throughput in MB/s from iperf3 -J output.
func readCeiling(path string) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	c, err := osu.ReadIperf3(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// readResults reads a CSV results file, or JSON reports (by its first
// non-blank byte; one, or several concatenated), and checks that it holds
// results (osu.ReadCSV and osu.ReadJSONReports check that every time in
// them is a number). The note says whether a JSON report is of a partial
// run (osu.Report.PartialNote).
func readResults(path string) ([]osu.Result, string, error) {
	res, note, err := readResultsFile(path)
	if err != nil {
		return nil, "", err
	}
	if len(res) == 0 {
		return nil, "", fmt.Errorf("%s: no results", path)
	}
	return res, note, nil
}

func readResultsFile(path string) ([]osu.Result, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	// A byte order mark (some editors start a UTF-8 file with one) is no
	// part of the CSV header or the JSON.
	if b, err := br.Peek(3); err == nil && string(b) == "\xef\xbb\xbf" {
		br.Discard(3)
	}
	for {
		b, err := br.Peek(1)
		if errors.Is(err, io.EOF) {
			return nil, "", fmt.Errorf("%s: empty", path)
		}
		if err != nil {
			return nil, "", fmt.Errorf("reading %s: %w", path, err)
		}
		if b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t' {
			br.ReadByte()
			continue
		}
		if b[0] == '{' {
			// One report, or several runs concatenated, as CSV files may be.
			reps, err := osu.ReadJSONReports(br)
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", path, err)
			}
			var res []osu.Result
			var notes []string
			for i, rep := range reps {
				res = append(res, rep.Results...)
				if note := rep.PartialNote(); note != "" && len(reps) > 1 {
					notes = append(notes, fmt.Sprintf("report %d of %d: %s", i+1, len(reps), note))
				} else if note != "" {
					notes = append(notes, note)
				}
			}
			return res, strings.Join(notes, "; "), nil
		}
		break
	}
	res, err := osu.ReadCSV(br)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return res, "", nil
}
