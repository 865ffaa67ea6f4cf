package outfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A path that is a symbolic link is written through: the file it points to
// gets the new contents and the link stays. WriteAtomic used to rename its
// temporary file over the link, which left the file it pointed to as it
// was and the link replaced by a copy.
func TestWriteAtomicThroughSymlink(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	target := filepath.Join(elsewhere, "results.csv")
	require.NoError(t, os.WriteFile(target, []byte("old\n"), 0o644))
	link := filepath.Join(dir, "latest.csv")
	require.NoError(t, os.Symlink(target, link))

	require.NoError(t, CheckWritable(link))
	require.NoError(t, WriteFile(link, []byte("new\n")))

	fi, err := os.Lstat(link)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSymlink, fi.Mode().Type(), "the link is still a link")
	b, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "new\n", string(b), "the file it points to has the new contents")
	for _, d := range []string{dir, elsewhere} {
		entries, err := os.ReadDir(d)
		require.NoError(t, err)
		assert.Len(t, entries, 1, "no temporary file left in %s", d)
	}
}

// A path that is no regular file (a device, such as /dev/stdout or
// /dev/null, or a named pipe) is written to as it is: it cannot be
// replaced atomically, and replacing it was wrong. WriteAtomic used to
// rename a regular file over it, so that "-csv /dev/stdout" run as root
// replaced /dev/stdout with a file (and failed to create a file in /dev
// otherwise); here a link to /dev/null stands in for it.
func TestWriteAtomicToDevice(t *testing.T) {
	if _, err := os.Stat(os.DevNull); err != nil {
		t.Skipf("no %s: %v", os.DevNull, err)
	}
	dir := t.TempDir()
	link := filepath.Join(dir, "null")
	require.NoError(t, os.Symlink(os.DevNull, link))

	require.NoError(t, CheckWritable(link))
	require.NoError(t, WriteFile(link, []byte("results\n")))

	fi, err := os.Lstat(link)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSymlink, fi.Mode().Type(), "the link was not replaced")
	fi, err = os.Stat(link)
	require.NoError(t, err)
	assert.NotZero(t, fi.Mode()&os.ModeDevice, "it still leads to the device")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}
