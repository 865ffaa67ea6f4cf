package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/internal/secret"
	"github.com/fnmesh/fnmesh/rendezvous"
)

const joinTestSecret = "fnmesh join test secret, 32+ bytes long"

// startRendezvous runs a real rendezvous server on loopback until the test
// ends and returns its address.
func startRendezvous(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	srv := rendezvous.NewServer([]byte(joinTestSecret))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("rendezvous server did not stop")
		}
	})
	return ln.Addr().String()
}

// joinOutcome is one run of fnmesh join.
type joinOutcome struct {
	status int
	stdout string
	stderr string
	report joinReport
}

// runJoins runs fnmesh join once per argument list, all at once, through the
// command dispatcher, and parses each report.
func runJoins(t *testing.T, ctx context.Context, argLists ...[]string) []joinOutcome {
	t.Helper()
	outs := make([]joinOutcome, len(argLists))
	var wg sync.WaitGroup
	for i, args := range argLists {
		wg.Go(func() {
			var stdout, stderr bytes.Buffer
			status := run(ctx, append([]string{"join"}, args...), &stdout, &stderr)
			outs[i] = joinOutcome{status: status, stdout: stdout.String(), stderr: stderr.String()}
		})
	}
	wg.Wait()
	for i := range outs {
		require.NoError(t, json.Unmarshal([]byte(outs[i].stdout), &outs[i].report),
			"run %d printed %q (stderr %q)", i, outs[i].stdout, outs[i].stderr)
		assert.Equal(t, 1, bytes.Count([]byte(outs[i].stdout), []byte("\n")), "one JSON line")
	}
	return outs
}

// checkMesh asserts that world reports, of ranks 0..world-1 in any order,
// each verified size bytes from every peer over a direct link.
func checkMesh(t *testing.T, outs []joinOutcome, world int, size int64) {
	t.Helper()
	seen := map[int]bool{}
	for _, o := range outs {
		rep := o.report
		assert.Equal(t, 0, o.status, "exit status; stderr: %s", o.stderr)
		assert.True(t, rep.OK)
		assert.Empty(t, rep.Error)
		assert.Equal(t, world, rep.World)
		assert.False(t, seen[rep.Rank], "rank %d twice", rep.Rank)
		seen[rep.Rank] = true
		assert.Positive(t, rep.MeshMS)
		require.Len(t, rep.Peers, world-1)
		for _, p := range rep.Peers {
			assert.NotEqual(t, rep.Rank, p.Rank)
			assert.Equal(t, "direct", p.Tier, "loopback needs no NAT traversal")
			assert.Equal(t, size, p.VerifiedBytes)
			assert.Empty(t, p.Error)
			assert.Positive(t, p.SetupMS)
		}
	}
	assert.Len(t, seen, world)
}

