package netsim

import (
	"fmt"
	"time"
)

// Behavior is a NAT's mapping or filtering behaviour, in the terms of
// RFC 4787 (UDP) and RFC 5382 (TCP).
type Behavior uint8

const (
	// NoTranslation, as a mapping behaviour, makes the router a plain
	// router: addresses behind it are routable from outside and nothing is
	// translated or filtered.
	NoTranslation Behavior = iota
	// EndpointIndependent mapping reuses one public port for an internal
	// endpoint whatever the destination; endpoint-independent filtering lets
	// anyone reach a mapped port ("full cone").
	EndpointIndependent
	// AddressDependent mapping uses a public port per destination address;
	// address-dependent filtering admits a remote only if the internal
	// endpoint has sent to its address (any port) ("restricted cone").
	AddressDependent
	// AddressAndPortDependent mapping uses a public port per destination
	// address and port ("symmetric"); address-and-port-dependent filtering
	// admits only remotes the internal endpoint has sent to ("port
	// restricted").
	AddressAndPortDependent
)

func (b Behavior) String() string {
	switch b {
	case NoTranslation:
		return "none"
	case EndpointIndependent:
		return "endpoint-independent"
	case AddressDependent:
		return "address-dependent"
	case AddressAndPortDependent:
		return "address-and-port-dependent"
	}
	return fmt.Sprintf("Behavior(%d)", uint8(b))
}

// PortAllocation is how a NAT chooses the public port of a new mapping.
type PortAllocation uint8

const (
	// PortPreserve keeps the internal source port when it is free (any
	// port, as Linux does) and otherwise picks a random free port in range.
	PortPreserve PortAllocation = iota
	// PortSequential gives each new mapping the next free port after the
	// previous one, starting at a seeded random point of the range.
	PortSequential
	// PortRandom picks a random free port in range for every mapping.
	PortRandom
)

func (a PortAllocation) String() string {
	switch a {
	case PortPreserve:
		return "preserve"
	case PortSequential:
		return "sequential"
	case PortRandom:
		return "random"
	}
	return fmt.Sprintf("PortAllocation(%d)", uint8(a))
}

// SYNPolicy is what a NAT does with an unsolicited inbound TCP SYN (one that
// matches no mapping or is filtered out), as the remote dialer sees it.
type SYNPolicy uint8

const (
	// SYNDrop drops it silently: the dialer retransmits and, after its
	// retries, times out.
	SYNDrop SYNPolicy = iota
	// SYNReset answers with a TCP RST from the router's own stack, as a
	// Linux router doing masquerade does: the dialer gets "connection
	// refused", and the RST, passing back through the dialer's own NAT,
	// removes that NAT's session (conntrack entry) for the attempt.
	SYNReset
	// SYNRejectICMP answers with ICMP port unreachable (RFC 5382 REQ-4): the
	// dialer gets "connection refused" too, but the dialer's NAT keeps its
	// session.
	SYNRejectICMP
)

func (p SYNPolicy) String() string {
	switch p {
	case SYNDrop:
		return "drop"
	case SYNReset:
		return "rst"
	case SYNRejectICMP:
		return "icmp"
	}
	return fmt.Sprintf("SYNPolicy(%d)", uint8(p))
}

