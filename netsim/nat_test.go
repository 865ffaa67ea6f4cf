package netsim

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two public servers, each observing on two ports, so a client can reach
// the same address at another port and another address.
var (
	dstA1 = ap("203.0.113.10:3478")
	dstA2 = ap("203.0.113.10:3479")
	dstB1 = ap("203.0.113.20:3478")
)

func observers(t *testing.T, in *Internet) {
	s1 := must(in.AddHost(dstA1.Addr()))
	s2 := must(in.AddHost(dstB1.Addr()))
	t.Cleanup(observer(t, s1, dstA1.Port()))
	t.Cleanup(observer(t, s1, dstA2.Port()))
	t.Cleanup(observer(t, s2, dstB1.Port()))
}

func TestMappingBehavior(t *testing.T) {
	adm := HomeRouter
	adm.Name, adm.Mapping = "address-dependent", AddressDependent
	tests := []struct {
		cfg NATConfig
		// which destinations see the same public endpoint as dstA1
		sameA2, sameB1 bool
		// whether the public port is the internal port
		preserved bool
		// whether the address is translated at all
		translated bool
	}{
		{None, true, true, true, false},
		{OneToOne, true, true, true, true},
		{LinuxMasquerade, true, true, true, true},
		{HomeRouter, true, true, true, true},
		{FullCone, true, true, true, true},
		{RestrictedCone, true, true, true, true},
		{PortRestrictedCone, true, true, true, true},
		{CarrierGrade, true, true, false, true},
		{adm, true, false, true, true},
		{Symmetric, false, false, false, true},
		{CloudNAT, false, false, false, true},
	}
	for _, tt := range tests {
		for _, proto := range []string{"tcp", "udp"} {
			t.Run(tt.cfg.Name+"/"+proto, func(t *testing.T) {
				bubble(t, func(t *testing.T, in *Internet) {
					observers(t, in)
					nat := must(in.AddNAT(addr("198.51.100.1"), tt.cfg))
					hostAddr := addr("198.18.0.2")
					if !tt.translated && !tt.cfg.OneToOne {
						hostAddr = addr("198.51.100.7") // behind a plain router: a public address
					}
					h := must(nat.AddHost(hostAddr))
					local := netip.AddrPortFrom(hostAddr, 40000)
					var seen []netip.AddrPort
					if proto == "tcp" {
						for _, d := range []netip.AddrPort{dstA1, dstA2, dstB1} {
							seen = append(seen, observeTCP(t, h, local, d))
						}
					} else {
						pc := must(h.ListenUDP(context.Background(), local))
						defer pc.Close()
						for _, d := range []netip.AddrPort{dstA1, dstA2, dstB1} {
							seen = append(seen, observeUDP(t, pc, d))
						}
					}
					wantAddr := nat.Addr()
					if !tt.translated {
						wantAddr = hostAddr
					}
					for _, s := range seen {
						assert.Equal(t, wantAddr, s.Addr())
					}
					assert.Equal(t, tt.sameA2, seen[0] == seen[1], "same endpoint toward the same address, other port: %v", seen)
					assert.Equal(t, tt.sameB1, seen[0] == seen[2], "same endpoint toward another address: %v", seen)
					assert.Equal(t, tt.preserved, seen[0].Port() == local.Port(), "port preserved: %v", seen)
				})
			})
		}
	}
}

