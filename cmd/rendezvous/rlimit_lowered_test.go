package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/fnmesh/fnmesh/internal/secret"
	"github.com/fnmesh/fnmesh/rendezvous"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// When the default --max-conns is lowered to fit the open-file limit, the
// log says how many descriptors the default would need: under a limit of
// 20000 it read "max_conns=6645 limit=20000 default=20000", a limit as
// high as the default it was lowered to fit.
func TestLoweredMaxConnsSaysWhy(t *testing.T) {
	limit, ok := openFileLimit()
	if !ok || limit >= filesNeeded(rendezvous.DefaultMaxConns) {
		t.Skipf("the open-file limit here (%d, %v) holds the default --max-conns", limit, ok)
	}
	t.Setenv(secret.Env, testSecret)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	up := make(chan struct{}, 1)
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"--listen", "127.0.0.1:0", "--no-udp"}, io.Discard, &logs,
			func(netip.AddrPort, net.Addr) { up <- struct{}{} })
	}()
	select {
	case <-up:
	case code := <-exit:
		t.Fatalf("run exited %d: %s", code, logs.String())
	}
	cancel()
	require.Equal(t, 0, <-exit, "logs:\n%s", logs.String())
	assert.Contains(t, logs.String(), "--max-conns lowered from its default to fit the open-file limit")
	assert.Contains(t, logs.String(), fmt.Sprintf("needed=%d", filesNeeded(rendezvous.DefaultMaxConns)))
}
