package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"

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
	t.Setenv(secretEnv, testSecret)
	for _, tc := range []struct {
		maxConns uint64
		warn     bool
	}{
		{limit/3 + 1, true},
		{min(10, limit/4), false},
	} {
		t.Run(fmt.Sprint(tc.maxConns), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var logs syncBuffer
			up := make(chan struct{}, 1)
			exit := make(chan int, 1)
			go func() {
				exit <- run(ctx, []string{"--listen", "127.0.0.1:0", "--no-udp", "--max-conns", fmt.Sprint(tc.maxConns)}, &logs,
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
				assert.NotContains(t, logs.String(), "open-file limit")
			}
		})
	}
}
