package punch_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/fnmesh/fnmesh/punch"
	"golang.org/x/sys/unix"
)

// congestionOf reads back the TCP congestion control of a link's socket.
func congestionOf(c net.Conn) (string, error) {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return "", err
	}
	var name string
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		name, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	}); err != nil {
		return "", err
	}
	return strings.TrimRight(name, "\x00"), gerr
}

// Ports whose links use another TCP congestion control than fnmesh's
// default (CUBIC): here Reno, which every Linux kernel has and lets any
// process choose; "bbr" suits long, lossy paths between regions, and ""
// keeps the system's default. Each socket gets the algorithm before it
// connects; the example punches a link on loopback and reads the algorithm
// back from both ends.
func ExampleWithCongestionControl() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	laddr := netip.MustParseAddrPort("127.0.0.1:0")
	var ports [2]*punch.Port
	for rank := range ports {
		p, err := punch.Listen(ctx, punch.OS(), laddr, punch.Identity{Secret: secret, Job: "job-42", Rank: rank},
			punch.WithCongestionControl("reno"))
		if err != nil {
			log.Fatal(err)
		}
		defer p.Close()
		ports[rank] = p
	}
	links := make(chan net.Conn, 1)
	go func() {
		c, err := ports[1].Punch(ctx, punch.Peer{Rank: 0, Endpoints: []netip.AddrPort{ports[0].Addr()}})
		if err != nil {
			log.Fatal(err)
		}
		links <- c
	}()
	c0, err := ports[0].Punch(ctx, punch.Peer{Rank: 1, Endpoints: []netip.AddrPort{ports[1].Addr()}})
	if err != nil {
		log.Fatal(err)
	}
	defer c0.Close()
	c1 := <-links
	defer c1.Close()
	for rank, c := range []net.Conn{c0, c1} {
		name, err := congestionOf(c)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("rank %d's link: %s\n", rank, name)
	}
	// Output:
	// rank 0's link: reno
	// rank 1's link: reno
}
