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

// A results file saved by an editor that starts files with a UTF-8 byte
// order mark is read as without it: the CSV header used to be taken for
// a row (`np "np": not a count`), and a JSON report for a CSV file
// ("1 fields, want 8").
func TestBenchCompareByteOrderMark(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	const bom = "\xef\xbb\xbf"
	csv := "op,np,size,iterations,avg_us,min_us,max_us,mb_per_s\nallreduce,2,1048576,5,10.000,9.000,11.000,1.000\n"
	json := `{"tool":"fnmesh","results":[{"op":"allreduce","np":2,"size":1048576,"iterations":5,"avg_us":8,"min_us":1,"max_us":30,"mb_per_s":1}]}`
	theirs := file("theirs.csv", csv)
	for _, tc := range []struct {
		name, body string
		ratio      string
	}{
		{"csv", bom + csv, "1.000"},
		{"json", bom + json, "0.800"},
		{"json after blank lines", bom + "\n\n" + json, "0.800"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"bench", "compare", file("ours", tc.body), theirs}, &stdout, &stderr)
			require.Equal(t, 0, code, "stderr: %s", stderr.String())
			assert.Regexp(t, `(?m)^allreduce\s+2\s+1M\s+\S+\s+10\.00\s+`+tc.ratio, stdout.String())
			assert.Empty(t, stderr.String())
		})
	}
}
