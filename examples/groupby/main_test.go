package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/rendezvous"
)

// TestMain lets the test binary stand in for the command: the end-to-end
// test starts it as a worker process with asMainEnv set.
func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const asMainEnv = "FNMESH_EXAMPLE_GROUPBY_MAIN"

// Three worker processes join through a rendezvous server on loopback and
// group five CSV files: the one that became rank 0 prints every region's
// row count and sum, largest sum first, as a sequential pass over the same
// files computes them.
func TestWorkersGroupCSVFiles(t *testing.T) {
	dir := t.TempDir()
	regions := []string{"eu-west", "us-east", "ap-south", "sa-east", "af-south"}
	type group struct {
		rows  int64
		cents int64
	}
	want := map[string]*group{}
	rng := rand.New(rand.NewPCG(1, 2))
	for f := range 5 {
		var b bytes.Buffer
		b.WriteString("order,region,amount\n")
		for i := range 200 + 37*f {
			r := regions[rng.IntN(len(regions))]
			cents := rng.Int64N(100000)
			fmt.Fprintf(&b, "%d,%s,%d.%02d\n", f*1000+i, r, cents/100, cents%100)
			if want[r] == nil {
				want[r] = &group{}
			}
			want[r].rows++
			want[r].cents += cents
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("orders-%d.csv", f)), b.Bytes(), 0o600))
	}

	secret := "example test secret"
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- rendezvous.NewServer([]byte(secret)).Serve(ctx, ln, nil) }()
	defer func() {
		cancel()
		require.NoError(t, <-served)
	}()

	const world = 3
	outs := make([]bytes.Buffer, world)
	cmds := make([]*exec.Cmd, world)
	for i := range world {
		cmd := exec.CommandContext(ctx, os.Args[0], "-rendezvous", ln.Addr().String(), "-job", "groupby-test",
			"-world", strconv.Itoa(world), "-by", "region", "-sum", "amount", filepath.Join(dir, "*.csv"))
		cmd.Env = append(os.Environ(), asMainEnv+"=1", "FNMESH_SECRET="+secret)
		cmd.Stdout = &outs[i]
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		require.NoError(t, cmd.Wait(), "worker %d", i)
	}

	var printed [][]string
	for _, out := range outs {
		if out.Len() == 0 {
			continue
		}
		require.Nil(t, printed, "more than one worker printed a result")
		printed, err = csv.NewReader(&out).ReadAll()
		require.NoError(t, err)
	}
	require.NotNil(t, printed, "no worker printed the result")
	require.Equal(t, []string{"region", "rows", "sum_amount"}, printed[0])
	require.Len(t, printed[1:], len(want))
	prev := float64(1 << 62)
	for _, row := range printed[1:] {
		g := want[row[0]]
		require.NotNil(t, g, "unknown region %q", row[0])
		rows, err := strconv.ParseInt(row[1], 10, 64)
		require.NoError(t, err)
		require.Equal(t, g.rows, rows, "rows of %s", row[0])
		sum, err := strconv.ParseFloat(row[2], 64)
		require.NoError(t, err)
		require.InDelta(t, float64(g.cents)/100, sum, 1e-6, "sum of %s", row[0])
		require.LessOrEqual(t, sum, prev, "largest sum first")
		prev = sum
	}
}

func TestUsageErrors(t *testing.T) {
	t.Setenv("FNMESH_SECRET", "")
	for _, args := range [][]string{
		nil,
		{"-rendezvous", "127.0.0.1:1", "-job", "j", "-world", "2", "-by", "k"},
		{"-rendezvous", "127.0.0.1:1", "-job", "j", "-world", "2", "-by", "k", "-sum", "v", "x.csv"},
		{"-rendezvous", "127.0.0.1:1", "-job", "j", "-world", "2", "-rank", "2", "-by", "k", "-sum", "v", "x.csv"},
		{"-nope"},
	} {
		var usage usageError
		require.ErrorAs(t, run(context.Background(), args, &bytes.Buffer{}), &usage, "args %q", args)
	}
}

// A command line that cannot run exits 2 and says why; it used to exit 1,
// the status of a job that failed.
func TestUsageExitStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: groupby -rendezvous HOST:PORT"},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"-rendezvous", "127.0.0.1:1", "-world", "0", "-by", "k", "x.csv"}, "groupby: missing -job, -world (1 or more), -sum\nusage: groupby"},
		{[]string{"-rendezvous", "127.0.0.1:1", "-job", "j", "-world", "3", "-by", "k", "-sum", "v"}, "groupby: missing the files\n"},
		{[]string{"-rendezvous", "127.0.0.1:1", "-job", "j", "-world", "3", "-rank", "3", "-by", "k", "-sum", "v", "x.csv"}, "-rank 3: want 0..2"},
		// A flag after the files is not parsed as one: it used to be read
		// as a file, and the job failed with "read csv: -timeout: open
		// -timeout: no such file or directory".
		{[]string{"-rendezvous", "127.0.0.1:1", "-job", "j", "-world", "1", "-by", "k", "-sum", "v", "x.csv", "-timeout", "2s"},
			`groupby: "-timeout" after the files: flags go before them (a file named -x can be given as ./-x)`},
	} {
		cmd := exec.CommandContext(ctx, os.Args[0], tc.args...)
		cmd.Env = append(os.Environ(), asMainEnv+"=1", "FNMESH_SECRET=s")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%q: %s", tc.args, out)
		require.Equal(t, 2, exit.ExitCode(), "%q: %s", tc.args, out)
		require.Contains(t, string(out), tc.want)
	}
}

// -h prints the flags and exits 0 (it used to add "groupby: flag: help
// requested" and exit 1).
func TestHelp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, arg := range []string{"-h", "--help"} {
		t.Run(arg, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, os.Args[0], arg)
			cmd.Env = append(os.Environ(), asMainEnv+"=1")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Contains(t, string(out), "-rendezvous")
			require.NotContains(t, string(out), "help requested")
		})
	}
}

// A worker that stops before its job forms says why: interrupted (its
// context, as SIGINT cancels it) or out of -timeout. Both used to end in
// a bare "context canceled" or "context deadline exceeded".
func TestStoppedWorkerSaysWhy(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- rendezvous.NewServer([]byte("s")).Serve(ctx, ln, nil) }()
	defer func() {
		cancel()
		require.NoError(t, <-served)
	}()
	t.Setenv("FNMESH_SECRET", "s")
	for _, tc := range []struct {
		name      string
		timeout   string
		interrupt bool
		want      string
	}{
		{"interrupted", "1m", true, "interrupted: collective: join: "},
		{"timeout", "300ms", false, "gave up after -timeout 300ms: collective: join: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			if tc.interrupt {
				time.AfterFunc(300*time.Millisecond, stop)
			}
			// The second worker of the job never comes.
			err := run(runCtx, []string{"-rendezvous", ln.Addr().String(), "-job", tc.name, "-world", "2", "-timeout", tc.timeout,
				"-by", "k", "-sum", "v", "x.csv"}, &bytes.Buffer{})
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tc.want), "%q", err)
		})
	}
}
