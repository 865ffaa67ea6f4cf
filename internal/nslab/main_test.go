//go:build linux

package nslab_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fnmesh/fnmesh/internal/nslab"
)

// requireEnv, when set to a non-empty value, turns a lab test's skip (no
// root, no ip or nft, no right to create a namespace) into a failure:
// scripts/test.sh sets it when it runs as root, so that a CI machine that
// cannot build the lab fails instead of passing with the lab tests skipped.
const requireEnv = "NSLAB_REQUIRE"

// tempPrefix starts the name of the directory that holds every temporary
// file of one test process of this package ("fnlab-test-<pid>-<random>").
// TMPDIR points there while the tests run, so that t.TempDir and the go
// builds of the mesh tests land in it; it is removed when the process ends,
// and by the next run if the process was killed or panicked (a -timeout).
const tempPrefix = "fnlab-test-"

// TestMain runs the test binary as a network helper when asked to (the lab
// tests run this same binary inside namespaces), removes the namespaces and
// temporary directories that killed runs left behind, closes every lab if
// the run is interrupted, and closes them too if the go command running it
// dies (it gets SIGTERM then) or its terminal closes (SIGHUP).
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	// A go test killed by SIGTERM leaves this process running on, orphaned,
	// with its labs: have the kernel tell it, so that it cleans up at once.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "nslab: prctl(PR_SET_PDEATHSIG):", err)
	}
	// Nor may it die of SIGPIPE when it writes to the dead go command's
	// pipe (a -v run writes as it goes), before or while it cleans up:
	// with SIGPIPE notified (not ignored, which the programs it starts
	// would inherit) such a write fails with EPIPE instead.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	sig := make(chan os.Signal, 1)
	// SIGHUP too: the terminal of the go command closing ends the run.
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)

	if os.Geteuid() == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if gone, err := nslab.CleanStale(ctx, nslab.DefaultPrefix); err != nil {
			fmt.Fprintln(os.Stderr, "nslab: cleaning stale namespaces:", err)
		} else if len(gone) > 0 {
			fmt.Fprintf(os.Stderr, "nslab: removed %d stale namespaces of killed runs\n", len(gone))
		}
		cancel()
	}
	if gone, err := cleanStaleTemp(os.TempDir()); err != nil {
		fmt.Fprintln(os.Stderr, "nslab: cleaning stale temporary directories:", err)
	} else if len(gone) > 0 {
		fmt.Fprintf(os.Stderr, "nslab: removed %d temporary directories of killed runs\n", len(gone))
	}
	tmp, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", tempPrefix, os.Getpid()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "nslab: temporary directory:", err)
		os.Exit(1)
	}
	if err := os.Setenv("TMPDIR", tmp); err != nil {
		fmt.Fprintln(os.Stderr, "nslab: TMPDIR:", err)
		os.Exit(1)
	}

	// Whoever ends the process holds exiting: a run that ends while the
	// signal handler cleans up waits for it (which exits with the
	// signal's code) instead of exiting 0 under it.
	var exiting sync.Mutex
	go func() {
		s := <-sig
		exiting.Lock() // never unlocked: os.Exit follows
		fmt.Fprintf(os.Stderr, "nslab: %v: removing lab namespaces\n", s)
		if err := nslab.CloseAll(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		_ = os.RemoveAll(tmp)
		code := 130 // 128 + the signal's number, as a shell reports it
		if n, ok := s.(syscall.Signal); ok {
			code = 128 + int(n)
		}
		os.Exit(code)
	}()
	code := m.Run()
	exiting.Lock() // never unlocked: os.Exit follows
	if err := os.RemoveAll(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "nslab: removing the temporary directory:", err)
	}
	os.Exit(code)
}

// cleanStaleTemp removes the temporary directories in dir (see tempPrefix)
// of test processes that are no longer running, and returns their names.
func cleanStaleTemp(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cleanStaleTemp: list %s: %w", dir, err)
	}
	var gone []string
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), tempPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		// A zombie (a killed test binary nobody reaped) is dead too.
		if err != nil || pid <= 0 || pid == os.Getpid() || nslab.Running(pid) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("cleanStaleTemp: %w", err))
			continue
		}
		gone = append(gone, e.Name())
	}
	return gone, errors.Join(errs...)
}

// needLab skips the test, saying why, when this machine cannot build a lab;
// it fails the test instead if NSLAB_REQUIRE is set.
func needLab(t testing.TB) {
	t.Helper()
	ctx, cancel := testContext(t, 20*time.Second)
	defer cancel()
	if err := nslab.Check(ctx); err != nil {
		if os.Getenv(requireEnv) != "" {
			t.Fatalf("network-namespace NAT lab unavailable, and %s is set (scripts/test.sh sets it when run as root): %v", requireEnv, err)
		}
		t.Skipf("network-namespace NAT lab unavailable: %v", err)
	}
}

// testContext returns a context that ends after d, or earlier, before the
// test binary's -timeout: the test then fails on its context with time left
// for its cleanups (closing its lab, removing its files) before the timeout
// panics the process, which runs none of them.
func testContext(t testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	end := time.Now().Add(d)
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := dt.Deadline(); ok {
			// Keep 10 s for the cleanups, or half of what is left if less.
			reserve := min(10*time.Second, time.Until(deadline)/2)
			if e := deadline.Add(-reserve); e.Before(end) {
				end = e
			}
		}
	}
	return context.WithDeadline(context.Background(), end)
}
