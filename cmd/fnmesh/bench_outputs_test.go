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

// Two of -csv, -json and -png naming one file is a usage error, said
// before the run: the last one written used to replace the other without
// a word, so that "-csv r.out -json r.out" left JSON alone after a run
// that had asked for both.
func TestBenchOutputsDistinct(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"csv and json", []string{"-csv", "r.out", "-json", "r.out"}, "-csv and -json name the same file r.out"},
		{"json and png, spelled apart", []string{"-json", filepath.Join(dir, "r.out"), "-png", "./r.out"}, "-json and -png name the same file ./r.out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"bench", "-np", "1", "-ops", "barrier", "-min", "1", "-max", "1"}, tc.args...)
			assert.Equal(t, 2, run(context.Background(), args, &stdout, &stderr))
			assert.Contains(t, stderr.String(), tc.want)
			assert.Empty(t, stdout.String())
		})
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing was written")
}

// A device takes one output after another: -csv and -json both to
// /dev/null (or /dev/stdout) are not one file overwritten.
func TestBenchOutputsToOneDevice(t *testing.T) {
	if _, err := os.Stat(os.DevNull); err != nil {
		t.Skipf("no %s: %v", os.DevNull, err)
	}
	var stderr bytes.Buffer
	_, err := parseBenchFlags([]string{"-csv", os.DevNull, "-json", os.DevNull}, &stderr)
	assert.NoError(t, err)
}
