package netsim

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

// bytesSource hands out small numbers from the fuzz input, then zeros.
type bytesSource struct{ b []byte }

func (s *bytesSource) next(n int) int {
	if len(s.b) == 0 || n <= 0 {
		return 0
	}
	v := int(s.b[0]) % n
	s.b = s.b[1:]
	return v
}

// FuzzNetwork builds a topology and runs a sequence of operations chosen by
// the input (random NAT knobs, dials, listens, datagrams, writes, closes,
// power-offs and waits in virtual time). Nothing may panic or deadlock, and
// every NAT's live mappings must have distinct public ports within its range
// (or preserved).
func FuzzNetwork(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Add([]byte{2, 2, 2, 0, 7, 7, 1, 3, 0, 0, 0, 5, 5, 5, 4, 4, 4, 6, 6, 6, 3, 9})
	f.Add([]byte{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 0, 7, 0, 7, 0, 7, 1, 1, 1, 1, 200, 100, 50})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 300 {
			data = data[:300]
		}
		src := &bytesSource{data}
		synctest.Test(t, func(t *testing.T) {
			in := New(WithSeed(uint64(src.next(256))))
			defer in.Close()
			fuzzNetwork(t, in, src)
		})
	})
}

func fuzzNetwork(t *testing.T, in *Internet, src *bytesSource) {
	ctx := context.Background()
	presets := Presets()
	var hosts []*Host
	var nats []*NAT
	var targets []netip.Addr
	link := func() NodeOption {
		return WithLink(Link{Latency: time.Duration(src.next(50)) * time.Millisecond,
			Jitter: time.Duration(src.next(5)) * time.Millisecond, Loss: float64(src.next(4)) / 10,
			Bandwidth: Rate(src.next(3)) * 10 * Mbps})
	}
	for i := 0; i < 2; i++ {
		h, err := in.AddHost(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}), link())
		if err == nil {
			hosts = append(hosts, h)
			targets = append(targets, h.Addr())
		}
	}
	for i := 0; i < 3; i++ {
		cfg := presets[src.next(len(presets))]
		cfg.Hairpinning = src.next(2) == 1
		cfg.UnsolicitedSYN = SYNPolicy(src.next(3))
		cfg.SYNReplyDelay = time.Duration(src.next(3)) * time.Second
		if src.next(2) == 1 {
			cfg.PortMin, cfg.PortMax = 5000, uint16(5000+src.next(20))
		}
		n, err := in.AddNAT(netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)}), cfg, link())
		if err != nil {
			t.Fatalf("preset-based config rejected: %v", err)
		}
		nats = append(nats, n)
		targets = append(targets, n.Addr())
		for j := 0; j < 2; j++ {
			if h, err := n.AddHost(netip.AddrFrom4([4]byte{198, 18, byte(i), byte(2 + j)}), link()); err == nil {
				hosts = append(hosts, h)
			}
		}
	}
	// Bad use along the way must give errors, not panics.
	_, err := in.AddHost(netip.AddrFrom4([4]byte{203, 0, 113, 10}))
	assert.Error(t, err)

	var conns []net.Conn
	port := func() uint16 { return uint16(7000 + src.next(4)) }
	for step := 0; step < 40 && len(src.b) > 0; step++ {
		h := hosts[src.next(len(hosts))]
		to := netip.AddrPortFrom(targets[src.next(len(targets))], port())
		switch src.next(9) {
		case 0, 1:
			dctx, cancel := context.WithTimeout(ctx, time.Duration(1+src.next(20))*time.Second)
			if c, err := h.DialTCP(dctx, netip.AddrPortFrom(netip.IPv4Unspecified(), port()), to); err == nil {
				conns = append(conns, c)
			}
			cancel()
		case 2:
			if ln, err := h.ListenTCP(ctx, netip.AddrPortFrom(netip.IPv4Unspecified(), port())); err == nil {
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						go func() {
							buf := make([]byte, 1024)
							for {
								if _, err := c.Read(buf); err != nil {
									c.Close()
									return
								}
							}
						}()
					}
				}()
			}
		case 3:
			if pc, err := h.ListenUDP(ctx, netip.AddrPortFrom(netip.IPv4Unspecified(), port())); err == nil {
				pc.WriteTo(make([]byte, src.next(100)), net.UDPAddrFromAddrPort(to))
				pc.Close()
			}
		case 4:
			time.Sleep(time.Duration(src.next(300)) * time.Second)
		case 5:
			if len(conns) > 0 {
				c := conns[src.next(len(conns))]
				c.SetWriteDeadline(time.Now().Add(time.Second))
				c.Write(make([]byte, src.next(200)<<10))
			}
		case 6:
			if len(conns) > 0 {
				c := conns[src.next(len(conns))].(*TCPConn)
				if src.next(2) == 1 {
					c.SetLinger(0)
				}
				c.Close()
			}
		case 7:
			// Two hosts dial each other at once from fixed ports.
			g := hosts[src.next(len(hosts))]
			la, lb := netip.AddrPortFrom(h.Addr(), 7100), netip.AddrPortFrom(g.Addr(), 7100)
			ta := netip.AddrPortFrom(targets[src.next(len(targets))], 7100)
			tb := netip.AddrPortFrom(targets[src.next(len(targets))], 7100)
			done := make(chan struct{})
			go func() {
				dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				if c, err := g.DialTCP(dctx, lb, ta); err == nil {
					c.Close()
				}
				close(done)
			}()
			dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if c, err := h.DialTCP(dctx, la, tb); err == nil {
				c.Close()
			}
			cancel()
			<-done
		case 8:
			if src.next(8) == 0 {
				h.Close()
			}
		}
		for _, n := range nats {
			checkMappings(t, n)
		}
	}
}

func checkMappings(t *testing.T, n *NAT) {
	cfg := n.Config()
	seen := map[string]bool{}
	for _, m := range n.Mappings() {
		key := m.Proto + m.External.String()
		assert.False(t, seen[key], "%s: public endpoint %s mapped twice", n.Name(), key)
		seen[key] = true
		p := m.External.Port()
		inRange := p >= cfg.PortMin && p <= cfg.PortMax
		preserved := cfg.PortAllocation == PortPreserve && p == m.Internal.Port()
		assert.True(t, inRange || preserved || cfg.OneToOne || cfg.Mapping == NoTranslation,
			"%s: port %d outside %d-%d", n.Name(), p, cfg.PortMin, cfg.PortMax)
	}
}
