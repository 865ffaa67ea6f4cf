//go:build unix

package main

import (
	"encoding/json"
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
		name             string
		joinRows, gbRows int64
		joinSec          float64
		wantErr          string
	}{
		{"same rows", 222, 120, 1, ""},
		// A different result used to print a warning and exit 0.
		{"join rows differ", 221, 120, 1, "row counts differ"},
		{"group-by rows differ", 222, 121, 1, "row counts differ"},
		// A file that is not bench/duckdb's (the two swapped, or the frame
		// report twice) used to be read as a DuckDB run of 0 s: "+Infx".
		{"no DuckDB time", 222, 120, 0, "duckdb.json: no join time (join_s): not bench/duckdb's -json output"},
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
			err := compare(write("frame.json", rep), write("duckdb.json", duckResult{Threads: 2, JoinSec: tc.joinSec, JoinRows: tc.joinRows,
				GroupBySec: 1, GroupByRows: tc.gbRows}), 0)
			if tc.wantErr == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tc.wantErr)
			}
		})
	}
}
