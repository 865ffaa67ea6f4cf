package rendezvous_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/fnmesh/fnmesh/netsim"
	"github.com/fnmesh/fnmesh/rendezvous"
)

// Three workers on this machine join one job through a server on loopback.
// Every pair gets a link; on one host no NAT is in the way, so the links are
// direct.
func ExampleJoin() {
	secret := []byte("an example secret of 32 bytes...")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go rendezvous.NewServer(secret).Serve(ctx, ln, nil)

	const world = 3
	var wg sync.WaitGroup
	meshes := make([]*rendezvous.Mesh, world)
	for i := 0; i < world; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := rendezvous.Join(ctx, ln.Addr().String(), "example", world, secret, rendezvous.WithRank(i))
			if err != nil {
				log.Fatal(err)
			}
			meshes[i] = m
		}()
	}
	wg.Wait()
	for _, m := range meshes {
		defer m.Close()
	}

	// Rank 0 greets rank 2 over their link.
	go io.WriteString(meshes[0].Links[2], "hello from rank 0")
	buf := make([]byte, 17)
	io.ReadFull(meshes[2].Links[0], buf)
	fmt.Printf("rank 2 got %q over a %v link\n", buf, meshes[2].Links[0].Tier)
	// Output:
	// rank 2 got "hello from rank 0" over a direct link
}

// Reading a mesh: Links is indexed by peer rank, with nil at the mesh's own
// rank; each Link is a net.Conn that says which peer it reaches and how the
// link was made (Tier). Conns gives the same links as plain connections, the
// form collective.New takes; Close closes them all.
func ExampleMesh() {
	secret := []byte("an example secret of 32 bytes...")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go rendezvous.NewServer(secret).Serve(ctx, ln, nil)

	const world = 3
	meshes := make([]*rendezvous.Mesh, world)
	errs := make([]error, world)
	var wg sync.WaitGroup
	for i := range world {
		wg.Go(func() {
			meshes[i], errs[i] = rendezvous.Join(ctx, ln.Addr().String(), "mesh-example", world, secret,
				rendezvous.WithRank(i))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			log.Fatal(err)
		}
	}
	defer func() {
		for _, m := range meshes {
			m.Close()
		}
	}()

	m := meshes[1]
	fmt.Printf("rank %d of %d\n", m.Rank, m.World)
	for peer, l := range m.Links {
		if l == nil {
			fmt.Printf("  rank %d: none (this rank)\n", peer)
			continue
		}
		fmt.Printf("  rank %d: %v link to peer %d, ready within the setup: %v\n", peer, l.Tier, l.Peer, l.Setup <= m.Setup)
	}
	fmt.Println("connections:", len(m.Conns()))
	// Output:
	// rank 1 of 3
	//   rank 0: direct link to peer 0, ready within the setup: true
	//   rank 1: none (this rank)
	//   rank 2: direct link to peer 2, ready within the setup: true
	// connections: 3
}

// Workers behind emulated NATs (netsim, in real time): two home routers
// punch; a symmetric NAT cannot be punched through from a port-restricted
// one, so its pairs are relayed once the punch deadline passes.
func ExampleJoin_nat() {
	secret := []byte("an example secret of 32 bytes...")
	in := netsim.New(netsim.WithSeed(1))
	defer in.Close()
	link := netsim.WithLink(netsim.Link{Latency: 2 * time.Millisecond})
	server, _ := in.AddHost(netip.MustParseAddr("203.0.113.10"), link)
	ln, _ := server.ListenTCP(context.Background(), netip.MustParseAddrPort("203.0.113.10:7000"))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go rendezvous.NewServer(secret).Serve(ctx, ln, nil)

	var workers []*netsim.Host
	for i, cfg := range []netsim.NATConfig{netsim.HomeRouter, netsim.HomeRouter, netsim.Symmetric} {
		nat, _ := in.AddNAT(netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)}), cfg, link)
		h, _ := nat.AddHost(netip.MustParseAddr("198.18.0.2"))
		workers = append(workers, h)
	}
	var wg sync.WaitGroup
	meshes := make([]*rendezvous.Mesh, len(workers))
	for i, h := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := rendezvous.Join(ctx, "203.0.113.10:7000", "nat-example", len(workers), secret,
				rendezvous.WithNetwork(h), rendezvous.WithRank(i), rendezvous.WithPunchTimeout(time.Second))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			meshes[i] = m
		}()
	}
	wg.Wait()
	var lines []string
	for _, m := range meshes {
		defer m.Close()
		for _, l := range m.Links {
			if l != nil && m.Rank < l.Peer {
				lines = append(lines, fmt.Sprintf("ranks %d-%d: %v", m.Rank, l.Peer, l.Tier))
			}
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// ranks 0-1: punched
	// ranks 0-2: relay
	// ranks 1-2: relay
}

// A server on a TCP port and the same UDP port (for STUN), with its metrics
// on a second port, as cmd/rendezvous runs it.
func ExampleServer_Serve() {
	secret := []byte("an example secret of 32 bytes...")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	srv := rendezvous.NewServer(secret, rendezvous.WithJobTimeout(time.Minute),
		rendezvous.WithDefaultPunchTimeout(2*time.Second))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx, ln, pc) }()
	// http.ListenAndServe("127.0.0.1:9100", srv.Handler()) would serve /healthz and /metrics.

	stop() // SIGTERM, say: waiting members are told, relays drain
	fmt.Println("serve returned:", <-done)
	fmt.Println("jobs:", srv.Metrics().Jobs)
	// Output:
	// serve returned: <nil>
	// jobs: 0
}

// CheckAddr checks a server address as a command checks its flags, before
// anything is resolved or dialed.
func ExampleCheckAddr() {
	for _, addr := range []string{"rv.example.com:7000", "rv.example.com", "127.0.0.1:0"} {
		fmt.Printf("%s: %v\n", addr, rendezvous.CheckAddr(addr))
	}
	// Output:
	// rv.example.com:7000: <nil>
	// rv.example.com: want HOST:PORT (address rv.example.com: missing port in address)
	// 127.0.0.1:0: port "0" is not 1..65535
}