// udpProbe: the host behind the NAT sends one datagram from port 5000 to
// server S1:3478; then S1:3478, S1:4000 and S2:3478 each send a datagram to
// the public endpoint S1 saw. It returns which of the three arrived.
func udpProbe(t *testing.T, in *Internet, cfg NATConfig) [3]bool {
	ctx := context.Background()
	s1 := must(in.AddHost(addr("203.0.113.10")))
	s2 := must(in.AddHost(addr("203.0.113.20")))
	nat := must(in.AddNAT(addr("198.51.100.1"), cfg))
	h := must(nat.AddHost(addr("198.18.0.2")))
	u1 := must(s1.ListenUDP(ctx, ap("203.0.113.10:3478")))
	u2 := must(s1.ListenUDP(ctx, ap("203.0.113.10:4000")))
	u3 := must(s2.ListenUDP(ctx, ap("203.0.113.20:3478")))
	pc := must(h.ListenUDP(ctx, ap("0.0.0.0:5000")))
	_, err := pc.WriteTo([]byte("hello"), net.UDPAddrFromAddrPort(ap("203.0.113.10:3478")))
	require.NoError(t, err)
	buf := make([]byte, 64)
	_, public, err := u1.ReadFrom(buf)
	require.NoError(t, err)
	var got [3]bool
	for i, u := range []net.PacketConn{u1, u2, u3} {
		_, err := u.WriteTo([]byte{byte(i)}, public)
		require.NoError(t, err)
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, pc.SetReadDeadline(time.Now().Add(time.Second)))
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			require.ErrorIs(t, err, errDeadline)
			return got
		}
		require.Equal(t, 1, n)
		got[buf[0]] = true
	}
}

func TestFilteringUDP(t *testing.T) {
	tests := []struct {
		cfg  NATConfig
		want [3]bool // from the contacted endpoint, same address other port, other address
	}{
		{FullCone, [3]bool{true, true, true}},
		{OneToOne, [3]bool{true, true, true}},
		{RestrictedCone, [3]bool{true, true, false}},
		{PortRestrictedCone, [3]bool{true, false, false}},
		{LinuxMasquerade, [3]bool{true, false, false}},
		{HomeRouter, [3]bool{true, false, false}},
		{Symmetric, [3]bool{true, false, false}},
		{CloudNAT, [3]bool{true, false, false}},
		{CarrierGrade, [3]bool{true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.cfg.Name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				assert.Equal(t, tt.want, udpProbe(t, in, tt.cfg))
			})
		})
	}
}

// dialOutcome classifies a dial error as the dialer sees it.
func dialOutcome(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "connected"
	case isRefused(err):
		return "refused"
	case asNetError(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error: " + err.Error()
}

func TestUnsolicitedInboundTCP(t *testing.T) {
	icmp := PortRestrictedCone
	icmp.Name, icmp.UnsolicitedSYN = "apdf-icmp", SYNRejectICMP
	rstFull := FullCone
	rstFull.Name, rstFull.UnsolicitedSYN = "full-cone-rst", SYNReset
	tests := []struct {
		cfg NATConfig
		// outcome of a dial to the mapped port from the contacted server's
		// address (other port), from another address, and to an unmapped port
		sameAddr, otherAddr, unmapped string
	}{
		{FullCone, "connected", "connected", "timeout"},
		{rstFull, "connected", "connected", "refused"},
		{RestrictedCone, "connected", "timeout", "timeout"},
		{PortRestrictedCone, "timeout", "timeout", "timeout"},
		{HomeRouter, "timeout", "timeout", "timeout"},
		{LinuxMasquerade, "refused", "refused", "refused"},
		{icmp, "refused", "refused", "refused"},
		{Symmetric, "timeout", "timeout", "timeout"},
		{OneToOne, "connected", "connected", "refused"}, // the host itself answers RST on a closed port
	}
	for _, tt := range tests {
		t.Run(tt.cfg.Name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				ctx := context.Background()
				link := WithLink(Link{Latency: 10 * time.Millisecond})
				s1 := must(in.AddHost(addr("203.0.113.10"), link))
				s2 := must(in.AddHost(addr("203.0.113.20"), link))
				nat := must(in.AddNAT(addr("198.51.100.1"), tt.cfg, link))
				h := must(nat.AddHost(addr("198.18.0.2")))
				// The host listens on 5000 and holds a connection from 5000 to s1:80.
				ln := must(h.ListenTCP(ctx, ap("0.0.0.0:5000")))
				defer ln.Close()
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						c.Close()
					}
				}()
				sl := must(s1.ListenTCP(ctx, ap("0.0.0.0:80")))
				defer sl.Close()
				out := must(h.DialTCP(ctx, ap("0.0.0.0:5000"), ap("203.0.113.10:80")))
				defer out.Close()
				in1 := must(sl.Accept())
				defer in1.Close()
				public := in1.RemoteAddr().(*net.TCPAddr).AddrPort()

				try := func(from *Host, to netip.AddrPort) (string, time.Duration) {
					ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					defer cancel()
					start := time.Now()
					c, err := from.DialTCP(ctx, ap("0.0.0.0:0"), to)
					if c != nil {
						c.Close()
					}
					return dialOutcome(err), time.Since(start)
				}
				got, d := try(s1, public)
				assert.Equal(t, tt.sameAddr, got, "from the contacted address")
				if got == "refused" {
					assert.Less(t, d, 100*time.Millisecond, "a refusal comes within a round trip")
				}
				if got == "timeout" {
					assert.Equal(t, 10*time.Second, d)
				}
				got, _ = try(s2, public)
				assert.Equal(t, tt.otherAddr, got, "from another address")
				got, _ = try(s2, netip.AddrPortFrom(nat.Addr(), 6000))
				assert.Equal(t, tt.unmapped, got, "to an unmapped port")
			})
		})
	}
}

