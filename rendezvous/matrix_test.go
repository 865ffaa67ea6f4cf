package rendezvous

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fnmesh/fnmesh/netsim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tier oracle: what a pair of hosts can get from their NATs' behaviour,
// computed from the NAT knobs (RFC 4787/5382 terms), independently of the
// code under test.
//
// A chain is the routers between a host and the internet, innermost first.

func translates(c netsim.NATConfig) bool { return c.Mapping != netsim.NoTranslation }

// eimRouter: the router maps an internal endpoint to one public endpoint
// whatever the destination (or does not translate at all).
func eimRouter(c netsim.NATConfig) bool {
	return !translates(c) || c.OneToOne || c.Mapping == netsim.EndpointIndependent
}

func eimChain(chain []netsim.NATConfig) bool {
	for _, c := range chain {
		if !eimRouter(c) {
			return false
		}
	}
	return true
}

func anyTranslation(chain []netsim.NATConfig) bool {
	for _, c := range chain {
		if translates(c) {
			return true
		}
	}
	return false
}

// admits reports whether a SYN from the peer reaches the host behind chain
// at the public endpoint the rendezvous server observed (its mapping toward
// the server), after the host has sent its own SYN toward the peer's
// observed endpoint. srcEIM says whether the peer's SYN comes from that
// observed endpoint (the peer's whole chain maps endpoint-independently).
func admits(chain []netsim.NATConfig, srcEIM bool) bool {
	for k, c := range chain {
		if !translates(c) {
			continue
		}
		filtering := c.Filtering
		if c.OneToOne {
			filtering = netsim.EndpointIndependent
		}
		// The host's own SYN to the peer used the same mapping on this
		// router as its connection to the server only if every router up
		// to here maps endpoint-independently.
		sameMapping := eimChain(chain[:k+1])
		switch filtering {
		case netsim.EndpointIndependent:
		case netsim.AddressDependent:
			if !sameMapping {
				return false
			}
		default: // address and port dependent
			if !sameMapping || !srcEIM {
				return false
			}
		}
	}
	return true
}

// expectTier is the tier a pair must get: a and b are the hosts' own
// chains; shared are routers both sit behind (outermost last), reached by
// hairpinning; sameLAN means both are on the LAN of one router.
func expectTier(a, b, shared []netsim.NATConfig, sameLAN bool) Tier {
	if sameLAN {
		return TierDirect
	}
	fa, fb := append(append([]netsim.NATConfig(nil), a...), shared...), append(append([]netsim.NATConfig(nil), b...), shared...)
	if len(shared) == 0 && (!anyTranslation(fa) || !anyTranslation(fb)) {
		return TierDirect // one side is on the internet with its own address
	}
	if len(shared) > 0 && !shared[0].Hairpinning {
		return TierRelay
	}
	aEIM, bEIM := eimChain(fa), eimChain(fb)
	switch {
	case aEIM && bEIM: // simultaneous open on one 4-tuple
		return TierPunched
	case admits(fb, aEIM) || admits(fa, bEIM): // one side's SYN reaches the other's listener
		return TierPunched
	}
	return TierRelay
}

// matrixCase is one pair of hosts in the matrix.
type matrixCase struct {
	name string
	// build adds the two hosts to in and returns them with the oracle's tier.
	build func(in *netsim.Internet) (a, b *netsim.Host, want Tier)
}

var (
	wanLink = netsim.Link{Latency: 10 * time.Millisecond, Jitter: time.Millisecond}
	lanLink = netsim.Link{Latency: 500 * time.Microsecond}
)

// hostBehind adds a host behind a new router with cfg at routerAddr; a plain
// router's host gets public address pub, a NAT's host private address priv.
func hostBehind(in *netsim.Internet, routerAddr string, cfg netsim.NATConfig, pub, priv string) *netsim.Host {
	r := must(in.AddNAT(netip.MustParseAddr(routerAddr), cfg, netsim.WithLink(wanLink)))
	addr := priv
	if !translates(cfg) {
		addr = pub
	}
	return must(r.AddHost(netip.MustParseAddr(addr), netsim.WithLink(lanLink)))
}

