//go:build linux

package nslab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// Topology is the standard lab of fnmesh's tests: a public rendezvous host
// and one NAT router of each behaviour, with workers behind each.
type Topology struct {
	Lab *Lab
	// Server is the public host for the rendezvous server, at 203.0.113.10.
	Server *Host
	// Routers are, in this order, a MasqueradeRST router (WAN 198.51.100.11,
	// LAN 198.18.1.0/24), a MasqueradeDrop router (198.51.100.12,
	// 198.18.2.0/24) and a MasqueradeRandom router (198.51.100.13,
	// 198.18.3.0/24).
	Routers []*Router
	// Workers are the hosts behind the routers, router by router: names
	// "rst1", "rst2", ..., "drop1", ..., "sym1", ...
	Workers []*Host
}

// standardRouters lists the routers of the standard topology.
var standardRouters = []struct {
	name string
	nat  NAT
	wan  netip.Addr
	lan  netip.Prefix
}{
	{"rst", MasqueradeRST, netip.MustParseAddr("198.51.100.11"), netip.MustParsePrefix("198.18.1.0/24")},
	{"drop", MasqueradeDrop, netip.MustParseAddr("198.51.100.12"), netip.MustParsePrefix("198.18.2.0/24")},
	{"sym", MasqueradeRandom, netip.MustParseAddr("198.51.100.13"), netip.MustParsePrefix("198.18.3.0/24")},
}

// StandardServerAddr is the address of the standard topology's server.
var StandardServerAddr = netip.MustParseAddr("203.0.113.10")

// BuildStandard builds the standard topology with workersPerRouter workers
// behind each router. On error nothing is left behind; otherwise the caller
// closes t.Lab.
func BuildStandard(ctx context.Context, workersPerRouter int, opts ...Option) (_ *Topology, err error) {
	if workersPerRouter < 1 || workersPerRouter > 200 {
		return nil, fmt.Errorf("nslab: %d workers per router: want 1 to 200", workersPerRouter)
	}
	lab, err := New(ctx, opts...)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, lab.Close())
		}
	}()
	t := &Topology{Lab: lab}
	if t.Server, err = lab.AddHost(ctx, "rdv", StandardServerAddr); err != nil {
		return nil, err
	}
	for _, sr := range standardRouters {
		r, err := lab.AddRouter(ctx, sr.name, sr.nat, sr.wan, sr.lan)
		if err != nil {
			return nil, err
		}
		t.Routers = append(t.Routers, r)
		for i := 1; i <= workersPerRouter; i++ {
			w, err := r.AddHost(ctx, fmt.Sprintf("%s%d", sr.name, i))
			if err != nil {
				return nil, err
			}
			t.Workers = append(t.Workers, w)
		}
	}
	return t, nil
}

// Diagnostics returns every router's ruleset and conntrack table, for a
// failing test's log.
func (t *Topology) Diagnostics(ctx context.Context) string {
	var s string
	for _, r := range t.Routers {
		s += fmt.Sprintf("== router %s (%s, WAN %s, LAN %s)\n-- ruleset\n%s-- conntrack\n%s",
			r.Name(), r.NAT(), r.Addr(), r.LAN(), r.Ruleset(ctx), r.Conntrack(ctx))
	}
	return s
}