func TestPortAllocation(t *testing.T) {
	ctx := context.Background()
	t.Run("preserve, and a random port on conflict", func(t *testing.T) {
		bubble(t, func(t *testing.T, in *Internet) {
			observers(t, in)
			nat := must(in.AddNAT(addr("198.51.100.1"), HomeRouter))
			h1 := must(nat.AddHost(addr("198.18.0.2")))
			h2 := must(nat.AddHost(addr("198.18.0.3")))
			p1 := must(h1.ListenUDP(ctx, ap("0.0.0.0:7000")))
			p2 := must(h2.ListenUDP(ctx, ap("0.0.0.0:7000")))
			assert.Equal(t, ap("198.51.100.1:7000"), observeUDP(t, p1, dstA1))
			e2 := observeUDP(t, p2, dstA1)
			assert.NotEqual(t, uint16(7000), e2.Port())
			assert.GreaterOrEqual(t, e2.Port(), uint16(1024))
		})
	})
	t.Run("sequential", func(t *testing.T) {
		bubble(t, func(t *testing.T, in *Internet) {
			observers(t, in)
			nat := must(in.AddNAT(addr("198.51.100.1"), Symmetric))
			h := must(nat.AddHost(addr("198.18.0.2")))
			pc := must(h.ListenUDP(ctx, ap("0.0.0.0:7000")))
			var ports []int
			for _, d := range []netip.AddrPort{dstA1, dstA2, dstB1} {
				ports = append(ports, int(observeUDP(t, pc, d).Port()))
			}
			pc2 := must(h.ListenUDP(ctx, ap("0.0.0.0:7001")))
			ports = append(ports, int(observeUDP(t, pc2, dstA1).Port()))
			for i := 1; i < len(ports); i++ {
				assert.Equal(t, ports[i-1]+1, ports[i], "ports %v", ports)
			}
		})
	})
	t.Run("random within range", func(t *testing.T) {
		cfg := CloudNAT
		cfg.PortMin, cfg.PortMax = 20000, 20999
		bubble(t, func(t *testing.T, in *Internet) {
			observers(t, in)
			nat := must(in.AddNAT(addr("198.51.100.1"), cfg))
			h := must(nat.AddHost(addr("198.18.0.2")))
			var ports []int
			for i := 0; i < 8; i++ {
				pc := must(h.ListenUDP(ctx, netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(7000+i))))
				ports = append(ports, int(observeUDP(t, pc, dstA1).Port()))
			}
			consecutive := 0
			for i, p := range ports {
				assert.True(t, p >= 20000 && p <= 20999, "port %d out of range", p)
				if i > 0 && p == ports[i-1]+1 {
					consecutive++
				}
			}
			assert.Less(t, consecutive, 3, "ports look sequential: %v", ports)
			assert.Len(t, nat.Mappings(), 8)
		})
	})
}

