package rendezvous

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServerOptionValues: every timeout the doc names is set by its
// option; zero and negative values keep the default, except the drain,
// which 0 turns off.
func TestServerOptionValues(t *testing.T) {
	get := map[string]func(c *serverConfig) time.Duration{
		"job":       func(c *serverConfig) time.Duration { return c.jobTimeout },
		"punch":     func(c *serverConfig) time.Duration { return c.punchTimeout },
		"relay":     func(c *serverConfig) time.Duration { return c.relayTimeout },
		"handshake": func(c *serverConfig) time.Duration { return c.handshakeTimeout },
		"ping":      func(c *serverConfig) time.Duration { return c.pingInterval },
		"drain":     func(c *serverConfig) time.Duration { return c.drainTimeout },
	}
	opt := map[string]func(time.Duration) ServerOption{
		"job": WithJobTimeout, "punch": WithDefaultPunchTimeout, "relay": WithRelayTimeout,
		"handshake": WithHandshakeTimeout, "ping": WithPingInterval, "drain": WithDrainTimeout,
	}
	def := map[string]time.Duration{
		"job": DefaultJobTimeout, "punch": DefaultPunchTimeout, "relay": DefaultRelayTimeout,
		"handshake": DefaultHandshakeTimeout, "ping": DefaultPingInterval, "drain": DefaultDrainTimeout,
	}
	for _, tc := range []struct {
		name string
		d    time.Duration
		want func(name string) time.Duration
	}{
		{"positive", 1234 * time.Millisecond, func(string) time.Duration { return 1234 * time.Millisecond }},
		{"negative", -time.Second, func(n string) time.Duration { return def[n] }},
		{"zero", 0, func(n string) time.Duration {
			if n == "drain" {
				return 0
			}
			return def[n]
		}},
	} {
		for name := range get {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				s := NewServer(testSecret, opt[name](tc.d))
				require.NoError(t, s.cfg.err)
				assert.Equal(t, tc.want(name), get[name](&s.cfg))
			})
		}
	}
}

// TestCompleteJobOutlivesShortJobTimeout: a job whose world completes gets
// at least its punch and relay time (docs/rendezvous.md, --job-timeout),
// whatever was left of the job timeout.
func TestCompleteJobOutlivesShortJobTimeout(t *testing.T) {
	const jobTimeout = 200 * time.Millisecond
	srv := startLoopServer(t, WithJobTimeout(jobTimeout), WithDefaultPunchTimeout(2*time.Second))
	a, b := dialRaw(t, srv.addr), dialRaw(t, srv.addr)
	a.join("outlive", 2, 0)
	b.join("outlive", 2, 1)
	a.started()
	b.started()
	time.Sleep(3 * jobTimeout)
	m := srv.Metrics()
	assert.Equal(t, int64(1), m.Jobs, "the job timed out before its punch timeout")
	assert.Equal(t, int64(0), m.JobsEnded["timeout"])
	a.send(report{Peer: 1, Outcome: outcomeLAN})
	b.send(report{Peer: 0, Outcome: outcomeLAN})
	require.Equal(t, TierDirect, a.mustRecv().(verdict).Tier)
	require.Equal(t, TierDirect, b.mustRecv().(verdict).Tier)
	a.send(done{})
	b.send(done{})
	require.Eventually(t, func() bool { return srv.Metrics().JobsEnded["complete"] == 1 }, 5*time.Second, time.Millisecond)
}
