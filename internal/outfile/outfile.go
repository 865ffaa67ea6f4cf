// Package outfile writes the result files of the project's benchmark
// commands (fnmesh bench, framebench): it checks up front that a path can
// be written, so that a run does not end in a failed write, and replaces a
// file only with a complete one. It sits beside the commands, above every
// library layer, and imports nothing of ours.
package outfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// CheckWritable checks that a file can be written at path: that path is
// not a directory and that its directory exists and takes a new file. It
// leaves nothing behind. An empty path is nothing to write, and passes. A
// path that is a symbolic link is checked where it leads (see WriteAtomic);
// one that is no regular file (a device such as /dev/stdout, a named pipe)
// is not opened here, and passes: it is written as it is.
func CheckWritable(path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s: is a directory", path)
	}
	resolved, special := target(path)
	if special {
		return nil
	}
	dir := filepath.Dir(resolved)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the temporary file's name means nothing to the user
		}
		return fmt.Errorf("%s: cannot create a file in %s: %w", path, dir, err)
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}

// WriteAtomic writes path through fn by way of a temporary file in the
// same directory, renamed over path (mode 0644) only once fn and the close
// succeeded: a write that fails half-way (fn's error, a full disk) leaves
// path as it was, not a truncated file, and no temporary file behind.
//
// A path that is a symbolic link to a regular file is written where it
// leads (the link stays a link). A path that is no regular file (a device
// such as /dev/stdout or /dev/null, a named pipe) cannot be replaced, and
// is not: fn writes to it directly; a named pipe that no process reads is
// an error, not a wait for a reader.
func WriteAtomic(path string, fn func(io.Writer) error) error {
	path, special := target(path)
	if special {
		flag := os.O_WRONLY
		fi, err := os.Stat(path)
		pipe := err == nil && fi.Mode()&os.ModeNamedPipe != 0
		if pipe {
			// Without a reader the open would block until one came:
			// fail at once instead (ENXIO).
			flag |= syscall.O_NONBLOCK
		}
		f, err := os.OpenFile(path, flag, 0)
		if pipe && errors.Is(err, syscall.ENXIO) {
			return fmt.Errorf("%s: no process reads the named pipe", path)
		}
		if err != nil {
			return err
		}
		err = fn(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	err = fn(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	return err
}

// WriteFile is WriteAtomic of the bytes b.
func WriteFile(path string, b []byte) error {
	return WriteAtomic(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// target is where a write to path goes: path itself, or the file a
// symbolic link leads to; special says that it exists and is neither a
// regular file nor a directory (a device, a named pipe, a socket), which
// is written to as it is.
func target(path string) (string, bool) {
	fi, err := os.Stat(path) // through links
	if err != nil {
		return path, false // a new file (or a dangling link, replaced)
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		return path, true
	}
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		return resolved, false
	}
	return path, false
}
