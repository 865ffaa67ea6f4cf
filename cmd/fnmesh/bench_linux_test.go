//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/internal/osu"
	"github.com/fnmesh/fnmesh/internal/proc"
)

// needWorkerProcesses skips a test that starts bench worker processes
// over loopback TCP under -short, or where there is no /proc to find them.
func needWorkerProcesses(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts worker processes over loopback TCP; skipped with -short")
	}
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("needs /proc to find the worker processes")
	}
}

func TestBenchWorkerKilled(t *testing.T) {
	needWorkerProcesses(t)
	bin := buildFnmesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Enough work that the run is still going when a worker dies.
	cmd := exec.CommandContext(ctx, bin, "bench", "-np", "3", "-ops", "allgather", "-min", "1", "-max", "1K",
		"-iters", "1000000", "-progress=false", "-timeout", "90s")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())

	kids := proc.WaitChildren(cmd.Process.Pid, 3, 30*time.Second)
	require.Len(t, kids, 3, "three workers started")
	time.Sleep(time.Second) // let them join and start measuring
	require.NoError(t, syscall.Kill(kids[1], syscall.SIGKILL))

	start := time.Now()
	err := cmd.Wait()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "bench fails when a worker dies: %v\n%s", err, stderr.String())
	assert.Equal(t, 1, exit.ExitCode())
	assert.Less(t, time.Since(start), 60*time.Second, "and does not wait for the timeout")
	assert.Contains(t, stderr.String(), "signal: killed")
	for _, k := range kids {
		assert.Error(t, syscall.Kill(k, 0), "worker %d is gone", k)
	}
}

// A bench killed outright (it cannot stop its workers itself then) takes
// its workers with it: they used to run on, orphaned, until their -timeout.
func TestBenchParentKilled(t *testing.T) {
	needWorkerProcesses(t)
	bin := buildFnmesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "bench", "-np", "2", "-ops", "allgather", "-min", "1", "-max", "1K",
		"-iters", "1000000", "-progress=false", "-timeout", "90s")
	require.NoError(t, cmd.Start())
	kids := proc.WaitChildren(cmd.Process.Pid, 2, 30*time.Second)
	require.Len(t, kids, 2, "two workers started")
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for _, k := range kids {
		if !assert.True(t, proc.WaitGone(k, deadline), "worker %d ended with the bench", k) {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
	}
}

// An interrupted bench stops its workers, exits 1 saying why, and writes
// what it measured, saying that it is partial: the files used to look like
// a complete run's.
func TestBenchInterrupted(t *testing.T) {
	needWorkerProcesses(t)
	bin := buildFnmesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	csvPath := filepath.Join(t.TempDir(), "r.csv")
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	cmd := exec.CommandContext(ctx, bin, "bench", "-np", "2", "-ops", "allgather", "-min", "1", "-max", "1M",
		"-iters", "20000", "-iters-large", "20000", "-timeout", "90s", "-csv", csvPath, "-json", jsonPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	kids := proc.WaitChildren(cmd.Process.Pid, 2, 30*time.Second)
	require.Len(t, kids, 2, "two workers started")
	time.Sleep(2 * time.Second)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	err := cmd.Wait()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "%v\n%s", err, stderr.String())
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, stderr.String(), "stopped: interrupt signal received")
	assert.NotContains(t, stderr.String(), "█", "no progress bar off a terminal")
	for _, k := range kids {
		assert.True(t, proc.WaitGone(k, time.Now().Add(10*time.Second)), "worker %d is gone", k)
	}
	f, err := os.Open(csvPath)
	if errors.Is(err, os.ErrNotExist) {
		assert.Empty(t, stdout.String(), "no results, no table, no file")
		return
	}
	require.NoError(t, err)
	defer f.Close()
	results, err := osu.ReadCSV(f)
	require.NoError(t, err)
	assert.Contains(t, stderr.String(), fmt.Sprintf("%s, %s: partial, %d of 21 results", csvPath, jsonPath, len(results)))
	// The JSON report says so too (it used to look like a complete run's).
	jf, err := os.Open(jsonPath)
	require.NoError(t, err)
	defer jf.Close()
	rep, err := osu.ReadJSON(jf)
	require.NoError(t, err)
	assert.True(t, rep.Partial)
	assert.Equal(t, 21, rep.Planned)
	assert.Len(t, rep.Results, len(results))
	assert.Contains(t, rep.Stopped, "stopped: interrupt signal received")
	assert.Equal(t, fmt.Sprintf("partial run: %d of 21 results (%s)", len(results), rep.Stopped), rep.PartialNote())
}
