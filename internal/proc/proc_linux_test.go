package proc_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/internal/proc"
)

// TestChildrenAndAlive: a child started here is listed and alive; once it
// has ended and been waited for, it is neither.
func TestChildrenAndAlive(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	assert.Contains(t, proc.Children(os.Getpid()), pid)
	assert.Contains(t, proc.WaitChildren(os.Getpid(), 1, time.Second), pid)
	assert.True(t, proc.Alive(pid))
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	assert.NotContains(t, proc.Children(os.Getpid()), pid)
	assert.False(t, proc.Alive(pid))
	assert.Nil(t, proc.Children(-1))
}

// TestDieWithParent: a shell started with DieWithParent starts a grandchild
// the same way and is then killed outright; the grandchild dies with it.
// The shell is this test binary itself, run in a helper mode.
func TestDieWithParent(t *testing.T) {
	if os.Getenv("PROC_TEST_PARENT") == "1" {
		child := exec.Command("sleep", "30")
		proc.DieWithParent(child)
		if err := child.Start(); err != nil {
			os.Exit(1)
		}
		os.Stdout.WriteString(strconv.Itoa(child.Process.Pid) + "\n")
		time.Sleep(30 * time.Second)
		os.Exit(0)
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parent := exec.CommandContext(ctx, exe, "-test.run", "^TestDieWithParent$")
	parent.Env = append(os.Environ(), "PROC_TEST_PARENT=1")
	out, err := parent.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, parent.Start())
	var buf [32]byte
	n, _ := out.Read(buf[:])
	pid, err := strconv.Atoi(string(slices.DeleteFunc(buf[:n], func(b byte) bool { return b < '0' || b > '9' })))
	require.NoError(t, err, "the helper's output %q", buf[:n])
	require.True(t, proc.Alive(pid))
	require.NoError(t, parent.Process.Kill())
	_ = parent.Wait()
	assert.True(t, proc.WaitGone(pid, time.Now().Add(10*time.Second)), "the grandchild %d outlived its killed parent", pid)
}
