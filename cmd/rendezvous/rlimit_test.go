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

// TestFileLimitWarning: a --max-conns whose relayed pairs (3 descriptors a
// connection) would not fit under the open-file limit is warned about at
// start; one that fits is not.
func TestFileLimitWarning(t *testing.T) {
	limit, ok := openFileLimit()
	if !ok || limit > 1<<30 {
		t.Skipf("no finite open-file limit here (%d, %v)", limit, ok)
	}
	t.Setenv(secret.Env, testSecret)
	for _, tc := range []struct {
		maxConns uint64 // 0: not given
		warn     bool
	}{
		{limit/3 + 1, true},
		{min(10, limit/4), false},
		{0, false}, // the default fits itself to the limit
	} {
		t.Run(fmt.Sprint(tc.maxConns), func(t *testing.T) {
			args := []string{"--listen", "127.0.0.1:0", "--no-udp"}
			if tc.maxConns > 0 {
				args = append(args, "--max-conns", fmt.Sprint(tc.maxConns))
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var logs syncBuffer
			up := make(chan struct{}, 1)
			exit := make(chan int, 1)
			go func() {
				exit <- run(ctx, args, io.Discard, &logs,
					func(netip.AddrPort, net.Addr) { up <- struct{}{} })
			}()
			select {
			case <-up:
			case code := <-exit:
				t.Fatalf("run exited %d: %s", code, logs.String())
			}
			cancel()
			require.Equal(t, 0, <-exit, "logs:\n%s", logs.String())
			if tc.warn {
				assert.Contains(t, logs.String(), "level=WARN msg=\"the open-file limit is too low for --max-conns")
				assert.Contains(t, logs.String(), fmt.Sprintf("limit=%d", limit))
			} else {
				assert.NotContains(t, logs.String(), "too low for --max-conns")
			}
		})
	}
}

// TestDefaultMaxConns: without --max-conns the server holds as many
// connections as the open-file limit has room for, up to the default.
func TestDefaultMaxConns(t *testing.T) {
	for _, tc := range []struct {
		limit   uint64
		limited bool
		want    int
	}{
		{0, false, rendezvous.DefaultMaxConns},
		{1 << 20, true, rendezvous.DefaultMaxConns},
		{filesNeeded(rendezvous.DefaultMaxConns), true, rendezvous.DefaultMaxConns},
		{filesNeeded(rendezvous.DefaultMaxConns) - 1, true, rendezvous.DefaultMaxConns - 1},
		{20000, true, (20000 - fdReserve) / 3},
		{1024, true, (1024 - fdReserve) / 3},
		{fdReserve, true, 1},
		{0, true, 1},
	} {
		got := defaultMaxConns(tc.limit, tc.limited)
		assert.Equal(t, tc.want, got, "limit %d", tc.limit)
		if tc.limited && tc.limit > fdReserve+3 {
			assert.LessOrEqual(t, filesNeeded(got), tc.limit, "limit %d", tc.limit)
		}
	}
}