func TestHairpinning(t *testing.T) {
	for _, on := range []bool{true, false} {
		cfg := FullCone
		cfg.Hairpinning = on
		name := map[bool]string{true: "on", false: "off"}[on]
		t.Run(name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				ctx := context.Background()
				observers(t, in)
				nat := must(in.AddNAT(addr("198.51.100.1"), cfg))
				a := must(nat.AddHost(addr("198.18.0.2")))
				b := must(nat.AddHost(addr("198.18.0.3")))
				// A opens a mapping for port 7000 and listens on it.
				public := observeTCP(t, a, ap("0.0.0.0:7000"), dstA1)
				ln := must(a.ListenTCP(ctx, ap("0.0.0.0:7000")))
				defer ln.Close()
				dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				c, err := b.DialTCP(dctx, ap("0.0.0.0:7100"), public)
				if !on {
					assert.Equal(t, "timeout", dialOutcome(err))
					assert.NotZero(t, nat.Stats().DroppedHairpin)
					return
				}
				require.NoError(t, err)
				defer c.Close()
				sc := must(ln.Accept())
				defer sc.Close()
				// A sees B at B's public endpoint, not its LAN address.
				assert.Equal(t, nat.Addr(), sc.RemoteAddr().(*net.TCPAddr).AddrPort().Addr())
				assert.NotZero(t, nat.Stats().Hairpinned)

				// UDP hairpin too.
				pa := must(a.ListenUDP(ctx, ap("0.0.0.0:7200")))
				pb := must(b.ListenUDP(ctx, ap("0.0.0.0:7201")))
				pubA := observeUDP(t, pa, dstA1)
				_, err = pb.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(pubA))
				require.NoError(t, err)
				require.NoError(t, pa.SetReadDeadline(time.Now().Add(time.Second)))
				buf := make([]byte, 8)
				_, from, err := pa.ReadFrom(buf)
				require.NoError(t, err)
				assert.Equal(t, nat.Addr(), from.(*net.UDPAddr).AddrPort().Addr())
			})
		})
	}
}

func TestMappingExpiryUDP(t *testing.T) {
	var trace strings.Builder
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		srv := must(in.AddHost(addr("203.0.113.10")))
		nat := must(in.AddNAT(addr("198.51.100.1"), HomeRouter)) // UDP timeout 2 min
		h := must(nat.AddHost(addr("198.18.0.2")))
		su := must(srv.ListenUDP(ctx, ap("203.0.113.10:3478")))
		pc := must(h.ListenUDP(ctx, ap("0.0.0.0:5000")))
		_, err := pc.WriteTo([]byte("open"), net.UDPAddrFromAddrPort(ap("203.0.113.10:3478")))
		require.NoError(t, err)
		buf := make([]byte, 16)
		_, public, err := su.ReadFrom(buf)
		require.NoError(t, err)
		start := time.Now()
		ms := nat.Mappings()
		require.Len(t, ms, 1)
		assert.Equal(t, start.Add(2*time.Minute), ms[0].Expires)

		received := func() bool {
			require.NoError(t, pc.SetReadDeadline(time.Now().Add(time.Second)))
			_, _, err := pc.ReadFrom(buf)
			return err == nil
		}
		// Inbound traffic refreshes the mapping: replies at 110 s and then
		// 119 s later still get through.
		time.Sleep(110 * time.Second)
		su.WriteTo([]byte("1"), public)
		assert.True(t, received(), "at 110 s")
		time.Sleep(118 * time.Second) // 1 s went by in received()
		su.WriteTo([]byte("2"), public)
		assert.True(t, received(), "at 229 s")
		// 2 min after the last packet, the mapping is gone.
		time.Sleep(2*time.Minute + time.Second)
		su.WriteTo([]byte("3"), public)
		assert.False(t, received(), "after the timeout")
		assert.Empty(t, nat.Mappings())
		st := nat.Stats()
		assert.Equal(t, uint64(1), st.MappingsExpired)
		assert.Equal(t, uint64(1), st.DroppedNoMapping)
	}, WithTraceWriter(&trace))
	assert.Contains(t, trace.String(), "unmap     udp 198.18.0.2:5000 => 198.51.100.1:5000 (timeout)")
	assert.Contains(t, trace.String(), "(no mapping)")
}

