package rendezvous

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/punch"
)

// fakeServer is a scripted rendezvous server for client tests: it answers
// hello and join as the real one does (with the test secret), then hands the
// control connection to its script; relay connections go to relay.
type fakeServer struct {
	addr string
	mu   sync.Mutex
	wg   sync.WaitGroup
	open map[net.Conn]bool
}

// fakeMember is a joined control connection of a fakeServer.
type fakeMember struct {
	c  net.Conn
	br *bufio.Reader
	j  join
}

func (m *fakeMember) send(msg message) { writeMessage(m.c, msg) }

// drain reads (and ignores) what the client sends until the connection ends.
func (m *fakeMember) drain() {
	for {
		if _, err := readMessage(m.br, maxClientLoad); err != nil {
			return
		}
	}
}

// table is a peer table of world members in which rank is this member and
// every other rank an endpoint that refuses connections.
func (m *fakeMember) table(world, rank int) peers {
	var p peers
	for r := range world {
		e := peerEntry{Observed: netip.MustParseAddrPort("127.0.0.1:9")}
		if r == rank {
			e = peerEntry{Observed: addrPortOf(m.c.RemoteAddr()), Private: m.j.Private}
		}
		p.Members = append(p.Members, e)
	}
	return p
}

// startFakeServer serves until the test ends, then closes every connection
// and waits for its scripts.
func startFakeServer(t testing.TB, pingInterval time.Duration, script func(*fakeMember),
	relay func(net.Conn, relayHello)) *fakeServer {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakeServer{addr: ln.Addr().String(), open: map[net.Conn]bool{}}
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for c := range f.open {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.open[c] = true
			f.mu.Unlock()
			f.wg.Go(func() {
				defer func() {
					c.Close()
					f.mu.Lock()
					delete(f.open, c)
					f.mu.Unlock()
				}()
				f.serve(c, pingInterval, script, relay)
			})
		}
	})
	return f
}

func (f *fakeServer) serve(c net.Conn, pingInterval time.Duration, script func(*fakeMember), relay func(net.Conn, relayHello)) {
	br := bufio.NewReader(c)
	msg, err := readMessage(br, maxClientLoad)
	if err != nil {
		return
	}
	if rh, ok := msg.(relayHello); ok {
		if relay != nil {
			relay(c, rh)
		}
		return
	}
	if script == nil {
		c.Read(make([]byte, 1)) // silent until the client or the test ends
		return
	}
	nonce := newNonce()
	writeMessage(c, challenge{Nonce: nonce, PingInterval: pingInterval})
	if msg, err = readMessage(br, maxClientLoad); err != nil {
		return
	}
	j, ok := msg.(join)
	if !ok {
		return
	}
	key, _ := jobKey(testSecret, j.Job)
	writeMessage(c, joined{World: j.World, Joined: 1, MAC: joinedMAC(key, j.ClientNonce, nonce, j.World, 1)})
	script(&fakeMember{c: c, br: br, j: j})
}

// relayAsPeer plays the relay and the peer at once: it answers relay-ready
// and runs the peer's side of the end-to-end handshake (a server holds the
// secret), then holds the link until the client closes it.
func relayAsPeer(c net.Conn, rh relayHello) {
	writeMessage(c, relayReady{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if punch.Handshake(ctx, c, punch.Identity{Secret: testSecret, Job: rh.Job, Rank: rh.Peer}, rh.Rank) == nil {
		c.Read(make([]byte, 1))
	}
}
