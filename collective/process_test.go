package collective

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fnmesh/fnmesh/rendezvous"
	"github.com/stretchr/testify/require"
)

// The multi-process test: the test binary starts itself several times as
// workers (FNMESH_COLLECTIVE_WORKER set), which join one job through a
// rendezvous server running in the test process, over real TCP on
// loopback, and run every collective against its oracle.

const workerEnv = "FNMESH_COLLECTIVE_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		os.Exit(runWorker())
	}
	os.Exit(m.Run())
}

var processSecret = []byte("collective multi-process secret.")

func runWorker() int {
	world, _ := strconv.Atoi(os.Getenv("FNMESH_WORLD"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Join(ctx, os.Getenv("FNMESH_RENDEZVOUS"), os.Getenv("FNMESH_JOB"), world, processSecret)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	defer c.Close()
	if err := simBattery(ctx, c); err != nil {
		fmt.Fprintf(os.Stderr, "rank %d: %v\n", c.Rank(), err)
		return 1
	}
	// One large call of each bandwidth-bound collective.
	big := 1<<20 + 5
	all, err := c.Allgather(ctx, payload(c.Rank(), big, 31))
	if err == nil {
		for i := range c.Size() {
			if err = mismatch("allgather", all[i], payload(i, big, 31)); err != nil {
				break
			}
		}
	}
	if err == nil {
		var sum []int64
		sum, err = Allreduce(ctx, c, vecI64(c.Rank(), big/8), Sum[int64]())
		if err == nil {
			err = eqSlices("allreduce", sum, foldOracle(c.Size(), func(r int) []int64 { return vecI64(r, big/8) }, func(a, b int64) int64 { return a + b }))
		}
	}
	if err == nil {
		err = c.Barrier(ctx)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rank %d: %v\n", c.Rank(), err)
		return 1
	}
	fmt.Printf("rank %d of %d ok\n", c.Rank(), c.Size())
	return 0
}

func TestProcessesThroughRendezvous(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srvDone := make(chan error, 1)
	go func() { srvDone <- rendezvous.NewServer(processSecret).Serve(ctx, ln, nil) }()

	const world = 4
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		outs []string
	)
	errs := make([]error, world)
	for i := range world {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), workerEnv+"=1", "FNMESH_RENDEZVOUS="+ln.Addr().String(),
				"FNMESH_JOB=processes", fmt.Sprint("FNMESH_WORLD=", world))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("worker %d: %v: %s", i, err, stderr.String())
			}
			mu.Lock()
			outs = append(outs, strings.TrimSpace(stdout.String()))
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	sort.Strings(outs)
	var want []string
	for r := range world {
		want = append(want, fmt.Sprintf("rank %d of %d ok", r, world))
	}
	require.Equal(t, want, outs)
	cancel()
	require.NoError(t, <-srvDone)
}
