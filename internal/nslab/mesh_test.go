//go:build linux

package nslab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/internal/nslab"
)

// joinReport mirrors the JSON line fnmesh join prints.
type joinReport struct {
	Rank   int     `json:"rank"`
	World  int     `json:"world"`
	OK     bool    `json:"ok"`
	MeshMS float64 `json:"mesh_ms"`
	Error  string  `json:"error"`
	Peers  []struct {
		Rank          int     `json:"rank"`
		Tier          string  `json:"tier"`
		SetupMS       float64 `json:"setup_ms"`
		VerifiedBytes int64   `json:"verified_bytes"`
		Error         string  `json:"error"`
	} `json:"peers"`
}

// joinRun is one fnmesh join process.
type joinRun struct {
	worker *nslab.Host
	rank   int
	exit   int
	stdout string
	stderr string
	report joinReport
	err    error // parsing the report
}

// labMesh is the standard lab with the real rendezvous server running on its
// public host and the real fnmesh binary ready to run behind its NATs.
type labMesh struct {
	topo       *nslab.Topology
	fnmesh     string
	secretFile string
	rendezvous string // HOST:PORT of the server
}

// buildBinaries builds cmd/rendezvous and cmd/fnmesh into dir, within its
// own time bound: a cold build cache on a busy CI machine can take minutes,
// which must not eat into the lab's time.
func buildBinaries(t testing.TB, dir string) (rendezvous, fnmesh string) {
	t.Helper()
	ctx, cancel := testContext(t, 10*time.Minute)
	defer cancel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	for _, name := range []string{"rendezvous", "fnmesh"} {
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", filepath.Join(dir, name), "github.com/fnmesh/fnmesh/cmd/"+name)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go build %s: %s", name, out)
	}
	return filepath.Join(dir, "rendezvous"), filepath.Join(dir, "fnmesh")
}

// startLabMesh builds the standard topology with perRouter workers behind
// each router and starts the rendezvous server from the binaries in dir.
func startLabMesh(t testing.TB, ctx context.Context, perRouter int, rdvBin, fnBin string) *labMesh {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secretFile, []byte("nslab-secret-0123456789abcdef0123456789abcdef\n"), 0o600))

	topo, err := nslab.BuildStandard(ctx, perRouter)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			t.Log("lab state:\n" + topo.Diagnostics(dctx))
			cancel()
		}
		assert.NoError(t, topo.Lab.Close())
	})
	addr := topo.Server.Addr().String() + ":7000"

	var logs bytes.Buffer
	var logsMu sync.Mutex
	srv := topo.Server.Command(ctx, rdvBin, "--listen", addr, "--secret-file", secretFile, "--log-level", "debug")
	srv.Stdout, srv.Stderr = &lockedWriter{w: &logs, mu: &logsMu}, &lockedWriter{w: &logs, mu: &logsMu}
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
		if t.Failed() {
			logsMu.Lock()
			t.Logf("rendezvous server log:\n%s", logs.String())
			logsMu.Unlock()
		}
	})
	exe, err := os.Executable()
	require.NoError(t, err)
	wait := topo.Server.Command(ctx, exe)
	wait.Env = append(os.Environ(), "NSLAB_HELPER=wait", "NSLAB_TARGETS="+addr, "NSLAB_TIMEOUT=20s")
	out, err := wait.CombinedOutput()
	require.NoError(t, err, "rendezvous server did not listen on %s: %s", addr, out)
	return &labMesh{topo: topo, fnmesh: fnBin, secretFile: secretFile, rendezvous: addr}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// join runs fnmesh join in every worker at once, worker i as rank i, and
// waits for all of them.
func (lm *labMesh) join(ctx context.Context, job string, workers []*nslab.Host, extra ...string) []joinRun {
	runs := make([]joinRun, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() {
			args := append([]string{"join", "--rendezvous", lm.rendezvous, "--job", job,
				"--world", fmt.Sprint(len(workers)), "--rank", fmt.Sprint(i),
				"--secret-file", lm.secretFile, "--timeout", "90s", "-v"}, extra...)
			cmd := w.Command(ctx, lm.fnmesh, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			r := joinRun{worker: w, rank: i, stdout: stdout.String(), stderr: stderr.String()}
			var exit *exec.ExitError
			switch {
			case errors.As(err, &exit):
				r.exit = exit.ExitCode()
			case err != nil:
				r.exit, r.err = -1, err
			}
			if r.err == nil {
				r.err = json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &r.report)
			}
			runs[i] = r
		})
	}
	wg.Wait()
	return runs
}

// expectedTier is the tier the design takes between two lab workers: direct
// over the LAN for two workers behind the same router (their private
// endpoints reach each other without the NAT), punched between workers
// behind two different port-preserving masquerade routers, relay whenever a
// fully-random (symmetric) router is on the path.
func expectedTier(a, b *nslab.Host) string {
	switch {
	case a.Router() == b.Router():
		return "direct"
	case a.Router().NAT() == nslab.MasqueradeRandom || b.Router().NAT() == nslab.MasqueradeRandom:
		return "relay"
	}
	return "punched"
}

