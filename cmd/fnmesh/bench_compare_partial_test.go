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

// A partial run is compared with a warning first, and fails -strict (exit
// 3): its JSON report used to look like any complete run's.
func TestBenchComparePartial(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	const rows = `"results":[{"op":"allreduce","np":2,"size":1048576,"iterations":5,"avg_us":10,"min_us":9,"max_us":11,"mb_per_s":1}]`
	complete := file("complete.json", `{"tool":"fnmesh","planned_results":1,`+rows+`}`)
	old := file("old.json", `{"tool":"fnmesh",`+rows+`}`)
	partial := file("partial.json", `{"tool":"fnmesh","planned_results":21,"partial":true,"stopped":"stopped: interrupt signal received",`+rows+`}`)
	csv := file("theirs.csv", "op,np,size,iterations,avg_us,min_us,max_us,mb_per_s\nallreduce,2,1048576,5,10.000,9.000,11.000,1.000\n")
	const warning = ": partial run: 1 of 21 results (stopped: interrupt signal received): the rows it lacks are not compared"
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		wantOut    string
		wantStderr string
	}{
		{"complete", []string{complete, csv}, 0, "", ""},
		{"complete, strict", []string{"-strict", complete, csv}, 0, "", ""},
		{"from before the field", []string{"-strict", old, csv}, 0, "", ""},
		{"ours partial", []string{partial, csv}, 0, "WARNING: " + partial + warning, ""},
		{"theirs partial", []string{csv, partial}, 0, "WARNING: " + partial + warning, ""},
		{"partial, strict", []string{"-strict", partial, csv}, 3, "WARNING: " + partial + warning,
			"fnmesh bench compare: -strict: " + partial + ": partial run: 1 of 21 results"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"bench", "compare"}, tc.args...), &stdout, &stderr)
			assert.Equal(t, tc.code, code, "stderr: %s", stderr.String())
			assert.Contains(t, stdout.String(), "allreduce")
			assert.Contains(t, stdout.String(), "MET")
			if tc.wantOut == "" {
				assert.NotContains(t, stdout.String(), "WARNING")
			} else {
				assert.Contains(t, stdout.String(), tc.wantOut)
			}
			if tc.wantStderr == "" {
				assert.Empty(t, stderr.String())
			} else {
				assert.Contains(t, stderr.String(), tc.wantStderr)
			}
		})
	}
}

// Runs that did not measure alike (a row one of them lacks, a row timed
// over a different number of calls) are compared with a warning naming the
// rows, and fail -strict: they used to be paired, or dropped, silently.
func TestBenchCompareUnlikeRuns(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	const header = "op,np,size,iterations,avg_us,min_us,max_us,mb_per_s\n"
	const row = "allreduce,2,1048576,100,10.000,9.000,11.000,1.000\n"
	theirs := file("theirs.csv", header+row)
	for _, tc := range []struct {
		name, ours string
		args       []string
		code       int
		warnings   []string
	}{
		{"alike", header + row, nil, 0, nil},
		{"alike, strict", header + row, []string{"-strict"}, 0, nil},
		{"other iterations", header + "allreduce,2,1048576,20,10.000,9.000,11.000,1.000\n", nil, 0,
			[]string{"allreduce np=2 1M: 20 calls in fnmesh, 100 in openmpi"}},
		{"a row only in ours", header + row + "bcast,2,1048576,100,10.000,9.000,11.000,1.000\n", nil, 0,
			[]string{"bcast np=2 1M: only in fnmesh"}},
		{"other iterations, strict", header + "allreduce,2,1048576,20,10.000,9.000,11.000,1.000\n", []string{"-strict"}, 3,
			[]string{"allreduce np=2 1M: 20 calls in fnmesh, 100 in openmpi"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours := file("ours.csv", tc.ours)
			var stdout, stderr bytes.Buffer
			args := append(append([]string{"bench", "compare", "-names", "fnmesh,openmpi"}, tc.args...), ours, theirs)
			code := run(context.Background(), args, &stdout, &stderr)
			assert.Equal(t, tc.code, code, "stderr: %s", stderr.String())
			assert.Regexp(t, `(?m)^allreduce\s+2\s+1M\s+10\.00\s+10\.00\s+1\.000$`, stdout.String())
			if len(tc.warnings) == 0 {
				assert.NotContains(t, stdout.String(), "WARNING")
				assert.Empty(t, stderr.String())
			}
			for _, w := range tc.warnings {
				assert.Contains(t, stdout.String(), "WARNING: not measured alike: "+w)
			}
			if tc.code == 3 {
				assert.Contains(t, stderr.String(), "-strict: not measured alike: "+tc.warnings[0])
			}
		})
	}
}
