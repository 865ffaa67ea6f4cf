//go:build linux

package nslab_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/fnmesh/fnmesh/internal/nslab"
)

// A lab with one public server and one worker behind a Linux router whose
// NAT drops unsolicited SYNs; the worker runs a program that reaches the
// server through the NAT. (Needs root, ip and nft; not run by go test.)
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := nslab.Check(ctx); err != nil {
		fmt.Println("no lab here:", err)
		return
	}
	lab, err := nslab.New(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lab.Close() // removes every namespace, veth and rule

	server, err := lab.AddHost(ctx, "server", netip.MustParseAddr("203.0.113.10"))
	if err != nil {
		fmt.Println(err)
		return
	}
	router, err := lab.AddRouter(ctx, "home", nslab.MasqueradeDrop,
		netip.MustParseAddr("198.51.100.1"), netip.MustParsePrefix("198.18.1.0/24"))
	if err != nil {
		fmt.Println(err)
		return
	}
	worker, err := router.AddHost(ctx, "worker")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(worker.Addr(), "reaches", server.Addr(), "through", router.Addr())
	out, err := worker.Output(ctx, "ip", "route")
	fmt.Print(out, err)
}
