//go:build linux

package nslab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// needLabInternal skips (or, with NSLAB_REQUIRE set, fails) a test when this
// machine cannot build a lab; see needLab in main_test.go.
func needLabInternal(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Check(ctx); err != nil {
		if os.Getenv("NSLAB_REQUIRE") != "" { // see requireEnv in main_test.go
			t.Fatalf("network-namespace NAT lab unavailable, and NSLAB_REQUIRE is set: %v", err)
		}
		t.Skipf("network-namespace NAT lab unavailable: %v", err)
	}
}

// namespacesWithPrefix returns the named namespaces whose name starts with p.
func namespacesWithPrefix(t *testing.T, p string) []string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), p) {
			names = append(names, e.Name())
		}
	}
	return names
}

// probeChildEnv makes TestSignalDuringCheckLeavesNoProbe, run in a child
// process, run Check and stop inside it once its probe namespace exists.
const probeChildEnv = "NSLAB_TEST_PROBE_CHILD"

// TestSignalDuringCheckLeavesNoProbe sends a signal that ends a run to a test
// process while its Check holds a probe namespace: the signal handler of
// TestMain (CloseAll, then os.Exit) must remove the probe. It used to be left
// behind: CloseAll knew only labs, and os.Exit skipped Check's deferred
// delete. SIGHUP was not handled at all, and left every lab behind.
func TestSignalDuringCheckLeavesNoProbe(t *testing.T) {
	if os.Getenv(probeChildEnv) != "" {
		// Told of the parent's signal too (beside TestMain's handler).
		got := make(chan os.Signal, 1)
		signal.Notify(got, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		testHookNamespaceAdded = func(ns string) {
			if strings.HasSuffix(ns, "-probe") {
				fmt.Printf("ready %s\n", ns)
				// Hold the probe until the parent's signal has arrived,
				// however late a loaded machine lets the parent send it
				// (a fixed 2 s sleep let Check end first, and the run
				// exit 0), and until TestMain's handler, which holds the
				// exit by then, is closing the probe's lab: returning
				// before would let Check and the run end under it, with
				// status 0. Bounded, so that CloseAll, which waits for
				// namespaces being added, cannot wait forever.
				giveUp := time.After(time.Minute)
				select {
				case <-got:
				case <-giveUp:
					return
				}
				for !labClosing(ns) {
					select {
					case <-giveUp:
						return
					case <-time.After(time.Millisecond):
					}
				}
			}
		}
		defer func() { testHookNamespaceAdded = nil }()
		_ = Check(context.Background())
		return
	}
	needLabInternal(t)
	tests := []struct {
		sig  syscall.Signal
		code int // 128 + the signal's number, as a shell reports it
	}{
		{syscall.SIGTERM, 143},
		{syscall.SIGINT, 130},
		{syscall.SIGHUP, 129}, // the terminal of the go command closed
	}
	for _, tt := range tests {
		t.Run(tt.sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			exe, err := os.Executable()
			require.NoError(t, err)
			child := exec.CommandContext(ctx, exe, "-test.run=^TestSignalDuringCheckLeavesNoProbe$", "-test.count=1")
			child.Env = append(os.Environ(), probeChildEnv+"=1")
			child.Stderr = os.Stderr
			out, err := child.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, child.Start())
			pid := child.Process.Pid
			t.Cleanup(func() {
				_ = child.Process.Kill()
				_ = child.Wait()
				for _, ns := range namespacesWithPrefix(t, fmt.Sprintf("%s-%d-", DefaultPrefix, pid)) {
					_ = deleteNamespace(context.Background(), ns)
				}
			})
			line, err := bufio.NewReader(out).ReadString('\n')
			require.NoError(t, err, "child said %q", line)
			probe, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
			require.True(t, ok, "child said %q", line)
			require.True(t, namespaceExists(probe), "probe %s missing while Check runs", probe)

			require.NoError(t, child.Process.Signal(tt.sig))
			err = child.Wait()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit)
			assert.Equal(t, tt.code, exit.ExitCode(), "the child's signal handler did not end it")
			assert.Empty(t, namespacesWithPrefix(t, fmt.Sprintf("%s-%d-", DefaultPrefix, pid)),
				"namespaces of the child outlived its %v", tt.sig)
		})
	}
}

// labClosing reports whether the open lab that namespace ns belongs to is
// being closed (or is no longer open).
func labClosing(ns string) bool {
	openMu.Lock()
	defer openMu.Unlock()
	for l := range open {
		if strings.HasPrefix(ns, l.id+"-") {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.closed
		}
	}
	return true
}

