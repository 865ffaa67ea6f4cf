package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		str  string
	}{
		{"0", 0, "0"},
		{"1048576", 1 << 20, "1MiB"},
		{"64KiB", 64 << 10, "64KiB"},
		{"1 GiB", 1 << 30, "1GiB"},
		{"2MB", 2_000_000, "2000000"},
		{"5kB", 5000, "5000"},
		{"123B", 123, "123"},
		// K, M and G alone are binary, as in fnmesh bench's -min and -max.
		{"64K", 64 << 10, "64KiB"},
		{"1M", 1 << 20, "1MiB"},
		{"2 G", 2 << 30, "2GiB"},
	} {
		var b byteSize
		require.NoError(t, b.Set(tc.in), tc.in)
		assert.Equal(t, tc.want, int64(b), tc.in)
		assert.Equal(t, tc.str, b.String(), tc.in)
	}
	for _, bad := range []string{"", "-1", "1.5MiB", "MiB", "12XB", "9999999999TiB", "9999999999T", "1Mi", "M"} {
		var b byteSize
		assert.Error(t, b.Set(bad), bad)
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(file, []byte("s3cret value\n"), 0o600))

	t.Setenv(secretEnv, "from-env")
	got, err := loadSecret(file)
	require.NoError(t, err)
	assert.Equal(t, "s3cret value", string(got), "the file wins over the environment, without its newline")

	got, err = loadSecret("")
	require.NoError(t, err)
	assert.Equal(t, "from-env", string(got))

	t.Setenv(secretEnv, "")
	_, err = loadSecret("")
	assert.ErrorContains(t, err, "--secret-file")

	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	_, err = loadSecret(empty)
	assert.ErrorContains(t, err, "empty")
	_, err = loadSecret(filepath.Join(dir, "missing"))
	assert.Error(t, err)
}