func TestJoinLoopback(t *testing.T) {
	addr := startRendezvous(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Setenv(secret.Env, joinTestSecret)
	const world, size = 3, 300_001
	args := []string{"--rendezvous", addr, "--job", "loop", "--world", fmt.Sprint(world), "--bytes", fmt.Sprint(size)}
	outs := runJoins(t, ctx, args, args, args)
	checkMesh(t, outs, world, size)
}

func TestJoinExplicitRanksAndSecretFile(t *testing.T) {
	addr := startRendezvous(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(file, []byte(joinTestSecret+"\n"), 0o600))
	t.Setenv(secret.Env, "")
	var lists [][]string
	for r := range 3 {
		lists = append(lists, []string{"--rendezvous", addr, "--job", "ranked", "--world", "3",
			"--rank", fmt.Sprint(2 - r), "--secret-file", file, "--bytes", "64KiB"})
	}
	outs := runJoins(t, ctx, lists...)
	checkMesh(t, outs, 3, 64<<10)
	for i, o := range outs {
		assert.Equal(t, 2-i, o.report.Rank, "asked for rank %d", 2-i)
	}
}

func TestJoinFailures(t *testing.T) {
	addr := startRendezvous(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Setenv(secret.Env, "not the job secret at all, sorry")
	outs := runJoins(t, ctx, []string{"--rendezvous", addr, "--job", "bad", "--world", "2", "--rank", "1"})
	assert.Equal(t, 1, outs[0].status)
	assert.False(t, outs[0].report.OK)
	assert.Equal(t, 1, outs[0].report.Rank)
	assert.NotEmpty(t, outs[0].report.Error, "a failed join says why")
	assert.Empty(t, outs[0].report.Peers)

	// Nobody listening: the join fails within its timeout, not later.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	ln.Close()
	start := time.Now()
	outs = runJoins(t, ctx, []string{"--rendezvous", dead, "--job", "dead", "--world", "2", "--timeout", "3s"})
	assert.Equal(t, 1, outs[0].status)
	assert.NotEmpty(t, outs[0].report.Error)
	assert.Less(t, time.Since(start), 20*time.Second)
}

// TestJoinTimeoutNamed: a join cut short by --timeout or by a signal says
// which, not only the library's "context deadline exceeded".
func TestJoinTimeoutNamed(t *testing.T) {
	t.Setenv(secret.Env, joinTestSecret)
	addr := startRendezvous(t)
	outs := runJoins(t, context.Background(), []string{"--rendezvous", addr, "--job", "alone", "--world", "2", "--timeout", "300ms"})
	assert.Equal(t, 1, outs[0].status)
	assert.Contains(t, outs[0].report.Error, "waiting for the other members")
	assert.True(t, strings.HasSuffix(outs[0].report.Error, " (--timeout 300ms ran out)"), outs[0].report.Error)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond) // as SIGINT would
	defer cancel()
	outs = runJoins(t, ctx, []string{"--rendezvous", addr, "--job", "alone2", "--world", "2"})
	assert.Equal(t, 1, outs[0].status)
	assert.True(t, strings.HasSuffix(outs[0].report.Error, " (interrupted)"), outs[0].report.Error)
}

func TestJoinUsage(t *testing.T) {
	t.Setenv(secret.Env, joinTestSecret)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\r\n"), 0o600))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--job", "j", "--world", "2"}, "fnmesh join: --rendezvous HOST:PORT is required\nRun 'fnmesh join -h' for its flags.\n"},
		// All the missing ones at once, and --world when it was not given
		// said "--world 0 out of range 1..4096".
		{[]string{}, "fnmesh join: --rendezvous HOST:PORT, --job ID and --world N are required\n"},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j"}, "fnmesh join: --world N is required\n"},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "0"}, "fnmesh join: --world 0 out of range 1..4096\n"},
		{[]string{"--rendezvous", "127.0.0.1:1", "--world", "2"}, "--job"},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j"}, "--world"},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--rank", "2"}, "--rank 2 out of range 0..1"},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--rank", "-1"}, "--rank -1 out of range"},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--rank", "one"}, `"one" is not a rank`},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "5000"}, "--world 5000 out of range 1..4096"},
		// Named alone: it said "--punch-timeout and --connect-retry must not be negative".
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--connect-retry", "-1s"}, "fnmesh join: --connect-retry -1s must not be negative\n"},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--punch-timeout", "-2s"}, "fnmesh join: --punch-timeout -2s must not be negative\n"},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--bytes", "lots"}, "byte count"},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--listen", "nowhere"}, `--listen "nowhere": want IP:PORT`},
		// It said only "--listen: no IP" and "--listen: ParseAddr("localhost"): unable to parse IP".
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--listen", ":0"}, `--listen ":0": want IP:PORT, an IP address and a port (0: any free port), e.g. 0.0.0.0:0 or 10.0.0.5:40000`},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--listen", "localhost:0"}, `--listen "localhost:0": want IP:PORT, an IP address and a port`},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "extra"}, "unexpected argument"},
		// A secret file given wins over $FNMESH_SECRET, and must be good.
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--secret-file", empty}, "fnmesh join: secret: " + empty + " is empty"},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--secret-file", filepath.Join(dir, "nope")}, "fnmesh join: secret: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		// A malformed server address used to be a runtime failure: exit 1
		// with a JSON report on stdout.
		{[]string{"--rendezvous", "rv.example.com", "--job", "j", "--world", "2"}, `--rendezvous "rv.example.com": want HOST:PORT`},
		{[]string{"--rendezvous", "127.0.0.1:99999", "--job", "j", "--world", "2"}, `--rendezvous "127.0.0.1:99999": port "99999" is not 1..65535`},
		{[]string{"--rendezvous", "127.0.0.1:0", "--job", "j", "--world", "2"}, `port "0" is not 1..65535`},
		// So was a job ID the server would refuse.
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", strings.Repeat("j", 129), "--world", "2"}, `--job "jjj`},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", strings.Repeat("j", 129), "--world", "2"}, `": job ID of 129 bytes (want 1..128)`},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "a\tb", "--world", "2"}, `--job "a\tb": job ID has an invalid or control character at byte 1`},
		{[]string{"--rendezvous", "127.0.0.1:1", "--job", "a\xffb", "--world", "2"}, `--job "a\xffb": job ID is not UTF-8`},
	} {
		var stdout, stderr bytes.Buffer
		status := run(context.Background(), append([]string{"join"}, tc.args...), &stdout, &stderr)
		assert.Equal(t, 2, status, "%v", tc.args)
		assert.Contains(t, stderr.String(), tc.want, "%v", tc.args)
		assert.Empty(t, stdout.String(), "%v: nothing on stdout for a usage error", tc.args)
	}
	t.Setenv(secret.Env, "")
	var stdout, stderr bytes.Buffer
	status := run(context.Background(), []string{"join", "--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2"}, &stdout, &stderr)
	assert.Equal(t, 2, status)
	assert.Contains(t, stderr.String(), "FNMESH_SECRET")
}

