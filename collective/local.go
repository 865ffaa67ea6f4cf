package collective

import (
	"context"
	"fmt"
	"net"
)

// Local returns n communicators of one process, rank i in element i,
// connected pairwise by TCP over the loopback interface. It is for tests,
// examples and trying collectives out on one machine; the ranks must be
// driven from separate goroutines. Close each when done.
func Local(ctx context.Context, n int, opts ...Option) ([]*Comm, error) {
	if n < 1 {
		return nil, fmt.Errorf("collective: local: %d ranks", n)
	}
	links := make([][]net.Conn, n)
	for i := range links {
		links[i] = make([]net.Conn, n)
	}
	closeAll := func() {
		for _, row := range links {
			for _, c := range row {
				if c != nil {
					_ = c.Close()
				}
			}
		}
	}
	if n > 1 {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("collective: local: %w", err)
		}
		defer ln.Close()
		var d net.Dialer
		for i := range n {
			for j := i + 1; j < n; j++ {
				a, err := d.DialContext(ctx, "tcp", ln.Addr().String())
				if err != nil {
					closeAll()
					return nil, fmt.Errorf("collective: local: %w", err)
				}
				b, err := ln.Accept()
				if err != nil {
					_ = a.Close()
					closeAll()
					return nil, fmt.Errorf("collective: local: %w", err)
				}
				links[i][j], links[j][i] = a, b
			}
		}
	}
	comms := make([]*Comm, n)
	for i := range comms {
		c, err := New(i, links[i], opts...)
		if err != nil {
			for _, c := range comms[:i] {
				_ = c.Close()
			}
			for _, row := range links[i:] {
				for _, c := range row {
					if c != nil {
						_ = c.Close()
					}
				}
			}
			return nil, err
		}
		comms[i] = c
	}
	return comms, nil
}
