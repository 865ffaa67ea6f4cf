package outfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, path, err string
	}{
		{"empty path", "", ""},
		{"new file", filepath.Join(dir, "r.json"), ""},
		{"a directory", dir, "is a directory"},
		{"missing directory", filepath.Join(dir, "missing", "r.json"), "cannot create a file in " + filepath.Join(dir, "missing")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckWritable(tc.path)
			if tc.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.err)
				assert.NotContains(t, err.Error(), ".check-", "the temporary file's name is not shown")
			}
		})
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "the checks leave nothing behind")
}

// A results file is replaced only by a complete one.
func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.csv")
	require.NoError(t, WriteFile(path, []byte("old results\n")))
	err := WriteAtomic(path, func(w io.Writer) error {
		_, _ = io.WriteString(w, "half of the new")
		return errors.New("disk full")
	})
	require.ErrorContains(t, err, "disk full")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "old results\n", string(b), "a failed write leaves the old file")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "and no temporary file")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())

	require.NoError(t, WriteFile(path, []byte("new\n")))
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new\n", string(b))
}
