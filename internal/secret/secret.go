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
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"
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
// ends, with an error that wraps ctx's cause. It reads in a goroutine of its
// own, and when ctx ends it ends that read before it returns: a read of a
// pipe or terminal is woken by a past read deadline, and the open of a
// named pipe that no writer has opened yet (which blocks in the kernel) by
// opening the pipe for writing and closing it at once. Only an open or read
// that neither wakes (a hung network file system) is left behind, after
// stopWait, to end with the process.
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
		b, err := readFile(ctx, file)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-ctx.Done():
	}
	// readFile's own AfterFunc wakes a read; an open of a named pipe
	// blocked for want of a writer is woken here, again every
	// stopPoll in case readFile had not reached its open yet.
	stopped := time.NewTimer(stopWait)
	defer stopped.Stop()
	poll := time.NewTicker(stopPoll)
	defer poll.Stop()
	wakeOpen(file)
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-stopped.C:
			waiting = false
		case <-poll.C:
			wakeOpen(file)
		}
	}
	return nil, fmt.Errorf("secret: reading %s: %w", file, context.Cause(ctx))
}

// stopWait bounds how long Load, once its ctx has ended, waits for the
// read it started to end; stopPoll is how often it wakes a blocked open of
// a named pipe meanwhile.
const (
	stopWait = time.Second
	stopPoll = 20 * time.Millisecond
)

// wakeOpen ends an open of file for reading that blocks because file is a
// named pipe that no writer has opened: it opens the pipe for writing
// without blocking (which fails at once if no reader is waiting) and closes
// it, so that the read that follows the open sees the end of the pipe.
func wakeOpen(file string) {
	if fi, err := os.Stat(file); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		return
	}
	if w, err := os.OpenFile(file, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		w.Close()
	}
}

// readFile is Load's read of a secret file. Once ctx has ended, a read
// that blocks (a pipe, a terminal) is woken by a past deadline.
func readFile(ctx context.Context, file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	defer f.Close()
	// A regular file has no deadlines (ErrNoDeadline), and needs none.
	defer context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })()
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
