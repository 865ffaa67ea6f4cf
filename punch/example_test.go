package punch_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/fnmesh/fnmesh/netsim"
	"github.com/fnmesh/fnmesh/punch"
	"github.com/pion/stun/v4"
)

var secret = []byte("a job secret of at least 32 bytes")

// Two ranks of a job authenticate a link. Here the link is an in-memory
// pipe; in fnmesh it is a punched or relayed TCP connection.
func ExampleHandshake() {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	errc := make(chan error, 1)
	go func() { errc <- punch.Handshake(ctx, b, punch.Identity{Secret: secret, Job: "job-42", Rank: 1}, 0) }()
	err := punch.Handshake(ctx, a, punch.Identity{Secret: secret, Job: "job-42", Rank: 0}, 1)
	fmt.Println("rank 0:", err)
	fmt.Println("rank 1:", <-errc)

	// A process of another job is turned away.
	c, d := net.Pipe()
	defer c.Close()
	defer d.Close()
	go func() {
		errc <- punch.Handshake(ctx, d, punch.Identity{Secret: secret, Job: "job-43", Rank: 1}, 0)
		d.Close()
	}()
	err = punch.Handshake(ctx, c, punch.Identity{Secret: secret, Job: "job-42", Rank: 0}, 1)
	fmt.Println("stranger:", err)
	<-errc
	// Output:
	// rank 0: <nil>
	// rank 1: <nil>
	// stranger: handshake with rank 1: peer belongs to another job
}

// Two ranks punch a link to each other from their ports, at the same
// moment, each given the other's endpoint (on loopback here; through NATs
// the endpoints come from STUN and the rendezvous server).
func ExamplePort_Punch() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	laddr := netip.MustParseAddrPort("127.0.0.1:0")
	p0, err := punch.Listen(ctx, punch.OS(), laddr, punch.Identity{Secret: secret, Job: "job-42", Rank: 0})
	if err != nil {
		log.Fatal(err)
	}
	defer p0.Close()
	p1, err := punch.Listen(ctx, punch.OS(), laddr, punch.Identity{Secret: secret, Job: "job-42", Rank: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer p1.Close()

	go func() {
		link, err := p1.Punch(ctx, punch.Peer{Rank: 0, Endpoints: []netip.AddrPort{p0.Addr()}})
		if err != nil {
			log.Fatal(err)
		}
		defer link.Close()
		link.Write([]byte("hello from rank 1"))
	}()
	link, err := p0.Punch(ctx, punch.Peer{Rank: 1, Endpoints: []netip.AddrPort{p1.Addr()}})
	if err != nil {
		log.Fatal(err)
	}
	defer link.Close()
	msg, _ := io.ReadAll(link)
	fmt.Println(string(msg))
	fmt.Println("from the port itself:", link.LocalAddr().String() == p0.Addr().String())
	// Output:
	// hello from rank 1
	// from the port itself: true
}

// The same code on the emulated internet: two hosts behind Linux NAT
// routers, which answer early SYNs with RST, learn their public endpoints
// with STUN over TCP from their punch ports and punch through both NATs.
func ExamplePort_Punch_netsim() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inet := netsim.New(netsim.WithSeed(1))
	defer inet.Close()
	link := netsim.WithLink(netsim.Link{Latency: 5 * time.Millisecond})
	server, _ := inet.AddHost(netip.MustParseAddr("203.0.113.10"), link)
	natA, _ := inet.AddNAT(netip.MustParseAddr("198.51.100.1"), netsim.LinuxMasquerade, link)
	natB, _ := inet.AddNAT(netip.MustParseAddr("198.51.100.2"), netsim.LinuxMasquerade, link)
	hostA, _ := natA.AddHost(netip.MustParseAddr("198.18.0.2"))
	hostB, _ := natB.AddHost(netip.MustParseAddr("198.18.1.2"))

	// A STUN server on the public host.
	stunAt := netip.MustParseAddrPort("203.0.113.10:3478")
	ln, _ := server.ListenTCP(ctx, stunAt)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); punch.ServeSTUNConn(ctx, c) }()
		}
	}()

	open := func(h *netsim.Host, rank int) (*punch.Port, netip.AddrPort) {
		p, err := punch.Listen(ctx, h, netip.AddrPortFrom(h.Addr(), 40000), punch.Identity{Secret: secret, Job: "job-42", Rank: rank})
		if err != nil {
			log.Fatal(err)
		}
		public, err := punch.DiscoverTCP(ctx, p, stunAt)
		if err != nil {
			log.Fatal(err)
		}
		return p, public
	}
	pa, publicA := open(hostA, 0)
	defer pa.Close()
	pb, publicB := open(hostB, 1)
	defer pb.Close()
	fmt.Println("rank 0 is seen at", publicA)
	fmt.Println("rank 1 is seen at", publicB)

	done := make(chan error, 1)
	go func() {
		c, err := pb.Punch(ctx, punch.Peer{Rank: 0, Endpoints: []netip.AddrPort{publicA}})
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	c, err := pa.Punch(ctx, punch.Peer{Rank: 1, Endpoints: []netip.AddrPort{publicB}})
	if err != nil {
		log.Fatal(err)
	}
	c.Close()
	fmt.Println("punched:", <-done == nil)
	// Output:
	// rank 0 is seen at 198.51.100.1:40000
	// rank 1 is seen at 198.51.100.2:40000
	// punched: true
}

