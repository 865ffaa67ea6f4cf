//go:build unix

package main

import "syscall"

// openFileLimit returns the soft RLIMIT_NOFILE of this process. The Go
// runtime has raised it to the hard limit already (since Go 1.19, the
// syscall package's init sets the soft limit to the hard one, less one), so
// this is as high as the process can go without privileges.
func openFileLimit() (uint64, bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, false
	}
	return uint64(lim.Cur), true
}
