//go:build unix

package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCompare(t *testing.T) {
	rep := report{Runs: []run{{Workers: 2, RowsTotal: 200,
		Join:    opStats{TotalSec: 1, OutRows: 222},
		GroupBy: opStats{TotalSec: 1, OutRows: 120}}}}
	for _, tc := range []struct {
		name                string
		joinRows, gbRows    int64
		joinSec             float64
		leftRows, rightRows int64
		wantErr             string
	}{
		{"same rows", 222, 120, 1, 200, 200, ""},
		{"inputs not recorded", 222, 120, 1, 0, 0, ""},
		// A different result used to print a warning and exit 0.
		{"join rows differ", 221, 120, 1, 200, 200, "row counts differ"},
		{"group-by rows differ", 222, 121, 1, 200, 200, "row counts differ"},
		// DuckDB read files a run with more workers had left in -data: the
		// inputs differ, which used to be reported as results that differ.
		{"inputs differ", 331, 150, 1, 300, 300, "the inputs differ: DuckDB read 300 left and 300 right rows"},
		// A file that is not bench/duckdb's (the two swapped, or the frame
		// report twice) used to be read as a DuckDB run of 0 s: "+Infx".
		{"no DuckDB time", 222, 120, 0, 200, 200, "duckdb.json: no join time (join_s): not bench/duckdb's -json output"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write := func(name string, v any) string {
				b, err := json.Marshal(v)
				require.NoError(t, err)
				p := filepath.Join(dir, name)
				require.NoError(t, os.WriteFile(p, b, 0o600))
				return p
			}
			stdout := os.Stdout
			r, w, err := os.Pipe()
			require.NoError(t, err)
			os.Stdout = w
			printed := make(chan string, 1)
			go func() { b, _ := io.ReadAll(r); printed <- string(b) }()
			err = compare(write("frame.json", rep), write("duckdb.json", duckResult{Threads: 2, JoinSec: tc.joinSec, JoinRows: tc.joinRows,
				GroupBySec: 1, GroupByRows: tc.gbRows, LeftRows: tc.leftRows, RightRows: tc.rightRows}), 0)
			os.Stdout = stdout
			require.NoError(t, w.Close())
			out := <-printed
			if tc.wantErr == "" {
				assert.NoError(t, err)
				assert.Regexp(t, `(?m)^join .* MET$`, out)
				return
			}
			assert.ErrorContains(t, err, tc.wantErr)
			if tc.joinSec > 0 {
				// Times of different computations are not held against
				// the target (the join used to be "MET" beside FAILED).
				assert.Contains(t, out, "FAILED: "+err.Error())
				assert.NotRegexp(t, `MET|MISSED`, out)
			}
		})
	}
}