func matrixCases() []matrixCase {
	presets := netsim.Presets()
	var cases []matrixCase
	for i, a := range presets {
		for _, b := range presets[i:] {
			cases = append(cases, matrixCase{
				name: a.Name + "/" + b.Name,
				build: func(in *netsim.Internet) (*netsim.Host, *netsim.Host, Tier) {
					ha := hostBehind(in, "198.51.100.1", a, "203.0.113.21", "198.18.0.2")
					hb := hostBehind(in, "198.51.100.2", b, "203.0.113.22", "198.18.0.2")
					return ha, hb, expectTier([]netsim.NATConfig{a}, []netsim.NATConfig{b}, nil, false)
				},
			})
		}
	}
	for _, c := range presets {
		if c.OneToOne {
			continue // a one-to-one NAT has a single host
		}
		cases = append(cases, matrixCase{
			name: "same router/" + c.Name,
			build: func(in *netsim.Internet) (*netsim.Host, *netsim.Host, Tier) {
				r := must(in.AddNAT(netip.MustParseAddr("198.51.100.1"), c, netsim.WithLink(wanLink)))
				priv := [2]string{"198.18.0.2", "198.18.0.3"}
				if !translates(c) {
					priv = [2]string{"203.0.113.21", "203.0.113.22"}
				}
				ha := must(r.AddHost(netip.MustParseAddr(priv[0]), netsim.WithLink(lanLink)))
				hb := must(r.AddHost(netip.MustParseAddr(priv[1]), netsim.WithLink(lanLink)))
				return ha, hb, expectTier(nil, nil, nil, true)
			},
		})
	}
	// Carrier-grade NAT with home routers behind it (NAT444).
	nested := func(name string, inner netsim.NATConfig, other func(in *netsim.Internet, cgn *netsim.NAT) (*netsim.Host, []netsim.NATConfig, []netsim.NATConfig)) matrixCase {
		return matrixCase{
			name: "nested CGN/" + name,
			build: func(in *netsim.Internet) (*netsim.Host, *netsim.Host, Tier) {
				cgn := must(in.AddNAT(netip.MustParseAddr("198.51.100.1"), netsim.CarrierGrade, netsim.WithLink(wanLink)))
				home := must(cgn.AddNAT(netip.MustParseAddr("100.64.0.2"), inner, netsim.WithLink(lanLink)))
				ha := must(home.AddHost(netip.MustParseAddr("198.18.0.2"), netsim.WithLink(lanLink)))
				hb, chainB, shared := other(in, cgn)
				chainA := []netsim.NATConfig{inner}
				if shared == nil {
					chainA = append(chainA, netsim.CarrierGrade)
				}
				return ha, hb, expectTier(chainA, chainB, shared, false)
			},
		}
	}
	sibling := func(cfg netsim.NATConfig) func(*netsim.Internet, *netsim.NAT) (*netsim.Host, []netsim.NATConfig, []netsim.NATConfig) {
		return func(in *netsim.Internet, cgn *netsim.NAT) (*netsim.Host, []netsim.NATConfig, []netsim.NATConfig) {
			home := must(cgn.AddNAT(netip.MustParseAddr("100.64.0.3"), cfg, netsim.WithLink(lanLink)))
			h := must(home.AddHost(netip.MustParseAddr("198.18.0.2"), netsim.WithLink(lanLink)))
			return h, []netsim.NATConfig{cfg}, []netsim.NATConfig{netsim.CarrierGrade}
		}
	}
	elsewhere := func(cfg netsim.NATConfig) func(*netsim.Internet, *netsim.NAT) (*netsim.Host, []netsim.NATConfig, []netsim.NATConfig) {
		return func(in *netsim.Internet, cgn *netsim.NAT) (*netsim.Host, []netsim.NATConfig, []netsim.NATConfig) {
			return hostBehind(in, "198.51.100.2", cfg, "203.0.113.22", "198.18.0.9"), []netsim.NATConfig{cfg}, nil
		}
	}
	cases = append(cases,
		nested("home routers behind one CGN", netsim.HomeRouter, sibling(netsim.HomeRouter)),
		nested("home router and symmetric behind one CGN", netsim.HomeRouter, sibling(netsim.Symmetric)),
		nested("home router and linux-masquerade elsewhere", netsim.HomeRouter, elsewhere(netsim.LinuxMasquerade)),
		nested("home router and symmetric elsewhere", netsim.HomeRouter, elsewhere(netsim.Symmetric)),
		nested("symmetric and full-cone elsewhere", netsim.Symmetric, elsewhere(netsim.FullCone)),
		nested("home router and public host", netsim.HomeRouter, elsewhere(netsim.Public)),
	)
	return cases
}

