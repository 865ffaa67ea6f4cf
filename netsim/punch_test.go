package netsim

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// punchResult is what one side of a simultaneous-open attempt got.
type punchResult struct {
	conn  net.Conn
	tries int
	err   error
}

// punchLoop dials raddr from the fixed local port laddr every ~200 ms
// (with ±25 ms of seeded jitter, as real schedulers give) until a
// connection is made or ctx ends, as the notes' retry loop does.
func punchLoop(ctx context.Context, h *Host, laddr, raddr netip.AddrPort, rng *rand.Rand) punchResult {
	var r punchResult
	for ctx.Err() == nil {
		r.tries++
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := h.DialTCP(actx, laddr, raddr)
		cancel()
		if err == nil {
			r.conn = c
			return r
		}
		r.err = err
		d := 175*time.Millisecond + time.Duration(rng.Int64N(int64(50*time.Millisecond)))
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	return r
}

func TestSimultaneousOpen(t *testing.T) {
	link := Link{Latency: 15 * time.Millisecond, Jitter: 3 * time.Millisecond}
	tests := []struct {
		name    string
		a, b    NATConfig
		stagger time.Duration
		want    bool
	}{
		{"linux masquerade, simultaneous start", LinuxMasquerade, LinuxMasquerade, 0, true},
		{"linux masquerade, 1 s stagger", LinuxMasquerade, LinuxMasquerade, time.Second, true},
		{"home routers (drop), 2.5 s stagger", HomeRouter, HomeRouter, 2500 * time.Millisecond, true},
		{"masquerade and home router", LinuxMasquerade, HomeRouter, 700 * time.Millisecond, true},
		{"symmetric and symmetric", Symmetric, Symmetric, 0, false},
		{"cloud NAT and cloud NAT", CloudNAT, CloudNAT, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, in *Internet) {
				srv := must(in.AddHost(addr("203.0.113.10"), WithLink(link)))
				na := must(in.AddNAT(addr("198.51.100.1"), tt.a, WithLink(link)))
				nb := must(in.AddNAT(addr("198.51.100.2"), tt.b, WithLink(link)))
				ha := must(na.AddHost(addr("198.18.0.2")))
				hb := must(nb.AddHost(addr("198.18.1.2")))
				stop := observer(t, srv, 3478)
				defer stop()

				// Each side learns its public endpoint from the same fixed
				// port it will punch from, as through a rendezvous server.
				la, lb := ap("198.18.0.2:40000"), ap("198.18.1.2:40001")
				pa := observeTCP(t, ha, la, ap("203.0.113.10:3478"))
				pb := observeTCP(t, hb, lb, ap("203.0.113.10:3478"))

				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				ra, rb := make(chan punchResult, 1), make(chan punchResult, 1)
				go func() { ra <- punchLoop(ctx, ha, la, pb, rand.New(rand.NewPCG(1, 1))) }()
				go func() {
					time.Sleep(tt.stagger)
					rb <- punchLoop(ctx, hb, lb, pa, rand.New(rand.NewPCG(2, 2)))
				}()
				a, b := <-ra, <-rb
				if !tt.want {
					assert.Nil(t, a.conn, "side A connected through %s", tt.a.Name)
					assert.Nil(t, b.conn, "side B connected through %s", tt.b.Name)
					return
				}
				require.NotNil(t, a.conn, "side A after %d tries: %v", a.tries, a.err)
				require.NotNil(t, b.conn, "side B after %d tries: %v", b.tries, b.err)
				t.Logf("connected after %d and %d tries", a.tries, b.tries)
				// It is one connection: bytes cross both ways.
				assert.Equal(t, pb.String(), a.conn.RemoteAddr().String())
				assert.Equal(t, pa.String(), b.conn.RemoteAddr().String())
				_, err := a.conn.Write([]byte("ping"))
				require.NoError(t, err)
				buf := make([]byte, 4)
				_, err = b.conn.Read(buf)
				require.NoError(t, err)
				assert.Equal(t, "ping", string(buf))
				a.conn.Close()
				b.conn.Close()
			})
		})
	}
}

func TestSingleAttemptMasqueradeRefused(t *testing.T) {
	// One connect() at the same moment from both sides behind Linux
	// masquerade NATs, with the first SYN reaching the peer's router before
	// the peer's SYN opened its hole: the router answers RST, and the dial
	// is refused (the measured 12-of-12 failure).
	bubble(t, func(t *testing.T, in *Internet) {
		na := must(in.AddNAT(addr("198.51.100.1"), LinuxMasquerade, WithLink(Link{Latency: 5 * time.Millisecond})))
		nb := must(in.AddNAT(addr("198.51.100.2"), LinuxMasquerade, WithLink(Link{Latency: 5 * time.Millisecond})))
		ha := must(na.AddHost(addr("198.18.0.2")))
		hb := must(nb.AddHost(addr("198.18.1.2"), WithLink(Link{Latency: 50 * time.Millisecond})))
		ctx := context.Background()
		errc := make(chan error, 1)
		go func() {
			_, err := hb.DialTCP(ctx, ap("198.18.1.2:5000"), ap("198.51.100.1:5000"))
			errc <- err
		}()
		_, err := ha.DialTCP(ctx, ap("198.18.0.2:5000"), ap("198.51.100.2:5000"))
		var opErr *net.OpError
		require.True(t, errors.As(err, &opErr))
		assert.ErrorIs(t, err, errConnRefused)
		assert.Equal(t, uint64(1), nb.Stats().ResetsSent)
		// B's SYN then finds A's router without a session (the RST
		// removed it) and is refused too.
		assert.ErrorIs(t, <-errc, errConnRefused)
		assert.Equal(t, uint64(1), na.Stats().ResetsSent)
		assert.Equal(t, uint64(1), na.Stats().MappingsReset)
	})
}