// TestJoinSecretFromPipe: --secret-file may be a pipe (/dev/stdin, a FIFO);
// one that nobody writes to no longer makes join deaf to signals. It waited
// for ever: SIGINT, which fnmesh catches, did nothing (reproduced with the
// binary and a FIFO: two SIGINTs, still running; only SIGKILL ended it).
func TestJoinSecretFromPipe(t *testing.T) {
	t.Setenv(secret.Env, "")
	fifo := filepath.Join(t.TempDir(), "secret")
	mkfifo(t, fifo)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"join", "--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--secret-file", fifo}, &stdout, &stderr)
	}()
	select {
	case status := <-done:
		t.Fatalf("join returned %d before the signal: %s", status, stderr.String())
	case <-time.After(200 * time.Millisecond):
	}
	cancel(errors.New("interrupt signal received")) // as signal.NotifyContext does
	select {
	case status := <-done:
		assert.Equal(t, 1, status, "an interrupted run, not a usage error")
		assert.Equal(t, "fnmesh join: secret: reading "+fifo+": interrupt signal received\n", stderr.String())
		assert.Empty(t, stdout.String())
	case <-time.After(5 * time.Second):
		t.Fatal("join went on reading the secret after the signal")
	}
}

// TestJoinBinary builds the real fnmesh binary and runs three of it as
// separate processes against a rendezvous server.
func TestJoinBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the fnmesh binary; skipped in -short mode")
	}
	addr := startRendezvous(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "fnmesh")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	const world = 3
	outs := make([]joinOutcome, world)
	var wg sync.WaitGroup
	for i := range world {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, bin, "join", "--rendezvous", addr, "--job", "binary",
				"--world", fmt.Sprint(world), "--bytes", "1MiB", "--timeout", "1m")
			cmd.Env = append(os.Environ(), secret.Env+"="+joinTestSecret)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				outs[i].status = exit.ExitCode()
			} else if err != nil {
				outs[i].status = -1
			}
			outs[i].stdout, outs[i].stderr = stdout.String(), stderr.String()
		})
	}
	wg.Wait()
	for i := range outs {
		require.NoError(t, json.Unmarshal([]byte(outs[i].stdout), &outs[i].report), "stdout %q stderr %q", outs[i].stdout, outs[i].stderr)
	}
	checkMesh(t, outs, world, 1<<20)
}

// mkfifo makes a named pipe at path, or skips the test where it cannot.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command("mkfifo", path).CombinedOutput(); err != nil {
		t.Skipf("no named pipe here: mkfifo: %v %s", err, out)
	}
}
