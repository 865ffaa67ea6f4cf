package rendezvous

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRejectedCountsEveryErrorFrame: rejected_total{code} counts every
// connection the server closes with an error frame (docs/rendezvous.md),
// also the members of a job that fails (member-left, timeout, shutdown),
// each once.
func TestRejectedCountsEveryErrorFrame(t *testing.T) {
	tests := []struct {
		name string
		opts []ServerOption
		run  func(t *testing.T, srv *loopServer) []*rawClient // returns the members told
		code Code
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
		}, CodeMemberLeft},
		{"job timeout", []ServerOption{WithJobTimeout(200 * time.Millisecond)}, func(t *testing.T, srv *loopServer) []*rawClient {
			rs := []*rawClient{dialRaw(t, srv.addr), dialRaw(t, srv.addr)}
			for i, r := range rs {
				r.join("late", 3, i)
			}
			return rs
		}, CodeTimeout},
		{"shutdown", nil, func(t *testing.T, srv *loopServer) []*rawClient {
			rs := []*rawClient{dialRaw(t, srv.addr), dialRaw(t, srv.addr)}
			for i, r := range rs {
				r.join("shut", 3, i)
			}
			srv.cancel() // Serve returns once they are told; the cleanup waits for it
			return rs
		}, CodeShutdown},
		{"report before start", nil, func(t *testing.T, srv *loopServer) []*rawClient {
			r := dialRaw(t, srv.addr)
			r.join("early", 2, 0)
			r.send(report{Peer: 1, Outcome: outcomeLAN})
			return []*rawClient{r}
		}, CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startLoopServer(t, tt.opts...)
			told := tt.run(t, srv)
			for _, r := range told {
				r.expectError(tt.code)
			}
			require.Eventually(t, func() bool { return srv.Metrics().Members == 0 }, 5*time.Second, time.Millisecond)
			assert.Equal(t, map[Code]int64{tt.code: int64(len(told))}, srv.Metrics().Rejected)
		})
	}
}
