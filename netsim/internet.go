package netsim

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// Internet is an emulated internet: public hosts and NAT routers attached to
// it, and hosts and further routers behind those. Create it with New (inside
// the synctest bubble when testing with virtual time) and Close it when done.
// All methods are safe for concurrent use.
type Internet struct {
	mu     sync.Mutex
	closed bool
	start  time.Time

	seed     uint64
	entities uint64 // entities created so far; each gets its own PRNG stream
	tracer   func(Event)
	defLink  Link
	tcpBuf   int
	timeWait time.Duration

	optErr error // a bad option given to New, reported by AddHost and AddNAT

	root  realm
	hosts []*Host
	nats  []*NAT
	stats Stats

	// scheduler (sched.go)
	events  []event
	seq     uint64
	timer   *time.Timer
	armed   time.Time
	running bool // run is running its due events
}

// Option configures an Internet; a nil Option is skipped.
type Option func(*Internet)

// WithSeed sets the seed of every random choice the network makes (ports,
// jitter, loss). The same seed and the same sequence of calls give the same
// choices.
func WithSeed(seed uint64) Option { return func(in *Internet) { in.seed = seed } }

// WithTrace calls fn for every packet event and NAT decision. fn runs while
// the network is locked: it must return quickly and must not call back into
// the network.
func WithTrace(fn func(Event)) Option { return func(in *Internet) { in.tracer = fn } }

// WithTraceWriter writes every packet event and NAT decision to w, one line
// each (Event.String). Writes happen while the network is locked.
func WithTraceWriter(w io.Writer) Option {
	return WithTrace(func(e Event) { fmt.Fprintln(w, e.String()) })
}

// WithDefaultLink sets the link of every attachment made without WithLink.
func WithDefaultLink(l Link) Option { return func(in *Internet) { in.defLink = l } }

// WithTCPBuffer sets the most bytes a TCP connection keeps in flight and
// unread per direction (its window; default 4 MiB). A writer blocks when
// its peer has this much to read.
func WithTCPBuffer(n int) Option {
	return func(in *Internet) {
		if n <= 0 {
			in.optErr = fmt.Errorf("netsim: WithTCPBuffer(%d): must be positive", n)
			return
		}
		in.tcpBuf = n
	}
}

// WithTimeWait sets how long a TCP connection closed by FINs keeps its
// 4-tuple in TIME_WAIT on the side whose FIN left first, counted from the
// arrival of the peer's FIN (default 60 s, as Linux); a dial reusing the
// 4-tuple meanwhile fails with EADDRNOTAVAIL. Closing with SetLinger(0)
// skips TIME_WAIT, and a RST ends it.
func WithTimeWait(d time.Duration) Option {
	return func(in *Internet) {
		if d < 0 {
			in.optErr = fmt.Errorf("netsim: WithTimeWait(%v): negative", d)
			return
		}
		in.timeWait = d
	}
}

// New creates an empty internet. Under testing/synctest, call it inside the
// bubble: its timers then run on the bubble's virtual clock.
func New(opts ...Option) *Internet {
	in := &Internet{
		start:    time.Now(),
		seed:     1,
		tcpBuf:   4 << 20,
		timeWait: 60 * time.Second,
	}
	in.root.nodes = map[netip.Addr]any{}
	for _, o := range opts {
		if o != nil {
			o(in)
		}
	}
	if err := in.defLink.validate(); err != nil {
		in.defLink = Link{}
		in.optErr = fmt.Errorf("netsim: WithDefaultLink: %w", err)
	}
	in.timer = time.AfterFunc(time.Hour, in.run)
	in.timer.Stop()
	return in
}

// Close shuts the network down: every socket on every host fails with
// net.ErrClosed and pending events are discarded. Close is idempotent.
func (in *Internet) Close() error {
	if in == nil || in.timer == nil {
		return errInvalid
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil
	}
	for _, h := range in.hosts {
		h.shutdown()
	}
	in.closed = true
	in.timer.Stop()
	in.events = nil
	return nil
}

