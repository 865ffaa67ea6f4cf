package rendezvous

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fnmesh/fnmesh/netsim"
	"github.com/stretchr/testify/require"
)

func TestSimSmoke(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := netsim.New(netsim.WithSeed(1))
		defer in.Close()
		link := netsim.Link{Latency: 10 * time.Millisecond}
		srv := startSimServer(t, in, link)
		defer srv.stop(t)
		nats := []netsim.NATConfig{netsim.LinuxMasquerade, netsim.HomeRouter, netsim.Symmetric}
		var hosts []*netsim.Host
		for i, cfg := range nats {
			nat := must(in.AddNAT(netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)}), cfg, netsim.WithLink(link)))
			hosts = append(hosts, must(nat.AddHost(netip.MustParseAddr("198.18.0.2"))))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		began := time.Now()
		meshes, err := joinAll(ctx, t, srv.addr, "smoke", len(hosts), func(i int) []Option {
			return []Option{WithNetwork(hosts[i]), WithRank(i)}
		})
		require.NoError(t, err)
		fmt.Println("setup", time.Since(began))
		defer closeMeshes(meshes)
		tiers := verifyMeshes(t, meshes, 100<<10)
		fmt.Println(tiers)
	})
}