// TestTierMatrix joins two hosts for every pair of NAT presets (each
// behind its own router), for both hosts behind one router, and for nested
// carrier-grade NAT, and checks that the pair takes the tier the NATs'
// behaviour allows and that its link carries bytes both ways intact.
func TestTierMatrix(t *testing.T) {
	for _, tc := range matrixCases() {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				in := netsim.New(netsim.WithSeed(7))
				defer in.Close()
				srv := startSimServer(t, in, wanLink)
				defer srv.stop(t)
				ha, hb, want := tc.build(in)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				hosts := []*netsim.Host{ha, hb}
				meshes, err := joinAll(ctx, t, srv.addr, "matrix", 2, func(i int) []Option {
					return []Option{WithNetwork(hosts[i]), WithRank(i)}
				})
				require.NoError(t, err)
				defer closeMeshes(meshes)
				tiers := verifyMeshes(t, meshes, 64<<10)
				assert.Equal(t, want, tiers[[2]int{0, 1}], "tier of %s", tc.name)
				m := srv.Metrics()
				assert.Equal(t, int64(1), m.Pairs[want], "server's count of %v pairs", want)
			})
		})
	}
}

func TestExpectTierOracle(t *testing.T) {
	n := func(c ...netsim.NATConfig) []netsim.NATConfig { return c }
	tests := []struct {
		a, b, shared []netsim.NATConfig
		lan          bool
		want         Tier
	}{
		{n(netsim.Public), n(netsim.Symmetric), nil, false, TierDirect},
		{n(netsim.LinuxMasquerade), n(netsim.HomeRouter), nil, false, TierPunched},
		{n(netsim.Symmetric), n(netsim.Symmetric), nil, false, TierRelay},
		{n(netsim.Symmetric), n(netsim.PortRestrictedCone), nil, false, TierRelay},
		{n(netsim.Symmetric), n(netsim.RestrictedCone), nil, false, TierPunched},
		{n(netsim.CloudNAT), n(netsim.FullCone), nil, false, TierPunched},
		{n(netsim.CloudNAT), n(netsim.OneToOne), nil, false, TierPunched},
		{n(netsim.Symmetric, netsim.CarrierGrade), n(netsim.FullCone), nil, false, TierPunched},
		{n(netsim.HomeRouter), n(netsim.HomeRouter), n(netsim.CarrierGrade), false, TierPunched},
		{n(netsim.HomeRouter), n(netsim.HomeRouter), n(netsim.CloudNAT), false, TierRelay}, // no hairpinning
		{n(netsim.Symmetric), n(netsim.Symmetric), nil, true, TierDirect},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%v/%v/%v/%v", names(tt.a), names(tt.b), names(tt.shared), tt.lan)
		assert.Equal(t, tt.want, expectTier(tt.a, tt.b, tt.shared, tt.lan), name)
	}
}

func names(cs []netsim.NATConfig) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}