// Zombie starts a child that exits at once and is not waited for, and
// returns its pid once the kernel shows it as a zombie. The child is reaped
// when the test ends. Exported for the package's external tests.
func Zombie(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Wait() })
	pid := cmd.Process.Pid
	// Not waited for, it is there until the cleanup: not running is a zombie.
	require.Eventually(t, func() bool { return !Running(pid) }, 5*time.Second, 5*time.Millisecond,
		"child %d did not become a zombie", pid)
	return pid
}

// Running reports whether process pid exists and is not a zombie, read
// from /proc/<pid>/stat apart from processStart (the tests' own oracle).
// Exported for the package's external tests.
func Running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may itself
	// contain spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// TestCleanStale checks which namespaces CleanStale deletes: those of a
// process that no longer runs, including one that is a zombie (killed test
// binaries linger as zombies when PID 1 does not reap orphans; CleanStale
// used to take them for running and never removed their namespaces), and
// those whose name records another start time than the process now holding
// the pid (a reused pid). Those of this running process stay.
func TestCleanStale(t *testing.T) {
	needLabInternal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const prefix = "fnlabstale"
	t.Cleanup(func() {
		for _, ns := range namespacesWithPrefix(t, prefix+"-") {
			_ = deleteNamespace(context.Background(), ns)
		}
	})
	self := os.Getpid()
	start, err := processStart(self)
	require.NoError(t, err)
	zpid := Zombie(t)

	tests := []struct {
		name  string
		ns    string
		stale bool
	}{
		{"zombie", fmt.Sprintf("%s-%d-abc123-h", prefix, zpid), true},
		{"zombie with start time", fmt.Sprintf("%s-%d-1-abc123-h", prefix, zpid), true},
		{"running", fmt.Sprintf("%s-%d-abc123-h", prefix, self), false},
		{"running with its start time", fmt.Sprintf("%s-%d-%s-abc123-h", prefix, self, start), false},
		{"pid reused", fmt.Sprintf("%s-%d-%s1-abc123-h", prefix, self, start), true},
	}
	for _, tt := range tests {
		require.NoError(t, ip(ctx, "netns", "add", tt.ns), tt.name)
	}
	gone, err := CleanStale(ctx, prefix)
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.stale, !namespaceExists(tt.ns), "namespace %s deleted", tt.ns)
			if tt.stale {
				assert.Contains(t, gone, tt.ns)
			} else {
				assert.NotContains(t, gone, tt.ns)
			}
		})
	}
}

// processesWithArg returns the running processes (not zombies) that have
// arg among their arguments.
func processesWithArg(arg string) []int {
	var pids []int
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !slices.Contains(strings.Split(string(cmdline), "\x00"), arg) {
			continue
		}
		if _, err := processStart(pid); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestCloseKillsProcessesForkedWhileClosing closes a lab while a program in
// it forks as fast as it can: no process of the lab may outlive Close (one
// would keep the namespace, with its veths and nftables rules, alive and
// nameless). Close used to kill the processes it listed once, and the
// children forked between the listing and the kill ran on (28 of them in
// the first round).
func TestCloseKillsProcessesForkedWhileClosing(t *testing.T) {
	needLabInternal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A sleep argument no other process uses marks the program's children.
	mark := fmt.Sprintf("3600.%d", os.Getpid())
	t.Cleanup(func() {
		for _, pid := range processesWithArg(mark) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	for round := range 3 {
		lab, err := New(ctx)
		require.NoError(t, err)
		h, err := lab.AddHost(ctx, "h", netip.MustParseAddr("203.0.113.5"))
		require.NoError(t, err)
		cmd := h.Command(ctx, "sh", "-c", `i=0; while [ $i -lt 400 ]; do sleep "$0" & i=$((i+1)); done; wait`, mark)
		require.NoError(t, cmd.Start())
		require.Eventually(t, func() bool { return len(processesWithArg(mark)) > 10 }, 10*time.Second, 5*time.Millisecond,
			"round %d: the program did not start forking", round)
		require.NoError(t, lab.Close(), "round %d", round)
		_ = cmd.Wait()
		// SIGKILL takes effect at once, but a killed process may take a
		// moment to exit (hundreds of them, on a loaded machine: longer).
		assert.Eventually(t, func() bool { return len(processesWithArg(mark)) == 0 }, 20*time.Second, 20*time.Millisecond,
			"round %d: processes of the lab outlived Close: %v", round, processesWithArg(mark))
		if t.Failed() {
			return
		}
	}
}