func TestMappingExpiryTCP(t *testing.T) {
	short := func(c NATConfig, d time.Duration) NATConfig { c.TCPEstablishedTimeout = d; return c }
	tests := []struct {
		name string
		cfg  NATConfig
		// what a write after the idle timeout leads to, and when
		want  error
		after time.Duration
	}{
		{"router answers RST", short(LinuxMasquerade, 10*time.Minute), errConnReset, 0},
		{"router drops", short(HomeRouter, 10*time.Minute), errTimedOut, retransmitGiveUp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				ctx := context.Background()
				srv := must(in.AddHost(addr("203.0.113.10")))
				nat := must(in.AddNAT(addr("198.51.100.1"), tt.cfg))
				h := must(nat.AddHost(addr("198.18.0.2")))
				ln := echoServer(t, srv, 80)
				defer ln.Close()
				c := must(h.DialTCP(ctx, ap("0.0.0.0:0"), ap("203.0.113.10:80")))
				defer c.Close()
				buf := make([]byte, 4)
				// Traffic every 9 minutes keeps the mapping.
				for i := 0; i < 3; i++ {
					time.Sleep(9 * time.Minute)
					_, err := c.Write([]byte("ping"))
					require.NoError(t, err)
					_, err = c.Read(buf)
					require.NoError(t, err, "round %d", i)
				}
				// Idle past the timeout: the mapping expires.
				time.Sleep(11 * time.Minute)
				assert.Empty(t, nat.Mappings())
				start := time.Now()
				_, err := c.Write([]byte("ping"))
				require.NoError(t, err, "the first write is accepted into the send buffer")
				_, err = c.Read(buf)
				assert.ErrorIs(t, err, tt.want)
				assert.Equal(t, tt.after, time.Since(start))
			})
		})
	}
}

// A write through an expired mapping is lost, but what the peer had
// received before the mapping expired stays readable (it was in its
// socket's buffer); the peer, only reading, notices nothing else.
func TestMappingExpiryKeepsReceivedData(t *testing.T) {
	short := func(c NATConfig) NATConfig { c.TCPEstablishedTimeout = 10 * time.Minute; return c }
	tests := []struct {
		name         string
		cfg          NATConfig
		writerBehind bool // the host behind the NAT writes (else the public server does)
	}{
		{"router answers RST, host behind writes", short(LinuxMasquerade), true},
		{"router answers RST, server writes", short(LinuxMasquerade), false},
		{"router drops, host behind writes", short(HomeRouter), true},
		{"router drops, server writes", short(HomeRouter), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				ctx := context.Background()
				srv := must(in.AddHost(addr("203.0.113.10")))
				nat := must(in.AddNAT(addr("198.51.100.1"), tt.cfg))
				h := must(nat.AddHost(addr("198.18.0.2")))
				ln := must(srv.ListenTCP(ctx, ap("0.0.0.0:80")))
				defer ln.Close()
				c := must(h.DialTCP(ctx, ap("0.0.0.0:0"), ap("203.0.113.10:80")))
				defer c.Close()
				s := must(ln.Accept())
				defer s.Close()
				w, r := c, s
				if !tt.writerBehind {
					w, r = s, c
				}
				_, err := w.Write([]byte("hello"))
				require.NoError(t, err)
				time.Sleep(11 * time.Minute)
				require.Empty(t, nat.Mappings())
				_, err = w.Write([]byte("lost"))
				require.NoError(t, err, "the first write is accepted into the send buffer")

				require.NoError(t, r.SetReadDeadline(time.Now().Add(time.Minute)))
				buf := make([]byte, 16)
				n, err := r.Read(buf)
				require.NoError(t, err)
				assert.Equal(t, "hello", string(buf[:n]))
				_, err = r.Read(buf)
				assert.ErrorIs(t, err, errDeadline, "nothing written after the expiry arrives")
			})
		})
	}
}