// A Punch that cannot make a link says what happened at each endpoint.
func ExamplePunchError() {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	p, err := punch.Listen(ctx, punch.OS(), netip.MustParseAddrPort("127.0.0.1:0"), punch.Identity{Secret: secret, Job: "job-42", Rank: 0})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	closed := netip.MustParseAddrPort("127.0.0.1:9") // discard port: nothing listens on loopback
	_, err = p.Punch(ctx, punch.Peer{Rank: 1, Endpoints: []netip.AddrPort{closed}})
	if pe, ok := err.(*punch.PunchError); ok {
		fmt.Println("peer:", pe.Rank)
		fmt.Println("reason:", pe.Err)
		fmt.Println(pe.Endpoints[0].Endpoint, "retried:", pe.Endpoints[0].Attempts > 1)
		fmt.Println(pe.Endpoints[0].Err)
	}
	// Output:
	// peer: 1
	// reason: context deadline exceeded
	// 127.0.0.1:9 retried: true
	// connect: connection refused
}

// A STUN server answers a Binding request with the address it came from.
func ExampleSTUNResponse() {
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	resp, err := punch.STUNResponse(req.Raw, netip.MustParseAddrPort("198.51.100.7:40000"))
	if err != nil {
		log.Fatal(err)
	}
	var m stun.Message
	var xor stun.XORMappedAddress
	if err := stun.Decode(resp, &m); err != nil {
		log.Fatal(err)
	}
	if err := xor.GetFrom(&m); err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Type, xor)
	// Output: Binding success response 198.51.100.7:40000
}

// Discover the reflexive endpoint of a UDP port with STUN (against a STUN
// server on loopback here).
func ExampleDiscoverUDP() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()
	go punch.ServeSTUNPacket(ctx, pc)
	server := pc.LocalAddr().(*net.UDPAddr).AddrPort()

	local := netip.MustParseAddrPort("127.0.0.1:0")
	public, err := punch.DiscoverUDP(ctx, punch.OS(), local, server)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(public.Addr(), public.Port() != 0)
	// Output: 127.0.0.1 true
}

// The token a worker shows the rendezvous server is derived from the job's
// secret, per job.
func ExampleJoinToken() {
	t1, _ := punch.JoinToken(secret, "job-42")
	t2, _ := punch.JoinToken(secret, "job-43")
	fmt.Println(len(t1), string(t1) != string(t2))
	// Output: 32 true
}
