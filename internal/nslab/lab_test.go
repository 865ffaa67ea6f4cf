//go:build linux

package nslab_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/internal/nslab"
)

// buildStandard builds the standard topology for a test and removes it when
// the test ends, logging the routers' state first if the test failed.
func buildStandard(t *testing.T, ctx context.Context, perRouter int) *nslab.Topology {
	t.Helper()
	topo, err := nslab.BuildStandard(ctx, perRouter)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			t.Log("lab state:\n" + topo.Diagnostics(dctx))
			cancel()
		}
		assert.NoError(t, topo.Lab.Close())
		_, err := os.Stat("/run/netns/" + topo.Lab.ID() + "-inet")
		assert.True(t, os.IsNotExist(err), "lab namespace still exists after Close")
	})
	return topo
}

// startHelper runs this test binary in host h as a helper server and waits
// until it listens.
func startServe(t *testing.T, ctx context.Context, h *nslab.Host, listen ...string) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := h.Command(ctx, exe)
	cmd.Env = append(os.Environ(), "NSLAB_HELPER=serve", "NSLAB_LISTEN="+strings.Join(listen, ","))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "helper server in %s", h.Name())
	require.Equal(t, "ready\n", line)
}

// dial runs the helper dialer in host h and returns one result line per target.
func dial(t *testing.T, ctx context.Context, h *nslab.Host, local string, timeout time.Duration, targets ...string) []string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := h.Command(ctx, exe)
	cmd.Env = append(os.Environ(), "NSLAB_HELPER=dial", "NSLAB_LOCAL="+local,
		"NSLAB_TARGETS="+strings.Join(targets, ","), "NSLAB_TIMEOUT="+timeout.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err, "helper dialer in %s", h.Name())
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, len(targets), "helper output: %q", out)
	return lines
}

// TestLabNATBehaviour checks that the lab's routers behave as the measured
// Linux NATs they stand for, with nothing but the kernel in between: mapping
// (port preserved vs. random per destination), the answer to an unsolicited
// SYN (RST vs. silence), LAN reachability, and isolation between LANs.
func TestLabNATBehaviour(t *testing.T) {
	needLab(t)
	ctx, cancel := testContext(t, 90*time.Second)
	defer cancel()
	topo := buildStandard(t, ctx, 2)
	srv := topo.Server.Addr().String()
	startServe(t, ctx, topo.Server, srv+":7001", srv+":7002", srv+":7003")

	byName := map[string]*nslab.Host{}
	for _, w := range topo.Workers {
		byName[w.Name()] = w
	}
	startServe(t, ctx, byName["rst2"], byName["rst2"].Addr().String()+":7200")

	targets := []string{srv + ":7001", srv + ":7002", srv + ":7003"}
	for _, tc := range []struct {
		worker         string
		wan            string
		keepsPort      bool
		unsolicitedSYN string // what the router answers to a SYN nobody asked for
	}{
		{"rst1", "198.51.100.11", true, "refused"},
		{"drop1", "198.51.100.12", true, "timeout"},
		{"sym1", "198.51.100.13", false, "refused"},
	} {
		t.Run(tc.worker, func(t *testing.T) {
			w := byName[tc.worker]
			local := netip.AddrPortFrom(w.Addr(), 40000).String()
			seen := map[string]bool{}
			for i, line := range dial(t, ctx, w, local, 3*time.Second, targets...) {
				obs, ok := strings.CutPrefix(line, "ok ")
				require.True(t, ok, "dial %s from %s: %s", targets[i], local, line)
				ap, err := netip.ParseAddrPort(obs)
				require.NoError(t, err)
				assert.Equal(t, tc.wan, ap.Addr().String(), "source address seen on the internet")
				seen[fmt.Sprint(ap.Port())] = true
				if tc.keepsPort {
					assert.Equal(t, uint16(40000), ap.Port(), "masquerade keeps the source port")
				}
			}
			if !tc.keepsPort {
				assert.Greater(t, len(seen), 1, "fully-random maps each destination to its own port, saw %v", seen)
			}
			got := dial(t, ctx, topo.Server, srv+":0", 1500*time.Millisecond, tc.wan+":7100")
			assert.Equal(t, tc.unsolicitedSYN, got[0], "unsolicited SYN to the router")
		})
	}

	t.Run("lan", func(t *testing.T) {
		got := dial(t, ctx, byName["rst1"], byName["rst1"].Addr().String()+":40001", 2*time.Second,
			byName["rst2"].Addr().String()+":7200", byName["drop2"].Addr().String()+":7200")
		assert.Equal(t, "ok "+byName["rst1"].Addr().String()+":40001", got[0], "same LAN: direct, not translated")
		assert.NotEqual(t, "ok", strings.Fields(got[1])[0], "another router's LAN must be unreachable")
	})
}

