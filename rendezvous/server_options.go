package rendezvous

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/fnmesh/fnmesh/punch"
)

// Server defaults; each has a ServerOption (and a cmd/rendezvous flag).
const (
	DefaultJobTimeout       = 2 * time.Minute
	DefaultPunchTimeout     = 3 * time.Second
	DefaultRelayTimeout     = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultPingInterval     = 5 * time.Second
	DefaultMaxConns         = 20000
	DefaultDrainTimeout     = 10 * time.Second
	// DefaultRelayCongestionControl is the TCP congestion control of the
	// server's side of relayed connections: the workers' default.
	DefaultRelayCongestionControl = punch.DefaultCongestionControl
)

type serverConfig struct {
	jobTimeout       time.Duration
	punchTimeout     time.Duration
	relayTimeout     time.Duration
	handshakeTimeout time.Duration
	pingInterval     time.Duration
	maxConns         int
	drainTimeout     time.Duration
	relayCongestion  string
	log              *slog.Logger
	err              error // the first option that is not valid; Serve refuses to start with it
}

// setDuration sets *dst to d for the option name: d <= 0 leaves the
// default, d under a millisecond (the unit the protocol carries durations
// in, and the command's floor) is an error Serve returns.
func (c *serverConfig) setDuration(name string, dst *time.Duration, d time.Duration) {
	switch {
	case d <= 0:
	case d < time.Millisecond:
		if c.err == nil {
			c.err = fmt.Errorf("option %s(%v): under the protocol's unit: it must be at least 1ms", name, d)
		}
	default:
		*dst = d
	}
}

// ServerOption configures a Server. Zero or negative durations and counts
// (and a nil logger) leave the default in place, except that
// WithDrainTimeout(0) means no drain. A positive duration under
// 1ms (the protocol's unit) for WithJobTimeout, WithDefaultPunchTimeout,
// WithRelayTimeout, WithHandshakeTimeout or WithPingInterval is not valid:
// Serve then refuses to start, with an error naming the option.
type ServerOption func(*serverConfig)

// WithJobTimeout bounds how long a job may take from its first join until
// every member has its mesh; members of a job that runs out get an error.
// A job whose world completes gets at least its start delay, punch
// timeout, twice the relay timeout and 10 s more from then, whatever is
// left of d.
func WithJobTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) { c.setDuration("WithJobTimeout", &c.jobTimeout, d) }
}

// WithDefaultPunchTimeout sets how long a pair may try to punch before it
// is relayed, for members that do not ask for their own (WithPunchTimeout),
// and the most any member may ask for: a longer request is capped at it.
func WithDefaultPunchTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) { c.setDuration("WithDefaultPunchTimeout", &c.punchTimeout, d) }
}

// WithRelayTimeout bounds how long a relay connection waits for its partner.
func WithRelayTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) { c.setDuration("WithRelayTimeout", &c.relayTimeout, d) }
}

// WithHandshakeTimeout bounds how long a new connection may take to send its
// first frames (and a STUN connection to stay idle).
func WithHandshakeTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) { c.setDuration("WithHandshakeTimeout", &c.handshakeTimeout, d) }
}

// WithPingInterval sets how often the server pings waiting members (to
// measure their round-trip time and find dead ones: three intervals of
// silence evict a member).
func WithPingInterval(d time.Duration) ServerOption {
	return func(c *serverConfig) { c.setDuration("WithPingInterval", &c.pingInterval, d) }
}

// WithMaxConns caps the connections the server holds at once; connections
// over the cap get an "overloaded" error and are closed.
func WithMaxConns(n int) ServerOption {
	return func(c *serverConfig) {
		if n > 0 {
			c.maxConns = n
		}
	}
}

// WithDrainTimeout sets how long a shutting-down server lets established
// relays run before it cuts them; 0 cuts them at once, a negative d keeps
// the default.
func WithDrainTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) {
		if d >= 0 {
			c.drainTimeout = d
		}
	}
}

// WithRelayCongestionControl sets the TCP congestion-control algorithm of
// the server's side of relayed connections (default
// DefaultRelayCongestionControl, "cubic"; "" keeps the system's), as
// rendezvous.WithCongestionControl does for the workers' side.
func WithRelayCongestionControl(name string) ServerOption {
	return func(c *serverConfig) { c.relayCongestion = name }
}

// WithServerLogger sets the server's logger (silent by default).
func WithServerLogger(l *slog.Logger) ServerOption {
	return func(c *serverConfig) {
		if l != nil {
			c.log = l
		}
	}
}

func defaultServerConfig() serverConfig {
	return serverConfig{
		jobTimeout:       DefaultJobTimeout,
		punchTimeout:     DefaultPunchTimeout,
		relayTimeout:     DefaultRelayTimeout,
		handshakeTimeout: DefaultHandshakeTimeout,
		pingInterval:     DefaultPingInterval,
		maxConns:         DefaultMaxConns,
		drainTimeout:     DefaultDrainTimeout,
		relayCongestion:  DefaultRelayCongestionControl,
		log:              slog.New(slog.DiscardHandler),
	}
}
