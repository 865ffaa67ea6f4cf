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
		wantErr          string
	}{
		{"same rows", 222, 120, ""},
		// A different result used to print a warning and exit 0.
		{"join rows differ", 221, 120, "row counts differ"},
		{"group-by rows differ", 222, 121, "row counts differ"},
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
			err := compare(write("frame.json", rep), write("duckdb.json", duckResult{Threads: 2, JoinSec: 1, JoinRows: tc.joinRows,
				GroupBySec: 1, GroupByRows: tc.gbRows}), 0)
			if tc.wantErr == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tc.wantErr)
			}
		})
	}
}