// NATConfig is a NAT router's behaviour, made of independent knobs. Start
// from a preset and change what you need:
//
//	cfg := netsim.HomeRouter
//	cfg.Hairpinning = false
//
// Zero durations take the defaults of RFC 4787 and RFC 5382 (UDP 2 min, TCP
// established 2 h 4 min, TCP transitory 4 min); a zero port range means
// 1024-65535.
type NATConfig struct {
	// Name labels the router in traces (e.g. "home-router").
	Name string
	// Mapping is the mapping behaviour; NoTranslation makes a plain router.
	Mapping Behavior
	// Filtering is the inbound filtering behaviour (ignored without
	// translation and by one-to-one NAT).
	Filtering Behavior
	// OneToOne makes a static one-to-one NAT, as a cloud VM's public IP:
	// only the address is rewritten, ports are kept, and every inbound
	// packet reaches the single host behind it (mapping and filtering are
	// endpoint-independent; the router takes at most one host).
	OneToOne bool
	// PortAllocation chooses public ports for new mappings.
	PortAllocation PortAllocation
	// PortMin and PortMax bound the ports allocated (preservation may keep
	// a port outside the range, as Linux does).
	PortMin, PortMax uint16
	// Hairpinning lets a host behind the NAT reach another one (or itself)
	// through the NAT's public address and mapped port.
	Hairpinning bool
	// UnsolicitedSYN is what an inbound SYN that is not admitted gets.
	UnsolicitedSYN SYNPolicy
	// SYNReplyDelay holds the answer to an unsolicited SYN for this long
	// and drops it silently if an outbound SYN for the same pair of
	// endpoints passes in the meantime (RFC 5382 REQ-4 asks for 6 s), which
	// lets a TCP simultaneous open succeed against a NAT that rejects.
	SYNReplyDelay time.Duration
	// UDPTimeout is how long a UDP mapping lives without traffic.
	UDPTimeout time.Duration
	// TCPEstablishedTimeout is how long an idle established TCP session
	// keeps its mapping.
	TCPEstablishedTimeout time.Duration
	// TCPTransitoryTimeout is how long a half-open or closing TCP session
	// keeps its mapping.
	TCPTransitoryTimeout time.Duration
}

// Presets. Each is a value: copy it and change knobs freely.
var (
	// None is a plain router: no translation, no filtering. Hosts behind it
	// keep their (public) addresses.
	None = NATConfig{Name: "none", Mapping: NoTranslation}
	// Public is another name for None.
	Public = None

	// OneToOne is a cloud VM's public IP (AWS EC2 elastic IP, GCP external
	// IP): the host sees its private address, the world its public one, and
	// every port is open.
	OneToOne = NATConfig{Name: "one-to-one", Mapping: EndpointIndependent, Filtering: EndpointIndependent,
		OneToOne: true, Hairpinning: true, UnsolicitedSYN: SYNDrop,
		UDPTimeout: 5 * time.Minute, TCPEstablishedTimeout: 24 * time.Hour, TCPTransitoryTimeout: 4 * time.Minute}

	// LinuxMasquerade is a Linux router with nftables/iptables
	// "masquerade" (measured on kernel 6.x): endpoint-independent mapping
	// by port preservation, conntrack filtering (address and port
	// dependent), no hairpinning by default, and the router's own stack
	// answering an unsolicited SYN with RST. Timeouts are conntrack's
	// defaults (UDP stream 120 s, TCP established 5 days, SYN_SENT 120 s).
	LinuxMasquerade = NATConfig{Name: "linux-masquerade", Mapping: EndpointIndependent,
		Filtering: AddressAndPortDependent, PortAllocation: PortPreserve, Hairpinning: false,
		UnsolicitedSYN: SYNReset, UDPTimeout: 120 * time.Second,
		TCPEstablishedTimeout: 5 * 24 * time.Hour, TCPTransitoryTimeout: 120 * time.Second}

	// HomeRouter is a typical consumer router: endpoint-independent mapping
	// with port preservation, address-and-port-dependent filtering,
	// hairpinning, unsolicited SYNs dropped, RFC timeouts.
	HomeRouter = NATConfig{Name: "home-router", Mapping: EndpointIndependent,
		Filtering: AddressAndPortDependent, PortAllocation: PortPreserve, Hairpinning: true,
		UnsolicitedSYN: SYNDrop}

	// FullCone is endpoint-independent mapping and filtering.
	FullCone = NATConfig{Name: "full-cone", Mapping: EndpointIndependent,
		Filtering: EndpointIndependent, PortAllocation: PortPreserve, Hairpinning: true}

	// RestrictedCone is endpoint-independent mapping, address-dependent filtering.
	RestrictedCone = NATConfig{Name: "restricted-cone", Mapping: EndpointIndependent,
		Filtering: AddressDependent, PortAllocation: PortPreserve, Hairpinning: true}

	// PortRestrictedCone is endpoint-independent mapping,
	// address-and-port-dependent filtering.
	PortRestrictedCone = NATConfig{Name: "port-restricted-cone", Mapping: EndpointIndependent,
		Filtering: AddressAndPortDependent, PortAllocation: PortPreserve, Hairpinning: true}

	// Symmetric is the classic symmetric NAT: a new public port, allocated
	// sequentially, for every destination endpoint, and
	// address-and-port-dependent filtering. TCP simultaneous open between
	// two of them fails; only a relay connects such a pair.
	Symmetric = NATConfig{Name: "symmetric", Mapping: AddressAndPortDependent,
		Filtering: AddressAndPortDependent, PortAllocation: PortSequential}

	// CloudNAT is a cloud NAT gateway (AWS NAT Gateway, GCP Cloud NAT,
	// Azure NAT Gateway): a random public port per destination, inbound
	// only as replies, no hairpinning, and the 350 s idle timeout of AWS.
	CloudNAT = NATConfig{Name: "cloud-nat", Mapping: AddressAndPortDependent,
		Filtering: AddressAndPortDependent, PortAllocation: PortRandom,
		UDPTimeout: 350 * time.Second, TCPEstablishedTimeout: 350 * time.Second,
		TCPTransitoryTimeout: 350 * time.Second}

	// CarrierGrade is a carrier-grade NAT (RFC 6888): endpoint-independent
	// mapping with ports drawn at random from a shared pool,
	// address-and-port-dependent filtering, hairpinning, and short UDP
	// timeouts. Put home routers behind it with AddNAT for NAT444.
	CarrierGrade = NATConfig{Name: "carrier-grade", Mapping: EndpointIndependent,
		Filtering: AddressAndPortDependent, PortAllocation: PortRandom, Hairpinning: true,
		UDPTimeout: 60 * time.Second}
)

