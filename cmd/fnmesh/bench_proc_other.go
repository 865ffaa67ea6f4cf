//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing here: only Linux kills a process when its
// parent dies (Pdeathsig). An interrupted bench still stops its workers.
func dieWithParent(*exec.Cmd) {}
