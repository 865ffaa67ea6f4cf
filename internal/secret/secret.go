// Package secret reads the job secret, the key that the rendezvous server
// and every worker of a job share and authenticate each other with. The
// commands that need it (cmd/rendezvous and fnmesh join) read it the same
// way through Load: from the file named by their --secret-file flag, else
// from $FNMESH_SECRET. The library layers never read it themselves: they
// take the secret as a []byte (rendezvous.NewServer, rendezvous.Join), and
// this package sits beside the commands, above every layer, importing
// nothing of fnmesh's. (examples/allreduce keeps a copy of Load of its own,
// because users copy the example out of the module, where internal
// packages cannot be imported.)
package secret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Env is the environment variable that carries the job secret when no
// secret file is given.
const Env = "FNMESH_SECRET"

// MaxSize is the most bytes a secret file may hold. A job secret is tens of
// bytes; a file larger than this is not one (a file named by mistake,
// or /dev/zero, which would otherwise be read until memory runs out).
const MaxSize = 64 << 10

// Load returns the job secret: the contents of file, without its trailing
// newlines (LF or CRLF), if file is not empty, else the value of $FNMESH_SECRET.
// A file wins over the environment. It is an error for the file to be
// missing, unreadable, empty (once its newlines are gone) or larger than
// MaxSize, and for neither to be given.
//
// The file may be a pipe (/dev/stdin, a FIFO, a shell's <(...)), which
// blocks until something writes to it and closes it: Load returns when ctx
// ends, with an error that wraps ctx's cause, even if the read goes on
// blocking (it then ends with the process, or when the pipe is written).
func Load(ctx context.Context, file string) ([]byte, error) {
	if file == "" {
		if s := os.Getenv(Env); s != "" {
			return []byte(s), nil
		}
		return nil, errors.New("no job secret: pass --secret-file or set " + Env)
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := readFile(file)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("secret: reading %s: %w", file, context.Cause(ctx))
	}
}

// readFile is Load's read of a secret file.
func readFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("secret: %s holds more than %d bytes: it is not a job secret", file, MaxSize)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) == 0 {
		return nil, fmt.Errorf("secret: %s is empty", file)
	}
	return b, nil
}
