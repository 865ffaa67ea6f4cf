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
