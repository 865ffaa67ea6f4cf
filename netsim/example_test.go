package netsim_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/fnmesh/fnmesh/netsim"
)

// Build a small internet: a public server and a host behind a Linux
// masquerade NAT, then dial through the NAT and see the translated address
// from the server's side.
func Example() {
	ctx := context.Background()
	inet := netsim.New(netsim.WithSeed(1))
	defer inet.Close()

	server, _ := inet.AddHost(netip.MustParseAddr("203.0.113.10"))
	nat, _ := inet.AddNAT(netip.MustParseAddr("198.51.100.1"), netsim.LinuxMasquerade)
	laptop, _ := nat.AddHost(netip.MustParseAddr("198.18.0.2"),
		netsim.WithLink(netsim.Link{Latency: 10 * time.Millisecond, Bandwidth: 100 * netsim.Mbps}))

	ln, _ := server.ListenTCP(ctx, netip.MustParseAddrPort("0.0.0.0:80"))
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "you are %v", c.RemoteAddr())
	}()

	c, err := laptop.DialTCP(ctx, netip.MustParseAddrPort("0.0.0.0:40000"), netip.MustParseAddrPort("203.0.113.10:80"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	reply, _ := io.ReadAll(c)
	fmt.Printf("%s (locally %v)\n", reply, c.LocalAddr())
	for _, m := range nat.Mappings() {
		fmt.Println(m.Proto, m.Internal, "=>", m.External)
	}
	// Output:
	// you are 198.51.100.1:40000 (locally 198.18.0.2:40000)
	// tcp 198.18.0.2:40000 => 198.51.100.1:40000
}

// Two hosts behind home routers (which drop unsolicited SYNs) connect
// directly by TCP simultaneous open: each dials the other's public endpoint
// from the port it was seen on. The SYN that arrives first is dropped, the
// other one passes through the hole its own router's SYN opened, and both
// dials return the same connection.
func Example_simultaneousOpen() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inet := netsim.New()
	defer inet.Close()
	natA, _ := inet.AddNAT(netip.MustParseAddr("198.51.100.1"), netsim.HomeRouter)
	natB, _ := inet.AddNAT(netip.MustParseAddr("198.51.100.2"), netsim.HomeRouter)
	a, _ := natA.AddHost(netip.MustParseAddr("198.18.0.2"))
	b, _ := natB.AddHost(netip.MustParseAddr("198.18.1.2"))

	// Home routers preserve ports, so each side's public endpoint is its
	// router's address with its own port (a rendezvous server would tell).
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result)
	go func() {
		c, err := b.DialTCP(ctx, netip.MustParseAddrPort("198.18.1.2:7000"), netip.MustParseAddrPort("198.51.100.1:7000"))
		done <- result{c, err}
	}()
	ca, err := a.DialTCP(ctx, netip.MustParseAddrPort("198.18.0.2:7000"), netip.MustParseAddrPort("198.51.100.2:7000"))
	rb := <-done
	if err != nil || rb.err != nil {
		fmt.Println(err, rb.err)
		return
	}
	defer ca.Close()
	defer rb.c.Close()
	ca.Write([]byte("hello through two NATs"))
	buf := make([]byte, 64)
	n, _ := rb.c.Read(buf)
	fmt.Printf("B got %q from %v\n", buf[:n], rb.c.RemoteAddr())
	// Output:
	// B got "hello through two NATs" from 198.51.100.1:7000
}

// NATConfig knobs are independent: start from a preset and change what you
// need.
func ExampleNATConfig() {
	cfg := netsim.HomeRouter
	cfg.Name = "strict-home"
	cfg.Filtering = netsim.AddressAndPortDependent
	cfg.UnsolicitedSYN = netsim.SYNRejectICMP
	cfg.UDPTimeout = 30 * time.Second

	inet := netsim.New()
	defer inet.Close()
	nat, err := inet.AddNAT(netip.MustParseAddr("198.51.100.1"), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	c := nat.Config()
	fmt.Println(c.Name, c.Mapping, c.Filtering, c.PortAllocation, c.UnsolicitedSYN, c.UDPTimeout, c.TCPTransitoryTimeout)
	// Output:
	// strict-home endpoint-independent address-and-port-dependent preserve icmp 30s 4m0s
}

// A trace explains what happened to every packet: here, why a dial to a
// host behind a Linux router is refused.
func ExampleWithTrace() {
	var lines []string
	inet := netsim.New(netsim.WithTrace(func(e netsim.Event) {
		if e.Kind == netsim.EventDrop || e.Kind == netsim.EventReply {
			lines = append(lines, fmt.Sprintf("%s %s %s %s: %s", e.Node, e.Kind, e.Proto, e.Flags, e.Reason))
		}
	}))
	defer inet.Close()
	nat, _ := inet.AddNAT(netip.MustParseAddr("198.51.100.1"), netsim.LinuxMasquerade)
	nat.AddHost(netip.MustParseAddr("198.18.0.2"))
	client, _ := inet.AddHost(netip.MustParseAddr("203.0.113.20"))

	_, err := client.DialTCP(context.Background(), netip.AddrPort{}, netip.MustParseAddrPort("198.51.100.1:5000"))
	fmt.Println(strings.Contains(err.Error(), "connection refused"))
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// true
	// nat 198.51.100.1 drop tcp SYN: no mapping
	// nat 198.51.100.1 reply tcp RST+ACK: unsolicited SYN: no mapping
}
