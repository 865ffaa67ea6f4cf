package netsim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestThousandConnections opens 1,000 connections at once from 100 hosts
// behind 10 home routers to one server, keeps them all open, and checks that
// every one echoes its own payload.
func TestThousandConnections(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		ctx := context.Background()
		srv := must(in.AddHost(addr("203.0.113.10"), WithLink(Link{Latency: 5 * time.Millisecond, Bandwidth: Gbps})))
		ln := echoServer(t, srv, 80)
		defer ln.Close()
		var hosts []*Host
		var nats []*NAT
		for i := 0; i < 10; i++ {
			n := must(in.AddNAT(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), HomeRouter,
				WithLink(Link{Latency: 20 * time.Millisecond, Jitter: 2 * time.Millisecond, Bandwidth: 100 * Mbps})))
			nats = append(nats, n)
			for j := 0; j < 10; j++ {
				hosts = append(hosts, must(n.AddHost(netip.AddrFrom4([4]byte{198, 18, byte(i), byte(j + 2)}))))
			}
		}
		const perHost = 10
		conns := make([]net.Conn, len(hosts)*perHost)
		var wg sync.WaitGroup
		errs := make(chan error, len(conns))
		start := time.Now()
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := hosts[i/perHost].DialTCP(ctx, netip.AddrPort{}, ap("203.0.113.10:80"))
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		assert.Equal(t, 50*time.Millisecond, time.Since(start).Round(10*time.Millisecond), "all connect in one round trip")
		for _, n := range nats {
			assert.Equal(t, 100, n.Stats().Mappings)
		}
		// All open at once; each echoes its own payload.
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg := bytes.Repeat([]byte(fmt.Sprintf("conn %04d;", i)), 100)
				if _, err := c.Write(msg); err != nil {
					t.Error(err)
					return
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(msg, got) {
					t.Errorf("conn %d: echo differs", i)
				}
				c.Close()
			}()
		}
		wg.Wait()
	})
}
