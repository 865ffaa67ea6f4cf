package rendezvous

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClientResolvePicksUsableAddress: a server name with an IPv6 and an
// IPv4 address (IPv6 first, as resolvers sort them) is dialed at the IPv4
// one when the punch port is bound to an IPv4 address (dialing IPv6 from it
// cannot work), and at IPv4 by default too, so that the members of a job
// meet the server, and so each other, over one family.
func TestClientResolvePicksUsableAddress(t *testing.T) {
	old := lookupNetIP
	t.Cleanup(func() { lookupNetIP = old })
	lookupNetIP = func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}, nil
	}
	eps, other, err := resolve(context.Background(), "rv.example:7000", netip.AddrPort{})
	require.NoError(t, err)
	assert.Equal(t, "[127.0.0.1:7000]", fmt.Sprint(eps))
	assert.Equal(t, "[[::1]:7000]", fmt.Sprint(other))
	eps, other, err = resolve(context.Background(), "rv.example:7000", netip.MustParseAddrPort("[::1]:0"))
	require.NoError(t, err)
	assert.Equal(t, "[[::1]:7000]", fmt.Sprint(eps), "an IPv6 punch port takes the IPv6 address")
	assert.Equal(t, "[127.0.0.1:7000]", fmt.Sprint(other))

	// End to end: a server on 127.0.0.1 only, a name that resolves to ::1
	// first, and a punch port on 127.0.0.1.
	srv := startLoopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := "rv.example:" + srv.addr[len("127.0.0.1:"):]
	m, err := Join(ctx, name, "named", 1, testSecret,
		WithLocalAddr(netip.MustParseAddrPort("127.0.0.1:0")), WithConnectRetry(0))
	require.NoError(t, err)
	m.Close()

	// A punch port of a family the server has no address of: a clear error.
	_, _, err = resolve(context.Background(), "rv.example:7000", netip.MustParseAddrPort("[fe80::1%eth0]:0"))
	require.NoError(t, err) // IPv6 is there
	lookupNetIP = func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	_, err = Join(ctx, "rv.example:7000", "named", 1, testSecret, WithLocalAddr(netip.MustParseAddrPort("[::1]:0")))
	require.ErrorContains(t, err, "no IPv6 address")
}

// TestClientResolveLiteral: an IP literal with port 0, or of another family
// than the punch port's address, is refused before anything is dialed.
func TestClientResolveLiteral(t *testing.T) {
	_, err := Join(context.Background(), "127.0.0.1:0", "j", 2, testSecret)
	require.ErrorContains(t, err, `port "0" is not 1..65535`)
	_, err = Join(context.Background(), "[::1]:7000", "j", 2, testSecret,
		WithLocalAddr(netip.MustParseAddrPort("127.0.0.1:0")))
	require.ErrorContains(t, err, "not of the family of the punch port's address 127.0.0.1")
}

// TestCheckAddr: CheckAddr refuses what Join refuses for its form, before
// anything is resolved or dialed, and passes what Join would resolve.
func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr string
		want string // "" when valid
	}{
		{"127.0.0.1:7000", ""},
		{"[::1]:7000", ""},
		{"rv.example.com:65535", ""},
		{"rv.example.com", "want HOST:PORT"},
		{"7000", "want HOST:PORT"},
		{"", "want HOST:PORT"},
		{"127.0.0.1:0", `port "0" is not 1..65535`},
		{"127.0.0.1:65536", `port "65536" is not 1..65535`},
		{"rv.example.com:http", `port "http" is not 1..65535`},
		{"rv.example.com:-1", `port "-1" is not 1..65535`},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := CheckAddr(tt.addr)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
			// Join says the same, without dialing.
			_, jerr := Join(context.Background(), tt.addr, "j", 2, testSecret)
			assert.ErrorContains(t, jerr, tt.want)
		})
	}
}
