package rendezvous

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRejectedCountsOwnFaultsOnly: rejected_total{code} counts the
// connections refused or cut for what they sent (docs/rendezvous.md), once
// each; the members of a job that fails (member-left, timeout, shutdown)
// are counted by the job's outcome, not as rejections: their control
// connections and their relay connections alike.
func TestRejectedCountsOwnFaultsOnly(t *testing.T) {
	tests := []struct {
		name     string
		opts     []ServerOption
		run      func(t *testing.T, srv *loopServer) []*rawClient // returns the connections told
		code     Code
		rejected bool // counted in rejected_total
	}{
		{"member left", nil, func(t *testing.T, srv *loopServer) []*rawClient {
			rs := []*rawClient{dialRaw(t, srv.addr), dialRaw(t, srv.addr), dialRaw(t, srv.addr)}
			for i, r := range rs {
				r.join("left", 3, i)
			}
			for _, r := range rs {
				r.started()
			}
			rs[2].c.Close()
			return rs[:2]
		}, CodeMemberLeft, false},
		{"member left while a relay waits", nil, func(t *testing.T, srv *loopServer) []*rawClient {
			a, b, va, _ := relayedPair(t, srv.addr, "relay-left")
			key, err := jobKey(testSecret, "relay-left")
			require.NoError(t, err)
			rh := relayHello{Job: "relay-left", Rank: 0, Peer: 1, Nonce: va.Nonce}
			signRelay(key, &rh)
			ra := dialRaw(t, srv.addr)
			ra.send(rh)
			require.Eventually(t, func() bool { return srv.Metrics().Connections == 3 }, 5*time.Second, time.Millisecond)
			time.Sleep(20 * time.Millisecond) // ra's relay-hello read and its slot claimed
			b.c.Close()
			return []*rawClient{a, ra}
		}, CodeMemberLeft, false},
		{"job timeout", []ServerOption{WithJobTimeout(200 * time.Millisecond)}, func(t *testing.T, srv *loopServer) []*rawClient {
			rs := []*rawClient{dialRaw(t, srv.addr), dialRaw(t, srv.addr)}
			for i, r := range rs {
				r.join("late", 3, i)
			}
			return rs
		}, CodeTimeout, false},
		{"shutdown", nil, func(t *testing.T, srv *loopServer) []*rawClient {
			rs := []*rawClient{dialRaw(t, srv.addr), dialRaw(t, srv.addr)}
			for i, r := range rs {
				r.join("shut", 3, i)
			}
			srv.cancel() // Serve returns once they are told; the cleanup waits for it
			return rs
		}, CodeShutdown, false},
		{"report before start", nil, func(t *testing.T, srv *loopServer) []*rawClient {
			r := dialRaw(t, srv.addr)
			r.join("early", 2, 0)
			r.send(report{Peer: 1, Outcome: outcomeLAN})
			return []*rawClient{r}
		}, CodeBadRequest, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startLoopServer(t, tt.opts...)
			told := tt.run(t, srv)
			for _, r := range told {
				r.expectError(tt.code)
			}
			require.Eventually(t, func() bool { return srv.Metrics().Members == 0 }, 5*time.Second, time.Millisecond)
			require.Eventually(t, func() bool { return srv.Metrics().Connections == 0 }, 5*time.Second, time.Millisecond)
			want := map[Code]int64{}
			if tt.rejected {
				want[tt.code] = int64(len(told))
			}
			assert.Equal(t, want, srv.Metrics().Rejected)
		})
	}
}
