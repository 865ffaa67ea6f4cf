package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/rendezvous"
)

// TestMain lets the test binary stand in for the command: the tests start
// it as a worker process with asMainEnv set.
func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const (
	asMainEnv = "FNMESH_EXAMPLE_ALLREDUCE_MAIN"
	secret    = "example test secret"
)

// startServer serves a rendezvous server on loopback until the test ends.
func startServer(t *testing.T) (string, *rendezvous.Server) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	srv := rendezvous.NewServer([]byte(secret))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-served)
	})
	return ln.Addr().String(), srv
}

// worker is one process of a job: its extra flags and environment.
type worker struct {
	args []string
	env  []string

	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func (w *worker) start(t *testing.T, ctx context.Context, addr, job string, world int) {
	t.Helper()
	args := append([]string{"-rendezvous", addr, "-job", job, "-world", strconv.Itoa(world)}, w.args...)
	w.cmd = exec.CommandContext(ctx, os.Args[0], args...)
	w.cmd.Env = append(append(os.Environ(), asMainEnv+"=1", "FNMESH_SECRET="+secret), w.env...)
	w.cmd.Stdout, w.cmd.Stderr = &w.stdout, &w.stderr
	require.NoError(t, w.cmd.Start())
}

// exitCode waits for the process and returns its exit status.
func (w *worker) exitCode(t *testing.T) int {
	t.Helper()
	err := w.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		require.NoError(t, err)
	}
	return w.cmd.ProcessState.ExitCode()
}

// Three processes join on loopback (one reads the secret from a file, one
// asks for rank 2), every check passes, and rank 0 prints the report.
func TestThreeRanksPassEveryCheck(t *testing.T) {
	addr, _ := startServer(t)
	secretFile := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secretFile, []byte(secret+"\n"), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const world = 3
	workers := []*worker{
		{args: []string{"-secret-file", secretFile}, env: []string{"FNMESH_SECRET=not the secret"}},
		{args: []string{"-rank", "2"}},
		{},
	}
	for _, w := range workers {
		w.args = append(w.args, "-n", "1000") // the same on every rank
		w.start(t, ctx, addr, "hello-test", world)
	}
	var report string
	ranks := map[int]bool{}
	for i, w := range workers {
		require.Equal(t, 0, w.exitCode(t), "worker %d: stderr: %s\nstdout: %s", i, &w.stderr, &w.stdout)
		out := w.stdout.String()
		var rank int
		_, err := fmt.Sscanf(out, "rank %d of 3: mesh ready in", &rank)
		require.NoError(t, err, "worker %d printed %q", i, out)
		ranks[rank] = true
		var want []string
		for p := range world {
			if p != rank {
				want = append(want, strconv.Itoa(p)+":direct") // loopback: no NAT
			}
		}
		assert.Contains(t, out, "links: "+strings.Join(want, " ")+"\n", "worker %d", i)
		if strings.Contains(out, "all checks passed") {
			require.Empty(t, report, "two workers printed a report")
			require.Equal(t, 0, rank, "a report from rank %d", rank)
			report = out
		}
	}
	require.Equal(t, map[int]bool{0: true, 1: true, 2: true}, ranks)
	require.True(t, strings.Contains(workers[1].stdout.String(), "rank 2 of 3"), "-rank 2: %s", &workers[1].stdout)
	require.NotEmpty(t, report, "no worker printed the report")
	assert.Contains(t, report, "allreduce: sum of 1000 float64 over 3 ranks, every element equal to (i+1)*3*4/2 on every rank: ok\n")
	assert.Contains(t, report, `bcast: every rank got "hello from rank 0 of job \"hello-test\"": ok`)
	for r := range world {
		assert.Regexp(t, fmt.Sprintf(`(?m)^%d +\S+ +\S+ +\S+ +\S+ +(\d:direct ?){2}$`, r), report, "rank %d's row", r)
	}
}