// TestLabMesh runs the real rendezvous server and six real fnmesh join
// processes behind three real Linux NATs (two workers behind each) and checks
// that every pair gets the tier the NATs allow and that 1 MiB verified in
// each direction on every link.
func TestLabMesh(t *testing.T) {
	needLab(t)
	rdvBin, fnBin := buildBinaries(t, t.TempDir())
	ctx, cancel := testContext(t, 3*time.Minute)
	defer cancel()
	lm := startLabMesh(t, ctx, 2, rdvBin, fnBin)
	workers := lm.topo.Workers
	const size = 1 << 20
	// A punch deadline above the default (3 s) leaves a loaded CI machine
	// margin: a punchable pair connects in about 0.1 s here, and must not
	// be relayed because the machine was busy.
	runs := lm.join(ctx, "lab-mesh", workers, "--bytes", fmt.Sprint(size), "--punch-timeout", "4s")
	for _, r := range runs {
		t.Logf("%s (%s): exit %d: %s", r.worker.Name(), r.worker.Router().NAT(), r.exit, strings.TrimSpace(r.stdout))
	}

	for _, r := range runs {
		t.Run(r.worker.Name(), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("%s (rank %d) stderr:\n%s", r.worker.Name(), r.rank, r.stderr)
				}
			}()
			require.NoError(t, r.err, "rank %d output: %q", r.rank, r.stdout)
			assert.Equal(t, 0, r.exit, "exit status")
			rep := r.report
			assert.Empty(t, rep.Error)
			assert.True(t, rep.OK)
			assert.Equal(t, r.rank, rep.Rank)
			assert.Equal(t, len(workers), rep.World)
			require.Len(t, rep.Peers, len(workers)-1)
			for _, p := range rep.Peers {
				require.True(t, p.Rank >= 0 && p.Rank < len(workers) && p.Rank != r.rank, "peer rank %d", p.Rank)
				peer := workers[p.Rank]
				assert.Equal(t, expectedTier(r.worker, peer), p.Tier, "%s (%s) <-> %s (%s)",
					r.worker.Name(), r.worker.Router().NAT(), peer.Name(), peer.Router().NAT())
				assert.Equal(t, int64(size), p.VerifiedBytes, "%s <- %s", r.worker.Name(), peer.Name())
				assert.Empty(t, p.Error)
				assert.Positive(t, p.SetupMS)
			}
		})
	}
	if t.Failed() {
		return
	}
	// Both ends of a link agree on how it was made.
	for _, r := range runs {
		for _, p := range r.report.Peers {
			for _, q := range runs[p.Rank].report.Peers {
				if q.Rank == r.rank {
					assert.Equal(t, p.Tier, q.Tier, "ranks %d and %d disagree on their link's tier", r.rank, p.Rank)
				}
			}
		}
	}
}

// BenchmarkLabMeshSetup measures, in real time, how long a job takes to get a
// full verified mesh in the lab: from starting every fnmesh join process
// (0 bytes to exchange) until the last one exits. "mesh-ms" is the slowest
// rank's time from the start of its join to its last link up, as it reports.
// The sub-benchmarks are the six workers behind all three NATs (relay pairs
// wait for the punch deadline: the default, then 500 ms) and the four behind
// the two punchable NATs.
//
//	go test -run '^$' -bench LabMeshSetup -benchtime 5x ./internal/nslab
func BenchmarkLabMeshSetup(b *testing.B) {
	needLab(b)
	rdvBin, fnBin := buildBinaries(b, b.TempDir())
	ctx, cancel := testContext(b, 10*time.Minute)
	defer cancel()
	lm := startLabMesh(b, ctx, 2, rdvBin, fnBin)
	var punchable []*nslab.Host
	for _, w := range lm.topo.Workers {
		if w.Router().NAT() != nslab.MasqueradeRandom {
			punchable = append(punchable, w)
		}
	}
	for _, bc := range []struct {
		name    string
		workers []*nslab.Host
		extra   []string
	}{
		{"all-nats-6", lm.topo.Workers, nil},
		{"all-nats-6-punch-timeout-500ms", lm.topo.Workers, []string{"--punch-timeout", "500ms"}},
		{"punchable-4", punchable, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var meshMS float64
			i := 0
			for b.Loop() {
				i++
				runs := lm.join(ctx, fmt.Sprintf("bench-%s-%d", bc.name, i), bc.workers, append([]string{"--bytes", "0"}, bc.extra...)...)
				slowest := 0.0
				for _, r := range runs {
					if r.exit != 0 || r.err != nil || !r.report.OK {
						b.Fatalf("%s (rank %d): exit %d, %v, report %+v\nstderr:\n%s", r.worker.Name(), r.rank, r.exit, r.err, r.report, r.stderr)
					}
					slowest = max(slowest, r.report.MeshMS)
				}
				meshMS += slowest
			}
			b.ReportMetric(meshMS/float64(i), "mesh-ms")
		})
	}
}
