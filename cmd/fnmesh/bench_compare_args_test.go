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

// A flag after the two files is not read as a flag (the flag package stops
// at the first file): bench compare used to answer "want two result files
// (got 3)" to two files and -strict, which had the user count files.
func TestBenchCompareFlagAfterFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	require.NoError(t, os.WriteFile(good, []byte("op,np,size,iterations,avg_us,min_us,max_us,mb_per_s\nallreduce,2,8,5,13.3,7.8,18.7,0.6\n"), 0o644))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"-strict", []string{good, good, "-strict"}, `"-strict" after the files: flags go before them`},
		{"-png with its value", []string{good, good, "-png", filepath.Join(dir, "r.png")}, `"-png" after the files: flags go before them`},
		{"between the files", []string{good, "--names=a,b", good}, `"--names=a,b" after the files: flags go before them`},
		{"three files", []string{good, good, good}, "want two result files, ours and theirs (got 3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"bench", "compare"}, tc.args...), &stdout, &stderr)
			assert.Equal(t, 2, code)
			assert.Contains(t, stderr.String(), tc.want)
			assert.Empty(t, stdout.String())
		})
	}
	_, err := os.Stat(filepath.Join(dir, "r.png"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing was run")
}