// A job with one bad worker fails everywhere: the bad one is refused at
// once, with the reason, and the others give up at -timeout saying what
// they were waiting for; every process exits 1.
func TestBadWorkerFailsEveryProcess(t *testing.T) {
	addr, _ := startServer(t)
	const timeout = 3 * time.Second
	for _, tc := range []struct {
		name    string
		bad     worker
		refused string // the bad worker's, or for the world size whoever joined second's, error
	}{
		{"wrong secret", worker{env: []string{"FNMESH_SECRET=not the secret"}}, "token does not verify (wrong secret?)"},
		{"wrong world size", worker{args: []string{"-world", "2"}}, "has world size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			job := strings.ReplaceAll(tc.name, " ", "-")
			workers := []*worker{{}, {}, &tc.bad}
			began := time.Now()
			for _, w := range workers {
				w.args = append(w.args, "-timeout", timeout.String())
				w.start(t, ctx, addr, job, 3) // a later -world overrides
			}
			refused := 0
			for i, w := range workers {
				require.Equal(t, 1, w.exitCode(t), "worker %d: stderr: %s\nstdout: %s", i, &w.stderr, &w.stdout)
				assert.Empty(t, w.stdout.String(), "worker %d", i)
				msg := w.stderr.String()
				require.True(t, strings.HasPrefix(msg, "allreduce: "), "worker %d: %q", i, msg)
				if strings.Contains(msg, tc.refused) {
					refused++
					continue
				}
				assert.Contains(t, msg, "gave up after -timeout 3s: rendezvous: join job \""+job+"\"", "worker %d", i)
				assert.Contains(t, msg, "waiting for the other members of the job", "worker %d", i)
			}
			// The wrong world size is refused to whoever did not create the
			// job: the bad worker, or both good ones.
			require.GreaterOrEqual(t, refused, 1, "nobody said why")
			if tc.name == "wrong secret" {
				require.Contains(t, workers[2].stderr.String(), tc.refused)
			}
			require.Less(t, time.Since(began), timeout+10*time.Second, "the workers outlived their -timeout")
		})
	}
}

// SIGTERM makes a worker waiting for its job leave it and say so.
func TestSignalLeavesTheJob(t *testing.T) {
	addr, srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	workers := []*worker{{}, {}}
	for _, w := range workers {
		w.start(t, ctx, addr, "signal-test", 3) // the third never comes
	}
	// Signal them once both have joined (so their signal handlers are in).
	for deadline := time.Now().Add(30 * time.Second); srv.Metrics().Joins < 2; time.Sleep(10 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "the workers never joined")
	}
	began := time.Now()
	for _, w := range workers {
		require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	}
	for i, w := range workers {
		require.Equal(t, 1, w.exitCode(t), "worker %d: stderr: %s", i, &w.stderr)
		assert.Contains(t, w.stderr.String(), "allreduce: interrupted: rendezvous: join job \"signal-test\"", "worker %d", i)
	}
	require.Less(t, time.Since(began), 10*time.Second, "slow to leave")
}

func TestUsageErrors(t *testing.T) {
	t.Setenv("FNMESH_SECRET", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-rendezvous, -job and -world (1 or more) are required"},
		{[]string{"-rendezvous", "127.0.0.1:1", "-job", "j", "-world", "2"}, "no job secret"},
		{[]string{"-rendezvous", "127.0.0.1:1", "-job", "j", "-world", "2", "-rank", "2"}, "-rank 2: want 0..1"},
		{[]string{"-rendezvous", "127.0.0.1:1", "-job", "j", "-world", "2", "-n", "0"}, "-n 0: want 1.."},
		{[]string{"-rendezvous", "127.0.0.1:1", "-job", "j", "-world", "2", "extra"}, `unexpected argument "extra"`},
	} {
		err := run(context.Background(), tc.args, &bytes.Buffer{})
		var usage usageError
		require.ErrorAs(t, err, &usage, "args %q", tc.args)
		require.Contains(t, usage.msg, tc.want, "args %q", tc.args)
	}
}

// cancelOnReady is the stdout of an in-process run: on the "mesh ready"
// line it records the rank and, if cancel is set, cancels the run's
// context (as SIGINT does) before the first collective.
type cancelOnReady struct {
	cancel context.CancelFunc
	rank   chan int
}

