package secret

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	// sized makes a file of n bytes without writing them (sparse where
	// the file system allows).
	sized := func(name string, n int64) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		require.NoError(t, err)
		require.NoError(t, f.Truncate(n))
		require.NoError(t, f.Close())
		return p
	}
	for _, tc := range []struct {
		name string
		file string // "" reads the environment
		env  string
		want string
		err  string // when not "": the error must contain it
	}{
		{name: "file with LF", file: write("lf", "s3cret value\n"), want: "s3cret value"},
		{name: "file with CRLF", file: write("crlf", "s3cret value\r\n"), want: "s3cret value"},
		{name: "file with several trailing newlines", file: write("many", "s3cret\r\n\n\r\n"), want: "s3cret"},
		{name: "file without a newline", file: write("bare", "s3cret"), want: "s3cret"},
		{name: "inner newlines and spaces are kept", file: write("inner", " a\nb \n"), want: " a\nb "},
		{name: "file wins over the environment", file: write("wins", "from-file\n"), env: "from-env", want: "from-file"},
		{name: "file of MaxSize bytes", file: write("max", strings.Repeat("k", MaxSize)), want: strings.Repeat("k", MaxSize)},
		{name: "empty file", file: write("empty", ""), env: "from-env", err: "secret: " + filepath.Join(dir, "empty") + " is empty"},
		{name: "file of newlines only", file: write("newlines", "\r\n\n"), err: "is empty"},
		{name: "missing file", file: filepath.Join(dir, "missing"), env: "from-env", err: "secret: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{name: "directory", file: dir, err: "is a directory"},
		{name: "file over MaxSize", file: sized("big", MaxSize+1), err: "holds more than 65536 bytes"},
		// os.ReadFile allocated the file's whole size up front: the
		// command died of "fatal error: out of memory" here.
		{name: "1 TiB file", file: sized("huge", 1<<40), err: "holds more than 65536 bytes"},
		{name: "environment", env: "from-env", want: "from-env"},
		{name: "environment kept as given", env: " from-env\n", want: " from-env\n"},
		{name: "neither", err: "no job secret: pass --secret-file or set FNMESH_SECRET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(Env, tc.env)
			got, err := Load(context.Background(), tc.file)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
		})
	}
}

// TestLoadPipe: a secret file may be a pipe; one that nobody writes to
// blocks the read, and Load returns when ctx ends. (fnmesh join
// --secret-file /dev/stdin, run at a terminal without a pipe, waited for
// ever: Ctrl-C, which the commands catch, did nothing.) The read it started
// has ended too by then, whether the pipe had no writer at all (its open
// blocks) or one that holds it open and writes nothing (its read blocks).
func TestLoadPipe(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		write string // "": nobody writes
		hold  bool   // a writer opens the pipe and keeps it open, writing nothing
		want  string
		err   string
	}{
		{name: "written", write: "from a pipe\n", want: "from a pipe"},
		{name: "never opened", err: "secret: reading " + filepath.Join(dir, "never opened") + ": test stopped it"},
		{name: "held open", hold: true, err: "secret: reading " + filepath.Join(dir, "held open") + ": test stopped it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fifo := filepath.Join(dir, tc.name)
			mkfifo(t, fifo)
			switch {
			case tc.write != "":
				go func() {
					f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
					if err == nil {
						_, _ = f.WriteString(tc.write)
						_ = f.Close()
					}
				}()
			case tc.hold:
				held := make(chan *os.File, 1)
				go func() {
					f, _ := os.OpenFile(fifo, os.O_WRONLY, 0) // returns once Load opened it
					held <- f
				}()
				t.Cleanup(func() {
					select {
					case f := <-held:
						if f != nil {
							_ = f.Close()
						}
					case <-time.After(5 * time.Second):
						t.Error("the writer never opened the pipe: Load did not open it")
					}
				})
			}
			ctx, cancel := context.WithCancelCause(context.Background())
			timer := time.AfterFunc(200*time.Millisecond, func() { cancel(errors.New("test stopped it")) })
			defer timer.Stop()
			start := time.Now()
			got, err := Load(ctx, fifo)
			assert.Less(t, time.Since(start), 5*time.Second)
			assert.Zero(t, readsLeft(), "a read of the secret file outlived Load")
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				assert.ErrorIs(t, err, context.Cause(ctx))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
		})
	}
}

// readsLeft counts the goroutines still in readFile.
func readsLeft() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "internal/secret.readFile(")
}

// mkfifo makes a named pipe at path, or skips the test where it cannot.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command("mkfifo", path).CombinedOutput(); err != nil {
		t.Skipf("no named pipe here: mkfifo: %v %s", err, out)
	}
}