func TestTransitoryTimeout(t *testing.T) {
	// A SYN into a dropping NAT: the dialer's own NAT keeps the half-open
	// session for the transitory timeout after the last retransmission.
	bubble(t, func(t *testing.T, in *Internet) {
		na := must(in.AddNAT(addr("198.51.100.1"), HomeRouter))
		must(in.AddNAT(addr("198.51.100.2"), HomeRouter))
		h := must(na.AddHost(addr("198.18.0.2")))
		_, err := h.DialTCP(context.Background(), ap("0.0.0.0:6000"), ap("198.51.100.2:6000"))
		assert.ErrorIs(t, err, errTimedOut)
		require.Len(t, na.Mappings(), 1)
		// The last SYN left at 63 s; the dial gave up at 127 s.
		time.Sleep(4*time.Minute - 64*time.Second)
		assert.Len(t, na.Mappings(), 1)
		time.Sleep(2 * time.Second)
		assert.Empty(t, na.Mappings())
	})
}

func TestNestedNAT(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		observers(t, in)
		cgn := must(in.AddNAT(addr("198.51.100.1"), CarrierGrade))
		home1 := must(cgn.AddNAT(addr("100.64.0.2"), HomeRouter))
		home2 := must(cgn.AddNAT(addr("100.64.0.3"), HomeRouter))
		// The same private address in two homes is fine.
		a := must(home1.AddHost(addr("198.18.0.2")))
		b := must(home2.AddHost(addr("198.18.0.2")))
		pa := observeTCP(t, a, ap("0.0.0.0:7000"), dstA1)
		pb := observeTCP(t, b, ap("0.0.0.0:7000"), dstA1)
		assert.Equal(t, cgn.Addr(), pa.Addr())
		assert.Equal(t, cgn.Addr(), pb.Addr())
		assert.NotEqual(t, pa, pb)
		// Both homes' mappings sit in the CGN, keyed by the homes' addresses.
		ms := cgn.Mappings()
		require.Len(t, ms, 2)
		assert.ElementsMatch(t, []netip.Addr{addr("100.64.0.2"), addr("100.64.0.3")},
			[]netip.Addr{ms[0].Internal.Addr(), ms[1].Internal.Addr()})
		// Inside the CGN's realm, A's packets reach B's home router at its
		// CGN-internal address directly, and it drops the unsolicited SYN.
		ln := must(b.ListenTCP(ctx, ap("0.0.0.0:8000")))
		defer ln.Close()
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := a.DialTCP(dctx, ap("0.0.0.0:0"), ap("100.64.0.3:8000"))
		assert.Equal(t, "timeout", dialOutcome(err), "home router drops unsolicited SYNs")
	})
}

// WithName names every kind of node, plain routers included; without it a
// node is named by its kind and address (and its parent's address).
func TestNodeNames(t *testing.T) {
	in := New()
	defer in.Close()
	cgn := must(in.AddNAT(addr("198.51.100.2"), CarrierGrade))
	host := func(a netip.Addr, o ...NodeOption) (string, error) {
		h, err := in.AddHost(a, o...)
		return h.Name(), err
	}
	nat := func(parent *NAT, cfg NATConfig) func(netip.Addr, ...NodeOption) (string, error) {
		return func(a netip.Addr, o ...NodeOption) (string, error) {
			var n *NAT
			var err error
			if parent == nil {
				n, err = in.AddNAT(a, cfg, o...)
			} else {
				n, err = parent.AddNAT(a, cfg, o...)
			}
			return n.Name(), err
		}
	}
	tests := []struct {
		name         string
		add          func(netip.Addr, ...NodeOption) (string, error)
		plain, named string // addresses of a node added without and with WithName
		def          string // the default name of the first
	}{
		{"public host", host, "203.0.113.1", "203.0.113.2", "host 203.0.113.1"},
		{"NAT", nat(nil, HomeRouter), "198.51.100.3", "198.51.100.4", "nat 198.51.100.3"},
		{"plain router", nat(nil, None), "198.51.100.5", "198.51.100.6", "router 198.51.100.5"},
		{"plain router behind a NAT", nat(cgn, None), "100.64.0.5", "100.64.0.6", "router 100.64.0.5@198.51.100.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.add(addr(tt.plain))
			require.NoError(t, err)
			assert.Equal(t, tt.def, got)
			got, err = tt.add(addr(tt.named), WithName("edge"))
			require.NoError(t, err)
			assert.Equal(t, "edge", got)
		})
	}
}