// TestLabCloseRemovesEverything checks that Close kills what runs in the lab
// and leaves no namespace behind, and that CleanStale leaves a live lab alone.
func TestLabCloseRemovesEverything(t *testing.T) {
	needLab(t)
	ctx, cancel := testContext(t, 60*time.Second)
	defer cancel()
	lab, err := nslab.New(ctx)
	require.NoError(t, err)
	defer lab.Close()
	r, err := lab.AddRouter(ctx, "r", nslab.MasqueradeRST, netip.MustParseAddr("198.51.100.50"), netip.MustParsePrefix("198.18.50.0/24"))
	require.NoError(t, err)
	h, err := r.AddHost(ctx, "h")
	require.NoError(t, err)
	sleep := h.Command(context.Background(), "sleep", "600")
	require.NoError(t, sleep.Start())
	waited := make(chan error, 1)
	go func() { waited <- sleep.Wait() }()

	stale, err := nslab.CleanStale(ctx, nslab.DefaultPrefix)
	require.NoError(t, err)
	assert.Empty(t, stale, "a live lab is not stale")

	require.NoError(t, lab.Close())
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("process in the lab still running after Close")
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	require.NoError(t, err)
	assert.NotContains(t, string(out), lab.ID())
	require.NoError(t, lab.Close(), "Close twice")
}

// TestLabRejectsAddressesOutsideTheLab checks that the lab refuses to route
// anything outside the documentation and benchmarking ranges.
func TestLabRejectsAddressesOutsideTheLab(t *testing.T) {
	needLab(t)
	ctx, cancel := testContext(t, 30*time.Second)
	defer cancel()
	lab, err := nslab.New(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, lab.Close()) }()
	_, err = lab.AddHost(ctx, "pub", netip.MustParseAddr("8.8.8.8"))
	assert.ErrorContains(t, err, "outside the lab internet")
	_, err = lab.AddRouter(ctx, "r", nslab.MasqueradeRST, netip.MustParseAddr("198.51.100.60"), netip.MustParsePrefix("10.0.0.0/24"))
	assert.ErrorContains(t, err, "within 198.18.0.0/15")
	_, err = lab.AddHost(ctx, "Bad_Name", netip.MustParseAddr("203.0.113.60"))
	assert.Error(t, err)
}

// TestLabProcessesDieWithTheTestProcess kills a process that built a lab and
// started a program in it without closing the lab (a test binary killed, or
// panicking on its -timeout): the program must not run on, and CleanStale
// must then remove the lab's namespaces.
func TestLabProcessesDieWithTheTestProcess(t *testing.T) {
	needLab(t)
	ctx, cancel := testContext(t, 60*time.Second)
	defer cancel()
	exe, err := os.Executable()
	require.NoError(t, err)
	child := exec.CommandContext(ctx, exe)
	child.Env = append(os.Environ(), "NSLAB_HELPER=lab")
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "lab helper")
	var pid int
	var id string
	_, err = fmt.Sscan(line, &pid, &id)
	require.NoError(t, err, "lab helper said %q", line)
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_, _ = nslab.CleanStale(context.Background(), nslab.DefaultPrefix)
	})

	require.NoError(t, child.Process.Kill())
	_ = child.Wait()
	assert.Eventually(t, func() bool { return !nslab.Running(pid) }, 10*time.Second, 20*time.Millisecond,
		"the program started in the lab runs on after the process that started it died")

	gone, err := nslab.CleanStale(ctx, nslab.DefaultPrefix)
	require.NoError(t, err)
	assert.Contains(t, gone, id+"-inet")
	assert.Contains(t, gone, id+"-h")
}

// TestCheckConcurrently runs Check from several goroutines at once: each must
// succeed (they used to share one probe namespace name, so all but one
// failed with "File exists" and their tests would have skipped).
func TestCheckConcurrently(t *testing.T) {
	needLab(t)
	ctx, cancel := testContext(t, 30*time.Second)
	defer cancel()
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = nslab.Check(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "Check %d", i)
	}
}

// TestCleanStaleTemp checks that the temporary directories of test processes
// that died without removing them (killed, or panicking on -timeout, leaving
// the mesh tests' 20 MB of binaries each time) are removed, and those of
// running processes are not.
func TestCleanStaleTemp(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	stale := fmt.Sprintf("%s%d-1", tempPrefix, dead.Process.Pid)
	live := fmt.Sprintf("%s%d-2", tempPrefix, os.Getpid())
	other := fmt.Sprintf("%s%d-3", tempPrefix, 1) // init runs as long as the machine
	// A test binary killed where PID 1 reaps no orphans lingers as a
	// zombie: its directory is stale too (it used to be kept).
	zombie := fmt.Sprintf("%s%d-4", tempPrefix, nslab.Zombie(t))
	for _, d := range []string{stale, live, other, zombie, "unrelated"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d, "sub"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, d, "sub", "f"), []byte("x"), 0o600))
	}
	gone, err := cleanStaleTemp(dir)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{stale, zombie}, gone)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	assert.ElementsMatch(t, []string{live, other, "unrelated"}, left)
}
