package netsim

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scenario runs a fixed sequence of operations whose outcome depends on
// random choices (random and sequential NAT ports, ephemeral ports, jitter,
// loss) and returns the public endpoints seen and the whole trace.
func scenario(t *testing.T, seed uint64) (ports []string, trace string) {
	var b strings.Builder
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		srv := must(in.AddHost(addr("203.0.113.10"), WithLink(Link{Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.2})))
		ln := must(srv.ListenTCP(ctx, ap("0.0.0.0:80")))
		defer ln.Close()
		su := must(srv.listenUDP(ctx, ap("0.0.0.0:9000")))
		for _, cfg := range []NATConfig{CloudNAT, Symmetric, CarrierGrade} {
			n := must(in.AddNAT(netip.AddrFrom4([4]byte{198, 51, 100, byte(len(ports) + 1)}), cfg))
			h := must(n.AddHost(addr("198.18.0.2")))
			for i := 0; i < 5; i++ {
				c, err := h.DialTCP(ctx, netip.AddrPort{}, ap("203.0.113.10:80"))
				require.NoError(t, err)
				s := must(ln.Accept())
				ports = append(ports, s.RemoteAddr().String())
				c.Close()
				s.Close()
				u := must(h.listenUDP(ctx, netip.AddrPort{}))
				for j := 0; j < 3; j++ {
					u.WriteToUDPAddrPort([]byte{byte(j)}, ap("203.0.113.10:9000"))
				}
			}
		}
		time.Sleep(time.Second)
		for {
			su.SetReadDeadline(time.Now().Add(time.Second))
			_, from, err := su.ReadFromUDPAddrPort(make([]byte, 8))
			if err != nil {
				break
			}
			ports = append(ports, "udp "+from.String())
		}
	}, WithSeed(seed), WithTraceWriter(&b))
	return ports, b.String()
}

func TestSameSeedSameChoices(t *testing.T) {
	p1, t1 := scenario(t, 42)
	p2, t2 := scenario(t, 42)
	p3, t3 := scenario(t, 43)
	assert.Equal(t, p1, p2)
	assert.Equal(t, t1, t2, "the whole trace repeats")
	assert.NotEqual(t, p1, p3, "another seed chooses other ports")
	assert.NotEqual(t, t1, t3)
	assert.Greater(t, strings.Count(t1, "lost on link"), 3, "the scenario exercises loss")
}
