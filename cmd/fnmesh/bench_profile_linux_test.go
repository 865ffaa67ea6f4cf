//go:build linux

package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/internal/proc"
)

// An interrupted bench lets its workers stop and write their -cpuprofile
// files (a run that is taking too long is the one to profile): they were
// killed outright, which left every profile empty. They stop without a
// word of their own: the bench says why it stopped, once.
func TestBenchInterruptedKeepsProfiles(t *testing.T) {
	needWorkerProcesses(t)
	bin := buildFnmesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "bench", "-np", "3", "-ops", "allgather", "-min", "1", "-max", "1M",
		"-iters", "20000", "-iters-large", "20000", "-timeout", "90s", "-cpuprofile", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	kids := proc.WaitChildren(cmd.Process.Pid, 3, 30*time.Second)
	require.Len(t, kids, 3, "three workers started")
	time.Sleep(2 * time.Second)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	err := cmd.Wait()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "%v\n%s", err, stderr.String())
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, stderr.String(), "stopped: interrupt signal received")
	// Not even one whose peer stopped first ("worker 1: ... peer failed:
	// rank 2: ... interrupt signal received").
	assert.NotContains(t, stderr.String(), "worker ", "the workers stop quietly")
	for _, k := range kids {
		assert.True(t, proc.WaitGone(k, time.Now().Add(10*time.Second)), "worker %d is gone", k)
	}
	for _, name := range []string{"cpu-rank0.pprof", "cpu-rank1.pprof", "cpu-rank2.pprof"} {
		f, err := os.Open(filepath.Join(dir, name))
		require.NoError(t, err)
		zr, err := gzip.NewReader(f) // a pprof profile is gzipped protobuf
		require.NoError(t, err, "%s is a profile", name)
		b, err := io.ReadAll(zr)
		require.NoError(t, err, "%s is a whole profile", name)
		assert.NotEmpty(t, b, name)
		f.Close()
	}
}
