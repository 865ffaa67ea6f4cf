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

// A -png that names one of the inputs is a usage error: the plot used to
// be written over that results file once it had been read.
func TestBenchComparePNGOverAnInput(t *testing.T) {
	dir := t.TempDir()
	const body = "op,np,size,iterations,avg_us,min_us,max_us,mb_per_s\nallreduce,2,8,5,13.3,7.8,18.7,0.6\n"
	ours, theirs := filepath.Join(dir, "ours.csv"), filepath.Join(dir, "theirs.csv")
	require.NoError(t, os.WriteFile(ours, []byte(body), 0o644))
	require.NoError(t, os.WriteFile(theirs, []byte(body), 0o644))
	for _, png := range []string{ours, filepath.Join(dir, ".", "theirs.csv")} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"bench", "compare", "-png", png, ours, theirs}, &stdout, &stderr)
		assert.Equal(t, 2, code)
		assert.Contains(t, stderr.String(), "-png "+png+": is one of the input files (it would be overwritten)")
		assert.Empty(t, stdout.String())
	}
	for _, p := range []string{ours, theirs} {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		assert.Equal(t, body, string(b), "%s is as it was", p)
	}
}
