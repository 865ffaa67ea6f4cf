//go:build linux

package nslab

import "fmt"

// NAT is the behaviour of a lab router, set by its nftables ruleset.
type NAT int

const (
	// MasqueradeRST is plain nftables masquerade, as a default Linux router
	// does it: endpoint-independent mapping that keeps the source port when it
	// can, and an unsolicited inbound SYN answered with RST by the router's own
	// stack (which destroys a half-open conntrack entry, so a simultaneous
	// open needs retries from the same port).
	MasqueradeRST NAT = iota
	// MasqueradeDrop is masquerade plus an input rule that silently drops
	// unsolicited inbound SYNs, as many home routers do: a simultaneous open
	// succeeds on the kernel's own SYN retransmissions.
	MasqueradeDrop
	// MasqueradeRandom is "masquerade fully-random": a new random public port
	// per destination, a symmetric NAT. Such a host cannot be hole-punched.
	MasqueradeRandom
)

// String returns a short name for the behaviour.
func (n NAT) String() string {
	switch n {
	case MasqueradeRST:
		return "masquerade"
	case MasqueradeDrop:
		return "masquerade+drop-syn"
	case MasqueradeRandom:
		return "masquerade-fully-random"
	}
	return fmt.Sprintf("NAT(%d)", int(n))
}

// ruleset returns the nftables ruleset a router with this behaviour loads.
// wan is the name of the router's internet-facing interface.
func (n NAT) ruleset(wan string) (string, error) {
	masq := "masquerade"
	input := ""
	switch n {
	case MasqueradeRST:
	case MasqueradeDrop:
		input = fmt.Sprintf(`
	chain input {
		type filter hook input priority filter; policy accept;
		iifname %q tcp flags & (syn | ack) == syn ct state new drop
	}`, wan)
	case MasqueradeRandom:
		masq = "masquerade fully-random"
	default:
		return "", fmt.Errorf("nslab: unknown NAT behaviour %d", int(n))
	}
	return fmt.Sprintf(`table ip fnlab {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname %q %s
	}%s
}
`, wan, masq, input), nil
}
