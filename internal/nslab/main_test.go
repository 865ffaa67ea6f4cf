//go:build linux

package nslab_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/fnmesh/fnmesh/internal/nslab"
)

// TestMain runs the test binary as a network helper when asked to (the lab
// tests run this same binary inside namespaces), removes namespaces that
// killed runs left behind, and closes every lab if the run is interrupted.
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	if os.Geteuid() == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if gone, err := nslab.CleanStale(ctx, nslab.DefaultPrefix); err != nil {
			fmt.Fprintln(os.Stderr, "nslab: cleaning stale namespaces:", err)
		} else if len(gone) > 0 {
			fmt.Fprintf(os.Stderr, "nslab: removed %d stale namespaces of killed runs\n", len(gone))
		}
		cancel()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "nslab: %v: removing lab namespaces\n", s)
		if err := nslab.CloseAll(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		code := 130 // 128 + the signal's number, as a shell reports it
		if s == syscall.SIGTERM {
			code = 143
		}
		os.Exit(code)
	}()
	os.Exit(m.Run())
}

// needLab skips the test, saying why, when this machine cannot build a lab.
func needLab(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := nslab.Check(ctx); err != nil {
		t.Skipf("network-namespace NAT lab unavailable: %v", err)
	}
}
