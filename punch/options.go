package punch

import (
	"log/slog"
	"time"
)

// Defaults for the options of a Port.
const (
	DefaultInterval         = 200 * time.Millisecond
	DefaultPunchTimeout     = 10 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultHoldTimeout      = 10 * time.Second
	DefaultHoldCapacity     = 64
	// DefaultCongestionControl is the TCP congestion control a Port sets on
	// the links it makes (see WithCongestionControl).
	DefaultCongestionControl = "cubic"
	// MaxEndpoints is the most candidate endpoints one Punch tries.
	MaxEndpoints = 16
	// maxPendingInbound bounds inbound connections whose handshake is still
	// running; a newer one evicts (aborts) the oldest.
	maxPendingInbound = 64
	// holdPerRank bounds the early arrivals held for one peer rank.
	holdPerRank = 4
)

// Option configures a Port.
type Option func(*options)

type options struct {
	logger           *slog.Logger
	interval         time.Duration
	punchTimeout     time.Duration
	handshakeTimeout time.Duration
	holdTimeout      time.Duration
	holdCapacity     int
	congestion       string
}

func newOptions(opts []Option) options {
	o := options{
		logger:           slog.New(slog.DiscardHandler),
		interval:         DefaultInterval,
		punchTimeout:     DefaultPunchTimeout,
		handshakeTimeout: DefaultHandshakeTimeout,
		holdTimeout:      DefaultHoldTimeout,
		holdCapacity:     DefaultHoldCapacity,
		congestion:       DefaultCongestionControl,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// WithLogger sets the logger for the port's events: rejected connections,
// punch attempts and the links kept or dropped. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithInterval sets how often, once its schedule has settled, Punch sends a
// burst of connects (at most 4) to each endpoint of the peer (default
// 200 ms; each wait is drawn from ±25 % of it). It is also the length of
// the dense first phase. Values below 10 ms are raised to 10 ms.
func WithInterval(d time.Duration) Option {
	return func(o *options) { o.interval = max(d, 10*time.Millisecond) }
}

// WithPunchTimeout bounds a Punch whose context has no deadline (default
// 10 s). A context deadline, when present, is used as it is. There is no
// unbounded punch: d <= 0 keeps the default.
func WithPunchTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.punchTimeout = d
		}
	}
}

// WithHandshakeTimeout bounds the link handshake of each connection a Port
// accepts or Punch dials (default 5 s): a stray connection that sends
// nothing is closed after this long, and an endpoint that accepts but never
// speaks is dialed again. d <= 0 keeps the default: no handshake waits
// without a bound.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.handshakeTimeout = d
		}
	}
}

// WithHold sets the holding area for authenticated inbound links that arrive
// before the Punch for their rank starts: at most capacity links in all (at
// most 4 per rank), each closed if not claimed within timeout. Defaults: 64
// links, 10 s. Capacity 0 holds nothing (a link that comes early is
// closed); a negative capacity, or a timeout <= 0, keeps that default.
func WithHold(capacity int, timeout time.Duration) Option {
	return func(o *options) {
		if capacity >= 0 {
			o.holdCapacity = capacity
		}
		if timeout > 0 {
			o.holdTimeout = timeout
		}
	}
}

// WithCongestionControl sets the TCP congestion-control algorithm of the
// links the port makes, punched or dialed (default "cubic"; "" keeps the
// system's default). A link that cannot take it keeps the system's and the
// port logs why at debug level.
//
// The default is not the system's because BBR, the default of many
// distributions and clouds, paces every send to its estimate of the path's
// bandwidth, and a collective's traffic (bursts, then silence) keeps that
// estimate low: on loopback a 1 MiB message took twice as long under BBR as
// under CUBIC, which does not pace (docs/benchmarks.md). Choose "bbr" for
// long, lossy paths where pacing pays.
func WithCongestionControl(name string) Option {
	return func(o *options) { o.congestion = name }
}
