//go:build unix

package outfile

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A named pipe is written to as it is when a process reads it, and is an
// error at once when none does: opening it for writing would otherwise
// block until a reader came, with no way to give up.
func TestWriteAtomicToNamedPipe(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "results.pipe")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	require.NoError(t, CheckWritable(fifo))

	done := make(chan error, 1)
	go func() { done <- WriteFile(fifo, []byte("results\n")) }()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "no process reads the named pipe")
	case <-time.After(10 * time.Second):
		// Unblock the open so that the goroutine ends.
		if f, err := os.Open(fifo); err == nil {
			f.Close()
		}
		t.Fatal("WriteFile to a pipe nobody reads blocked")
	}

	// A reader: one end open (so that the pipe has a reader when the
	// write opens it), and a second that blocks in its open until the
	// writer comes and then reads everything.
	held, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	require.NoError(t, err)
	defer held.Close()
	got := make(chan string, 1)
	go func() {
		r, err := os.Open(fifo)
		if err != nil {
			got <- err.Error()
			return
		}
		defer r.Close()
		b, _ := io.ReadAll(r)
		got <- string(b)
	}()
	// More than a pipe holds: the writes wait for the reader.
	big := bytes.Repeat([]byte("results\n"), 1<<17)
	require.NoError(t, WriteFile(fifo, big))
	select {
	case s := <-got:
		assert.Equal(t, string(big), s)
	case <-time.After(10 * time.Second):
		t.Fatal("the reader got nothing")
	}
	fi, err := os.Lstat(fifo)
	require.NoError(t, err)
	assert.Equal(t, os.ModeNamedPipe, fi.Mode().Type(), "still a pipe")
}
