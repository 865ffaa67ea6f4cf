//go:build !linux

package proc

import (
	"os/exec"
	"time"
)

// DieWithParent does nothing here: only Linux kills a process when its
// parent dies (Pdeathsig). Callers still stop their children themselves
// when they are interrupted.
func DieWithParent(*exec.Cmd) {}

// Children is not known on this platform: nil.
func Children(pid int) []int { return nil }

// Alive is not known on this platform: false.
func Alive(pid int) bool { return false }

// WaitChildren is not known on this platform: nil.
func WaitChildren(pid, n int, within time.Duration) []int { return nil }

// WaitGone is not known on this platform: false.
func WaitGone(pid int, deadline time.Time) bool { return false }
