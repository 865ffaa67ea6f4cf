package rendezvous

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fnmesh/fnmesh/netsim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// meshLink is the internet link of every router and of the server in the
// big-mesh tests: 20 ms one way per attachment, so 40 ms one way between a
// worker's router and the server or another worker's router.
var meshLink = netsim.Link{Latency: 20 * time.Millisecond, Jitter: 2 * time.Millisecond}

// meshWorld builds world workers behind mixed NAT presets: most behind a
// router of their own (cycling through every preset), the last eight in
// pairs sharing a router. It returns the hosts and, for every pair, the tier
// the NAT-behaviour oracle expects.
func meshWorld(in *netsim.Internet, world int) ([]*netsim.Host, map[[2]int]Tier) {
	presets := netsim.Presets()
	shared := []netsim.NATConfig{netsim.HomeRouter, netsim.Symmetric, netsim.LinuxMasquerade, netsim.CarrierGrade}
	hosts := make([]*netsim.Host, world)
	chains := make([]netsim.NATConfig, world)
	lan := make([]int, world) // index of the shared router, or -1
	own := world - 8
	if own < 0 {
		own = world
	}
	for i := 0; i < own; i++ {
		cfg := presets[i%len(presets)]
		router := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)})
		r := must(in.AddNAT(router, cfg, netsim.WithLink(meshLink)))
		addr := netip.MustParseAddr("198.18.0.2")
		if !translates(cfg) {
			addr = netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i)})
		}
		hosts[i] = must(r.AddHost(addr, netsim.WithLink(lanLink)))
		chains[i], lan[i] = cfg, -1
	}
	for i := own; i < world; i += 2 {
		k := (i - own) / 2
		cfg := shared[k%len(shared)]
		r := must(in.AddNAT(netip.AddrFrom4([4]byte{198, 51, 100, byte(200 + k)}), cfg, netsim.WithLink(meshLink)))
		for j := 0; j < 2 && i+j < world; j++ {
			hosts[i+j] = must(r.AddHost(netip.AddrFrom4([4]byte{198, 18, 0, byte(2 + j)}), netsim.WithLink(lanLink)))
			chains[i+j], lan[i+j] = cfg, k
		}
	}
	want := map[[2]int]Tier{}
	for a := 0; a < world; a++ {
		for b := a + 1; b < world; b++ {
			want[[2]int{a, b}] = expectTier([]netsim.NATConfig{chains[a]}, []netsim.NATConfig{chains[b]}, nil,
				lan[a] >= 0 && lan[a] == lan[b])
		}
	}
	return hosts, want
}

// meshSetup joins world workers over netsim inside the current bubble,
// verifies every link and returns the virtual time from the first join to
// the last mesh.
func meshSetup(t *testing.T, world int, punchTimeout time.Duration, payloadSize int) time.Duration {
	in := netsim.New(netsim.WithSeed(64))
	defer in.Close()
	srv := startSimServer(t, in, meshLink)
	defer srv.stop(t)
	hosts, want := meshWorld(in, world)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	meshes, err := joinAll(ctx, t, srv.addr, "mesh", world, func(i int) []Option {
		return []Option{WithNetwork(hosts[i]), WithRank(i), WithPunchTimeout(punchTimeout)}
	})
	setup := time.Since(began)
	require.NoError(t, err)
	defer closeMeshes(meshes)
	tiers := verifyMeshes(t, meshes, payloadSize)
	require.Len(t, tiers, world*(world-1)/2)
	count := map[Tier]int{}
	for pair, tier := range tiers {
		count[tier]++
		assert.Equal(t, want[pair], tier, "tier of pair %v", pair)
	}
	m := srv.Metrics()
	assert.Equal(t, int64(world*(world-1)/2), m.PunchAttempts)
	assert.Equal(t, int64(count[TierRelay]), m.RelaysTotal)
	t.Logf("%d ranks, %d links verified (direct %d, punched %d, relay %d): mesh setup %v virtual",
		world, len(tiers), count[TierDirect], count[TierPunched], count[TierRelay], setup)
	return setup
}

// TestMesh64 is the full-size job: 64 workers behind mixed NATs with 20 ms
// links, every one of the 2016 links verified both ways.
func TestMesh64(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		meshSetup(t, 64, time.Second, 4<<10)
	})
}

// TestMeshSetupWorker is run by BenchmarkMeshSetup in a child process (a
// benchmark cannot open a synctest bubble): it sets up one mesh of
// $FNMESH_MESH_WORLD ranks and prints its virtual setup time.
func TestMeshSetupWorker(t *testing.T) {
	world, err := strconv.Atoi(os.Getenv("FNMESH_MESH_WORLD"))
	if err != nil {
		t.Skip("helper of BenchmarkMeshSetup; runs only with FNMESH_MESH_WORLD set")
	}
	synctest.Test(t, func(t *testing.T) {
		setup := meshSetup(t, world, time.Second, 1<<10)
		fmt.Printf("virtual-setup-seconds %.6f\n", setup.Seconds())
	})
}
