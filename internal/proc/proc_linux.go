package proc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DieWithParent has the kernel kill cmd's process (SIGKILL) when the
// process that starts it dies, however it dies: killed, crashed or exited.
// Call it before cmd.Start. (Linux sends the signal when the starting
// thread ends; the Go runtime does not end its threads while the program
// runs.)
func DieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// Children lists the child processes of pid, from each of its threads'
// /proc children files; nil if pid has none or is gone.
func Children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended meanwhile
		}
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// Alive reports whether process pid still runs; a zombie (ended, not yet
// waited for) counts as ended.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parentheses
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// WaitChildren polls Children(pid) until it lists at least n processes or
// within has passed, and returns what it last listed.
func WaitChildren(pid, n int, within time.Duration) []int {
	deadline := time.Now().Add(within)
	kids := Children(pid)
	for len(kids) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		kids = Children(pid)
	}
	return kids
}

// WaitGone polls until process pid has ended (see Alive) or the deadline
// passes, and reports whether it ended.
func WaitGone(pid int, deadline time.Time) bool {
	for Alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return !Alive(pid)
}