func TestPlainRouterAndOneToOne(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		client := must(in.AddHost(addr("203.0.113.5")))
		r := must(in.AddNAT(addr("198.51.100.1"), None))
		inner := must(r.AddHost(addr("198.51.100.9")))
		one := must(in.AddNAT(addr("198.51.100.2"), OneToOne))
		vm := must(one.AddHost(addr("10.0.0.5")))
		_, err := one.AddHost(addr("10.0.0.6"))
		assert.Error(t, err, "a one-to-one NAT takes one host")

		for _, tc := range []struct {
			srv    *Host
			dialTo netip.AddrPort
		}{{inner, ap("198.51.100.9:80")}, {vm, ap("198.51.100.2:80")}} {
			ln := echoServer(t, tc.srv, 80)
			c, err := client.DialTCP(ctx, ap("0.0.0.0:0"), tc.dialTo)
			require.NoError(t, err)
			_, err = c.Write([]byte("hi"))
			require.NoError(t, err)
			buf := make([]byte, 2)
			_, err = c.Read(buf)
			require.NoError(t, err)
			c.Close()
			ln.Close()
		}
		// The VM sees its private address locally and its public one from outside.
		c, err := vm.DialTCP(ctx, ap("0.0.0.0:0"), ap("198.51.100.9:80"))
		assert.ErrorIs(t, err, errConnRefused) // nothing listens any more
		assert.Nil(t, c)
	})
}

func TestSYNReplyDelay(t *testing.T) {
	// RFC 5382 REQ-4: a NAT that holds its answer to an unsolicited SYN for
	// 6 s lets a single simultaneous open succeed despite a 2 s stagger;
	// without the hold the first SYN is refused at once.
	for _, hold := range []time.Duration{0, 6 * time.Second} {
		cfg := PortRestrictedCone
		cfg.UnsolicitedSYN, cfg.SYNReplyDelay = SYNRejectICMP, hold
		t.Run(hold.String(), func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				na := must(in.AddNAT(addr("198.51.100.1"), cfg, WithLink(Link{Latency: 10 * time.Millisecond})))
				nb := must(in.AddNAT(addr("198.51.100.2"), cfg, WithLink(Link{Latency: 10 * time.Millisecond})))
				ha := must(na.AddHost(addr("198.18.0.2")))
				hb := must(nb.AddHost(addr("198.18.1.2")))
				errc := make(chan error, 1)
				go func() {
					c, err := ha.DialTCP(context.Background(), ap("198.18.0.2:5000"), ap("198.51.100.2:5000"))
					if c != nil {
						defer c.Close()
					}
					errc <- err
				}()
				time.Sleep(2 * time.Second)
				c, err := hb.DialTCP(context.Background(), ap("198.18.1.2:5000"), ap("198.51.100.1:5000"))
				errA := <-errc
				if hold == 0 {
					assert.ErrorIs(t, errA, errConnRefused)
					assert.ErrorIs(t, err, errConnRefused)
					return
				}
				require.NoError(t, errA)
				require.NoError(t, err)
				c.Close()
			})
		})
	}
}
