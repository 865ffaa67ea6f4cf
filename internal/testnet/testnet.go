// Package testnet holds what tests of several fnmesh packages need from the
// real network: a loopback TCP connection, both ends. It is for tests only,
// reaches nothing but 127.0.0.1, and imports nothing of fnmesh's, so any
// layer's tests may use it.
package testnet

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TCPPair returns the two ends of a TCP connection on 127.0.0.1: the one
// that dialed and the one that was accepted. Both are closed when the test
// ends.
func TCPPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	client, err = net.Dial("tcp4", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	select {
	case a := <-ch:
		require.NoError(t, a.err)
		server = a.c
	case <-time.After(10 * time.Second):
		t.Fatal("testnet: the loopback listener accepted nothing in 10 s")
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}
