package rendezvous

import (
	"context"
	"net/netip"
	"testing"

	"github.com/fnmesh/fnmesh/netsim"
	"github.com/stretchr/testify/require"
)

// simServer is a rendezvous server on a public netsim host.
type simServer struct {
	*Server
	host   *netsim.Host
	addr   string
	cancel context.CancelFunc
	done   chan error
}

var simServerAddr = netip.MustParseAddrPort("203.0.113.10:7000")

// startSimServer starts a server on a public host of in (TCP and UDP on
// port 7000); call stop before the bubble ends.
func startSimServer(t testing.TB, in *netsim.Internet, link netsim.Link, opts ...ServerOption) *simServer {
	t.Helper()
	h, err := in.AddHost(simServerAddr.Addr(), netsim.WithLink(link), netsim.WithName("rendezvous"))
	require.NoError(t, err)
	ln, err := h.ListenTCP(context.Background(), simServerAddr)
	require.NoError(t, err)
	pc, err := h.ListenUDP(context.Background(), simServerAddr)
	require.NoError(t, err)
	srv := NewServer(testSecret, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	s := &simServer{Server: srv, host: h, addr: simServerAddr.String(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ctx, ln, pc) }()
	return s
}

func (s *simServer) stop(t testing.TB) {
	t.Helper()
	s.cancel()
	require.NoError(t, <-s.done)
}

// must returns v, panicking on a topology error (test set-up only).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
