package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A file may hold several runs concatenated (bench compare's help), JSON
// reports as well as CSV files: every row counts by its best time. Only the
// first of several JSON reports used to be read, the rest dropped without
// a word, and anything after a report was ignored.
func TestBenchCompareConcatenatedJSON(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	report := func(avg string) string {
		return `{"tool":"fnmesh","planned_results":1,"results":[{"op":"allreduce","np":2,"size":1048576,"iterations":5,"avg_us":` +
			avg + `,"min_us":1,"max_us":30,"mb_per_s":1}]}` + "\n"
	}
	theirs := file("theirs.csv", "op,np,size,iterations,avg_us,min_us,max_us,mb_per_s\nallreduce,2,1048576,5,10.000,9.000,11.000,1.000\n")
	partial := `{"tool":"fnmesh","planned_results":21,"partial":true,"stopped":"stopped: interrupt signal received","results":[{"op":"allreduce","np":2,"size":1048576,"iterations":5,"avg_us":30,"min_us":1,"max_us":30,"mb_per_s":1}]}`
	for _, tc := range []struct {
		name       string
		ours       string
		code       int
		wantOut    []string
		wantStderr string
	}{
		{"one report", report("20"), 0, []string{"2.000  slower", "BEHIND"}, ""},
		{"slower run first", report("20") + report("8"), 0, []string{"0.800", "MET"}, ""},
		{"faster run first", report("8") + report("20"), 0, []string{"0.800", "MET"}, ""},
		{"no newline between", report("20")[:len(report("20"))-1] + report("8"), 0, []string{"0.800", "MET"}, ""},
		{"a partial run among them", report("8") + partial, 0, []string{"0.800", "WARNING: ", "partial run: 1 of 21 results"}, ""},
		{"garbage after a report", report("8") + "op,np\n", 1, nil, "ours.json: osu: json report 2: "},
		{"a broken second report", report("8") + `{"results":[`, 1, nil, "ours.json: osu: json report 2: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours := file("ours.json", tc.ours)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"bench", "compare", ours, theirs}, &stdout, &stderr)
			assert.Equal(t, tc.code, code, "stderr: %s", stderr.String())
			for _, w := range tc.wantOut {
				assert.Contains(t, stdout.String(), w)
			}
			if tc.wantStderr == "" {
				assert.Empty(t, stderr.String())
			} else {
				assert.Contains(t, stderr.String(), tc.wantStderr)
				assert.Empty(t, stdout.String())
			}
		})
	}
}
