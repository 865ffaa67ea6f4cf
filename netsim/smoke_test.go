package netsim

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSmokePublicEcho(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		srv := must(in.AddHost(addr("203.0.113.10"), WithLink(Link{Latency: 10 * time.Millisecond})))
		cli := must(in.AddHost(addr("203.0.113.20"), WithLink(Link{Latency: 5 * time.Millisecond})))
		ln := echoServer(t, srv, 80)
		defer ln.Close()
		start := time.Now()
		c, err := cli.DialTCP(context.Background(), ap("0.0.0.0:0"), ap("203.0.113.10:80"))
		require.NoError(t, err)
		require.Equal(t, 30*time.Millisecond, time.Since(start))
		_, err = c.Write([]byte("hello"))
		require.NoError(t, err)
		buf := make([]byte, 5)
		_, err = io.ReadFull(c, buf)
		require.NoError(t, err)
		require.Equal(t, "hello", string(buf))
		require.Equal(t, 60*time.Millisecond, time.Since(start))
		require.NoError(t, c.Close())
	})
}

func TestSmokeNAT(t *testing.T) {
	bubble(t, func(t *testing.T, in *Internet) {
		srv := must(in.AddHost(addr("203.0.113.10")))
		nat := must(in.AddNAT(addr("198.51.100.1"), HomeRouter))
		cli := must(nat.AddHost(addr("198.18.0.2")))
		stop := observer(t, srv, 3478)
		defer stop()
		got := observeTCP(t, cli, ap("0.0.0.0:4000"), ap("203.0.113.10:3478"))
		require.Equal(t, ap("198.51.100.1:4000"), got)
	}, WithTraceWriter(testWriter{t}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b[:len(b)-1])); return len(b), nil }