// Presets lists the named presets, for table-driven tests.
func Presets() []NATConfig {
	return []NATConfig{None, OneToOne, LinuxMasquerade, HomeRouter, FullCone, RestrictedCone,
		PortRestrictedCone, Symmetric, CloudNAT, CarrierGrade}
}

// translates reports whether the router rewrites addresses.
func (c NATConfig) translates() bool { return c.Mapping != NoTranslation }

// withDefaults fills zero knobs and checks the rest.
func (c NATConfig) withDefaults() (NATConfig, error) {
	if c.Mapping > AddressAndPortDependent {
		return c, fmt.Errorf("netsim: NAT %q: invalid mapping behaviour %v", c.Name, c.Mapping)
	}
	if c.OneToOne {
		c.Mapping, c.Filtering = EndpointIndependent, EndpointIndependent
	}
	if c.translates() && (c.Filtering < EndpointIndependent || c.Filtering > AddressAndPortDependent) {
		return c, fmt.Errorf("netsim: NAT %q: filtering behaviour must be set (EndpointIndependent, AddressDependent or AddressAndPortDependent), got %v", c.Name, c.Filtering)
	}
	if c.PortAllocation > PortRandom {
		return c, fmt.Errorf("netsim: NAT %q: invalid port allocation %v", c.Name, c.PortAllocation)
	}
	if c.UnsolicitedSYN > SYNRejectICMP {
		return c, fmt.Errorf("netsim: NAT %q: invalid SYN policy %v", c.Name, c.UnsolicitedSYN)
	}
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = 1024, 65535
	}
	if c.PortMin == 0 || c.PortMax < c.PortMin {
		return c, fmt.Errorf("netsim: NAT %q: invalid port range %d-%d", c.Name, c.PortMin, c.PortMax)
	}
	if c.SYNReplyDelay < 0 || c.UDPTimeout < 0 || c.TCPEstablishedTimeout < 0 || c.TCPTransitoryTimeout < 0 {
		return c, fmt.Errorf("netsim: NAT %q: negative timeout", c.Name)
	}
	if c.UDPTimeout == 0 {
		c.UDPTimeout = 2 * time.Minute
	}
	if c.TCPEstablishedTimeout == 0 {
		c.TCPEstablishedTimeout = 2*time.Hour + 4*time.Minute
	}
	if c.TCPTransitoryTimeout == 0 {
		c.TCPTransitoryTimeout = 4 * time.Minute
	}
	if c.Name == "" {
		c.Name = "nat"
	}
	return c, nil
}
