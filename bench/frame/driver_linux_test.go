package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/internal/proc"
)

// The workers end with the driver, whether it is interrupted (SIGINT,
// SIGTERM) or killed: they used to run their whole job to the end,
// orphaned, loading the machine the next run measured on.
func TestWorkersEndWithTheDriver(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the benchmark and starts worker processes; skipped with -short")
	}
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("needs /proc to find the worker processes")
	}
	bin := filepath.Join(t.TempDir(), "framebench")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			// Enough reps that the job is still running when the signal comes.
			cmd := exec.CommandContext(ctx, bin, "-workers", "2", "-rows", "200000", "-reps", "1000",
				"-groupby=false", "-ceiling-mb", "0")
			require.NoError(t, cmd.Start())
			kids := proc.WaitChildren(cmd.Process.Pid, 2, 30*time.Second)
			require.Len(t, kids, 2, "two workers started")
			time.Sleep(500 * time.Millisecond)
			require.NoError(t, cmd.Process.Signal(sig))
			err := cmd.Wait()
			assert.Error(t, err, "the driver reports the interruption")
			deadline := time.Now().Add(10 * time.Second)
			for _, k := range kids {
				if !assert.True(t, proc.WaitGone(k, deadline), "worker %d ended with the driver", k) {
					_ = syscall.Kill(k, syscall.SIGKILL)
				}
			}
		})
	}
}

// A command line that cannot run exits 2 at once, saying why, before any
// measurement: a stray argument used to be ignored (and the whole default
// benchmark run), an unwritable -json found only after the run, and every
// complaint came with a log timestamp and exit status 1.
func TestDriverUsage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the benchmark; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "framebench")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	missing := filepath.Join(t.TempDir(), "missing", "r.json")
	for _, tc := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"extra"}, 2, `framebench: unexpected argument "extra"`},
		{[]string{"-workers", "1,x"}, 2, `framebench: -workers "1,x": "x" is not a worker count`},
		{[]string{"-workers", "100000"}, 2, "at most 256 worker processes"},
		{[]string{"-compare", "a.json"}, 2, `-compare "a.json": want frame.json,duckdb.json`},
		{[]string{"-json", missing}, 1, "framebench: -json: " + missing + ": cannot create a file in"},
	} {
		cmd := exec.CommandContext(ctx, bin, tc.args...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%q: %s", tc.args, out)
		assert.Equal(t, tc.status, exit.ExitCode(), "%q: %s", tc.args, out)
		assert.True(t, strings.HasPrefix(string(out), "framebench: "), "%q: no timestamp: %s", tc.args, out)
		assert.Contains(t, string(out), tc.want)
	}
}

// The peak memory of a run is that of the timed runs: with 2 workers it
// was the lifetime peak of each worker process, which the raw all-to-all
// measuring the loopback ceiling had set (541 MiB with -ceiling-mb 256 and
// 1000 rows per worker, against 35 MiB with 1 worker, which skips it).
func TestPeakMemoryIsTheRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the benchmark and starts worker processes; skipped with -short")
	}
	if _, err := os.Stat("/proc/self/clear_refs"); err != nil {
		t.Skip("needs /proc/self/clear_refs")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "framebench")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	jsonPath := filepath.Join(dir, "r.json")
	out, err = exec.CommandContext(ctx, bin, "-workers", "1,2", "-rows", "1000", "-reps", "1",
		"-ceiling-mb", "256", "-json", jsonPath).CombinedOutput()
	require.NoError(t, err, "framebench: %s", out)
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var rep report
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Len(t, rep.Runs, 2)
	for _, r := range rep.Runs {
		for name, s := range map[string]opStats{"join": r.Join, "groupby": r.GroupBy} {
			assert.Positive(t, s.MaxRSS, "%d workers, %s: measured", r.Workers, name)
			// 1000 rows are a few KiB: a Go process of this size stays
			// well under 128 MiB, the raw all-to-all's source buffer.
			assert.Less(t, s.MaxRSS, int64(128<<20), "%d workers, %s: peak %d MiB", r.Workers, name, s.MaxRSS>>20)
		}
	}
}
