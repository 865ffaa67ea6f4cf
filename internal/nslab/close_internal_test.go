//go:build linux

package nslab

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCloseDeletesNamespaceBeingAdded closes a lab while one of its
// namespaces is being added (a signal handler's CloseAll while a test builds
// its lab): the namespace must not outlive Close. Close used to take the list
// of namespaces without waiting, and the one added just then was left behind.
func TestCloseDeletesNamespaceBeingAdded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Check(ctx); err != nil {
		if os.Getenv("NSLAB_REQUIRE") != "" { // see requireEnv in main_test.go
			t.Fatalf("network-namespace NAT lab unavailable, and NSLAB_REQUIRE is set: %v", err)
		}
		t.Skipf("network-namespace NAT lab unavailable: %v", err)
	}
	lab, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()

	closed := make(chan error, 1)
	testHookNamespaceAdded = func(ns string) {
		if !strings.HasSuffix(ns, "-h") {
			return
		}
		go func() { closed <- lab.Close() }()
		// Give Close the time to finish, as it did before it waited for
		// namespaces being added (it cannot finish now while this runs).
		select {
		case err := <-closed:
			closed <- err
		case <-time.After(300 * time.Millisecond):
		}
	}
	defer func() { testHookNamespaceAdded = nil }()

	// It may fail or not, depending on how far it gets before Close
	// deletes its namespace; either way nothing may be left.
	_, _ = lab.AddHost(ctx, "h", netip.MustParseAddr("203.0.113.5"))
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return")
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), lab.ID()+"-") {
			t.Errorf("namespace %s outlived Close", e.Name())
			_ = deleteNamespace(context.Background(), e.Name())
		}
	}
}