// Stats returns the network-wide counters.
func (in *Internet) Stats() Stats {
	if in == nil || in.timer == nil {
		return Stats{}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stats
}

// AddHost attaches a host with a public address to the internet.
func (in *Internet) AddHost(addr netip.Addr, opts ...NodeOption) (*Host, error) {
	if in == nil || in.timer == nil {
		return nil, errInvalid
	}
	return in.addHost(nil, addr, opts)
}

// AddNAT attaches a router with public address addr and configuration cfg
// (a preset such as LinuxMasquerade, or your own) to the internet. Add hosts
// behind it with NAT.AddHost.
func (in *Internet) AddNAT(addr netip.Addr, cfg NATConfig, opts ...NodeOption) (*NAT, error) {
	if in == nil || in.timer == nil {
		return nil, errInvalid
	}
	return in.addNAT(nil, addr, cfg, opts)
}

// NodeOption configures a host or router as it is attached; a nil
// NodeOption is skipped.
type NodeOption func(*nodeConfig)

type nodeConfig struct {
	link    Link
	hasLink bool
	name    string
}

// WithLink sets the link between the node and the network it is attached to.
func WithLink(l Link) NodeOption { return func(c *nodeConfig) { c.link, c.hasLink = l, true } }

// WithName names the node in traces (default: its address, and for a node
// behind a NAT the NAT's address too).
func WithName(name string) NodeOption { return func(c *nodeConfig) { c.name = name } }

// realm is an address space: the internet, or the LAN behind a router.
type realm struct {
	owner *NAT // nil for the internet
	// nodes maps an address to the attached *Host or *NAT that has it or,
	// for addresses behind a plain (non-translating) router, to that router.
	nodes map[netip.Addr]any
}

// attach is what hosts and routers share: their place in the topology.
type attach struct {
	in     *Internet
	parent *NAT       // nil: attached to the internet
	addr   netip.Addr // address in the parent's realm
	link   *link
	name   string
}

func (a *attach) realm() *realm {
	if a.parent == nil {
		return &a.in.root
	}
	return &a.parent.inner
}

func (in *Internet) newRand() *rand.Rand {
	in.entities++
	return rand.New(rand.NewPCG(in.seed, in.entities*0x9e3779b97f4a7c15))
}

func checkNodeAddr(addr netip.Addr) (netip.Addr, error) {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return addr, fmt.Errorf("netsim: invalid address")
	case !addr.Is4():
		return addr, fmt.Errorf("netsim: address %v: only IPv4 is emulated", addr)
	case addr.IsUnspecified(), addr.IsLoopback(), addr.IsMulticast(), addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return addr, fmt.Errorf("netsim: address %v cannot be assigned to a node", addr)
	}
	return addr, nil
}

// newAttach validates and registers a node's address. Caller holds in.mu.
func (in *Internet) newAttach(parent *NAT, addr netip.Addr, opts []NodeOption, target any, kind string) (attach, error) {
	if in.closed {
		return attach{}, closedError{"netsim internet"}
	}
	if in.optErr != nil {
		return attach{}, in.optErr
	}
	addr, err := checkNodeAddr(addr)
	if err != nil {
		return attach{}, err
	}
	var nc nodeConfig
	for _, o := range opts {
		if o != nil {
			o(&nc)
		}
	}
	if !nc.hasLink {
		nc.link = in.defLink
	}
	if err := nc.link.validate(); err != nil {
		return attach{}, err
	}
	if nc.name == "" {
		nc.name = kind + " " + addr.String()
		if parent != nil {
			nc.name += "@" + parent.addr.String()
		}
	}
	a := attach{in: in, parent: parent, addr: addr, link: newLink(nc.link, in.newRand()), name: nc.name}
	// Register in the parent's realm and, through plain routers, upward.
	var realms []*realm
	var targets []any
	t := target
	for r := a.realm(); ; {
		if other, ok := r.nodes[addr]; ok {
			return attach{}, fmt.Errorf("netsim: duplicate address %v: already used by %s", addr, nameOf(other))
		}
		realms, targets = append(realms, r), append(targets, t)
		if r.owner == nil || r.owner.cfg.translates() {
			break
		}
		t = r.owner
		if r.owner.parent == nil {
			r = &in.root
		} else {
			r = &r.owner.parent.inner
		}
	}
	for i, r := range realms {
		r.nodes[addr] = targets[i]
	}
	return a, nil
}

func nameOf(n any) string {
	switch x := n.(type) {
	case *Host:
		return x.name
	case *NAT:
		return x.name
	}
	return "?"
}

func (in *Internet) addHost(parent *NAT, addr netip.Addr, opts []NodeOption) (*Host, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	h := &Host{}
	if parent != nil && parent.cfg.OneToOne && parent.host != nil {
		return nil, fmt.Errorf("netsim: one-to-one NAT %s already has host %v", parent.name, parent.host.addr)
	}
	a, err := in.newAttach(parent, addr, opts, h, "host")
	if err != nil {
		return nil, err
	}
	h.init(a, in.newRand())
	in.hosts = append(in.hosts, h)
	if parent != nil && parent.cfg.OneToOne {
		parent.host = h
	}
	return h, nil
}

func (in *Internet) addNAT(parent *NAT, addr netip.Addr, cfg NATConfig, opts []NodeOption) (*NAT, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if parent != nil && parent.cfg.OneToOne {
		return nil, fmt.Errorf("netsim: one-to-one NAT %s cannot have a router behind it", parent.name)
	}
	n := &NAT{cfg: cfg}
	kind := "nat"
	if !cfg.translates() {
		kind = "router"
	}
	a, err := in.newAttach(parent, addr, opts, n, kind)
	if err != nil {
		return nil, err
	}
	n.init(a, in.newRand())
	in.nats = append(in.nats, n)
	return n, nil
}

func (in *Internet) now() time.Time { return time.Now() }

// Stats are network-wide counters.
type Stats struct {
	Packets   uint64 // packets sent by hosts and routers (handshake segments, datagrams, ICMP)
	Delivered uint64 // packets that reached a host
	Lost      uint64 // packets lost to link loss or tail drop
	NoRoute   uint64 // packets to an address nobody has
}
