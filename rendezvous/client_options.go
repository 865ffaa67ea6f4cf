package rendezvous

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/fnmesh/fnmesh/punch"
)

// Option configures Join.
type Option func(*clientConfig)

type clientConfig struct {
	nw           punch.Network
	rank         int  // -1 until WithRank: the server assigns one
	rankSet      bool // WithRank was given
	punchTimeout time.Duration
	laddr        netip.AddrPort
	stun         netip.AddrPort
	congestion   string
	connectRetry time.Duration
	log          *slog.Logger
}

// WithNetwork sets the network Join uses: punch.OS() (the default) or an
// emulated one such as a netsim host.
func WithNetwork(nw punch.Network) Option {
	return func(c *clientConfig) { c.nw = nw }
}

// WithRank asks for a rank (0 <= r < world; Join fails for any other r,
// negative ones included). Without it the server assigns the free ranks in
// the order members joined. Two members asking for the same rank is an error
// for the second.
func WithRank(r int) Option {
	return func(c *clientConfig) { c.rank, c.rankSet = r, true }
}

// WithPunchTimeout sets how long a pair may try to punch before it is
// relayed. The whole job uses the smallest value its members ask for, capped
// at the server's punch timeout (DefaultPunchTimeout unless the server was
// configured otherwise), which is also what it uses if none asks: a member
// may shorten the punch round, never lengthen it.
func WithPunchTimeout(d time.Duration) Option {
	return func(c *clientConfig) { c.punchTimeout = d }
}

// WithLocalAddr sets the local endpoint of the punch port: the address to
// bind (unspecified: any) and the port (0: an ephemeral port). A bound
// address also picks which of a server name's addresses Join dials: those of
// its family (without it, the IPv4 ones when the name has an IPv4 address),
// in the resolver's order until one connects.
func WithLocalAddr(ap netip.AddrPort) Option {
	return func(c *clientConfig) { c.laddr = ap }
}

// WithSTUNServer makes Join ask a STUN server (over TCP, from the punch
// port) for the port's public endpoint before it joins, and tell the
// rendezvous server. Peers then try that endpoint too. With a STUN server on
// another address than the rendezvous server, a difference between the two
// observations shows a NAT whose mapping depends on the destination. A
// STUN server that does not answer is logged and joined without; one Join
// cannot use (port 0, no address, multicast, a zone, or another family than
// the rendezvous server's address) fails Join before it dials.
func WithSTUNServer(ap netip.AddrPort) Option {
	return func(c *clientConfig) { c.stun = ap }
}

// WithCongestionControl sets the TCP congestion-control algorithm of the
// mesh's links, punched, direct or relayed (default
// punch.DefaultCongestionControl, "cubic"; "" keeps the system's). See
// punch.WithCongestionControl for why the default is not the system's.
func WithCongestionControl(name string) Option {
	return func(c *clientConfig) { c.congestion = name }
}

// DefaultConnectRetry is how long Join keeps trying while the rendezvous
// server refuses its connection, unless WithConnectRetry says otherwise.
const DefaultConnectRetry = 10 * time.Second

// WithConnectRetry sets how long Join keeps dialing a rendezvous server that
// refuses the connection (one not listening yet, or restarting), so that
// workers may start before or together with their server; 0 fails at the
// first refusal, and a negative d makes Join fail before it dials. Other
// failures to connect (no route, a timeout, a name that does not resolve)
// are not retried. A server name of several addresses (of the punch port's
// family) is dialed at each in turn, as net.Dialer does, before any is
// retried; a refusal at one does not end Join while another is left.
func WithConnectRetry(d time.Duration) Option {
	return func(c *clientConfig) { c.connectRetry = d }
}

// WithLogger sets the logger for Join's progress (silent by default).
func WithLogger(l *slog.Logger) Option {
	return func(c *clientConfig) { c.log = l }
}

func newClientConfig(opts []Option) clientConfig {
	c := clientConfig{rank: -1, congestion: punch.DefaultCongestionControl, connectRetry: DefaultConnectRetry,
		log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.nw == nil {
		c.nw = punch.OS()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}