func (w *cancelOnReady) Write(p []byte) (int, error) {
	var rank, world int
	if _, err := fmt.Sscanf(string(p), "rank %d of %d: mesh ready", &rank, &world); err == nil {
		w.rank <- rank
		if w.cancel != nil {
			w.cancel()
		}
	}
	return len(p), nil
}

// A rank interrupted after the mesh is up fails its first collective, and
// so do the others; every error says once which rank it is and which
// collective failed (it used to say both twice, "rank 1: interrupted:
// barrier: collective: rank 1: barrier: context canceled"), with why the
// interrupted rank stopped in front.
func TestInterruptedRankErrorsNameRankOnce(t *testing.T) {
	addr, _ := startServer(t)
	t.Setenv("FNMESH_SECRET", secret)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const world = 3
	errs := make([]error, world)
	outs := make([]*cancelOnReady, world)
	done := make(chan int, world)
	for i := range world {
		outs[i] = &cancelOnReady{rank: make(chan int, 1)}
		runCtx := ctx
		if i == 0 {
			var stop context.CancelFunc
			runCtx, stop = context.WithCancel(ctx)
			defer stop()
			outs[i].cancel = stop
		}
		go func() {
			errs[i] = run(runCtx, []string{"-rendezvous", addr, "-job", "interrupt-test", "-world", "3", "-n", "10"}, outs[i])
			done <- i
		}()
	}
	for range world {
		select {
		case <-done:
		case <-ctx.Done():
			require.FailNow(t, "the ranks did not finish")
		}
	}
	ranks := make([]int, world)
	for i, o := range outs {
		select {
		case ranks[i] = <-o.rank:
		default:
			require.FailNow(t, "no mesh", "worker %d: %v", i, errs[i])
		}
	}
	for i, err := range errs {
		require.Error(t, err, "worker %d", i)
		msg := err.Error()
		self := fmt.Sprintf("rank %d: ", ranks[i])
		assert.Equal(t, 1, strings.Count(msg, self), "worker %d names %q once: %q", i, self, msg)
		if i == 0 {
			assert.Equal(t, "interrupted: collective: "+self+"barrier: context canceled", msg)
			continue
		}
		assert.Regexp(t, fmt.Sprintf(`^collective: %sbarrier: link to rank \d: `, self), msg, "worker %d", i)
		assert.NotContains(t, msg, "interrupted", "worker %d was not interrupted", i)
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	tests := []struct {
		name, file, env string
		want            string
		wantErr         string
	}{
		{name: "file without its CRLF", file: write("crlf", []byte("s3cret\r\n")), want: "s3cret"},
		{name: "file wins over the environment", file: write("lf", []byte("from-file\n")), env: "from-env", want: "from-file"},
		{name: "environment", env: "from-env", want: "from-env"},
		{name: "empty file", file: write("empty", []byte("\n")), wantErr: "is empty"},
		{name: "missing file", file: filepath.Join(dir, "nope"), wantErr: "no such file"},
		{name: "too large to be a secret", file: write("big", make([]byte, 64<<10+1)), wantErr: "holds more than 65536 bytes"},
		{name: "neither", wantErr: "no job secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("FNMESH_SECRET", tt.env)
			got, err := loadSecret(tt.file)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

// A -secret-file pipe nobody writes does not make the worker deaf to an
// interrupt: it used to block in the read, with SIGINT and SIGTERM caught.
func TestInterruptWhileReadingSecret(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(50*time.Millisecond, func() { cancel(errors.New("interrupt signal received")) })
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-rendezvous", "127.0.0.1:1", "-job", "j", "-world", "2", "-secret-file", fifo}, io.Discard)
	}()
	select {
	case err := <-done:
		require.EqualError(t, err, "interrupted: reading the secret: interrupt signal received")
	case <-time.After(30 * time.Second):
		// Unblock the reader so that the test ends.
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		t.Fatal("run still reading the secret 30 s after the interrupt")
	}
	// The reader is still blocked in open: release it.
	w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	require.NoError(t, err)
	require.NoError(t, w.Close())
}
