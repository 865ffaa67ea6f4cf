package rendezvous

import "fmt"

// Tier is how a link between two ranks was made. The values are part of the
// wire format.
type Tier int

const (
	// TierDirect: no NAT traversal was needed: one side is reachable at a
	// public address that is its own, or both sides share a network and
	// connected through a private endpoint.
	TierDirect Tier = 1
	// TierPunched: TCP simultaneous open through one or two NATs.
	TierPunched Tier = 2
	// TierRelay: spliced through the rendezvous server, because the pair's
	// NATs did not let a punch through before the deadline.
	TierRelay Tier = 3
)

func (t Tier) String() string {
	switch t {
	case TierDirect:
		return "direct"
	case TierPunched:
		return "punched"
	case TierRelay:
		return "relay"
	}
	return fmt.Sprintf("tier(%d)", int(t))
}

// MarshalText makes a Tier print as its name in JSON and logs.
func (t Tier) MarshalText() ([]byte, error) { return []byte(t.String()), nil }
