package rendezvous

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fnmesh/fnmesh/punch"
)

// BenchmarkMeshSetup measures the virtual time a whole mesh takes to set up
// over netsim (20 ms per internet link, mixed NATs, punch timeout 1 s): each
// iteration runs TestMeshSetupWorker in a child process, because only a test
// can open a synctest bubble. ns/op is the wall time of one simulated setup.
func BenchmarkMeshSetup(b *testing.B) {
	for _, world := range []int{16, 64} {
		b.Run(fmt.Sprintf("ranks=%d", world), func(b *testing.B) {
			var total float64
			n := 0
			for b.Loop() {
				cmd := exec.Command(os.Args[0], "-test.run=^TestMeshSetupWorker$", "-test.count=1")
				cmd.Env = append(os.Environ(), "FNMESH_MESH_WORLD="+strconv.Itoa(world))
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("mesh setup worker: %v\n%s", err, out)
				}
				v, ok := parseVirtualSetup(string(out))
				if !ok {
					b.Fatalf("no virtual-setup-seconds in the worker's output:\n%s", out)
				}
				total += v
				n++
			}
			b.ReportMetric(total/float64(n), "virtual-s/setup")
			b.ReportMetric(float64(world*(world-1)/2), "links")
		})
	}
}

func parseVirtualSetup(out string) (float64, bool) {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "virtual-setup-seconds "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// BenchmarkLinkThroughput streams bytes one way over a link on loopback:
// "direct" is a link Join made (a plain TCP connection between the two
// punch ports), "relay" is the same traffic through the server's relay
// (client, server splice, client), set up over the protocol.
func BenchmarkLinkThroughput(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		srv := startLoopServer(b)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		meshes, err := joinAll(ctx, b, srv.addr, "bench-direct", 2, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer closeMeshes(meshes)
		if tier := meshes[0].Links[1].Tier; tier != TierDirect {
			b.Fatalf("tier %v", tier)
		}
		stream(b, meshes[0].Links[1].Conn, meshes[1].Links[0].Conn)
	})
	b.Run("relay", func(b *testing.B) {
		srv := startLoopServer(b)
		src, dst := relayPair(b, srv.addr)
		stream(b, src, dst)
		if got := srv.Metrics().RelayBytes; got == 0 {
			b.Fatal("no bytes went through the relay")
		}
	})
}

// stream writes b.N chunks of 1 MiB from src while dst reads them.
func stream(b *testing.B, src, dst net.Conn) {
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	var got atomic.Int64
	done := make(chan error, 1)
	go func() {
		rbuf := make([]byte, chunk)
		var n int64
		for {
			k, err := dst.Read(rbuf)
			n += int64(k)
			if err != nil {
				got.Store(n)
				if err == io.EOF {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	b.SetBytes(chunk)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := src.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	src.(interface{ CloseWrite() error }).CloseWrite()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if got.Load() != int64(b.N)*chunk {
		b.Fatalf("got %d bytes, sent %d", got.Load(), int64(b.N)*chunk)
	}
}

// relayPair sets up a relayed pair over the protocol and returns the two
// relay connections, spliced by the server.
func relayPair(b *testing.B, addr string) (net.Conn, net.Conn) {
	_, _, va, vc := relayedPair(b, addr, "bench-relay")
	key, _ := jobKey(testSecret, "bench-relay")
	open := func(rank, peer int, ticket [nonceSize]byte) net.Conn {
		r := dialRelayRaw(b, addr)
		rh := relayHello{Job: "bench-relay", Rank: rank, Peer: peer, Nonce: ticket}
		signRelay(key, &rh)
		r.send(rh)
		r.c.SetDeadline(time.Time{})
		return r.c
	}
	ra, rc := open(0, 1, va.Nonce), open(1, 0, vc.Nonce)
	for _, r := range []net.Conn{ra, rc} {
		r.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, err := readMessage(r, MaxPayload)
		if _, ok := m.(relayReady); !ok || err != nil {
			b.Fatalf("relay not ready: %#v %v", m, err)
		}
		r.SetReadDeadline(time.Time{})
	}
	return ra, rc
}

// dialRelayRaw dials the server as Join's relay link does (through the punch
// port's network): the links' congestion control is set before connect.
func dialRelayRaw(b *testing.B, addr string) *rawClient {
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return punch.SetCongestionControl(rawSocket{rc}, punch.DefaultCongestionControl)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return &rawClient{t: b, c: c, br: bufio.NewReader(c)}
}

// rawSocket presents a socket being set up as a syscall.Conn.
type rawSocket struct{ rc syscall.RawConn }

func (s rawSocket) SyscallConn() (syscall.RawConn, error) { return s.rc, nil }

// BenchmarkJoins measures how many joins per second the server completes:
// jobs of two members over the protocol (hello, challenge, join, joined,
// peer table, start, reports, verdicts, done), 32 jobs at a time.
func BenchmarkJoins(b *testing.B) {
	srv := startLoopServer(b)
	var seq atomic.Int64
	b.SetParallelism(16) // x GOMAXPROCS goroutines, each running one job at a time
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			job := fmt.Sprintf("bench-%d", seq.Add(1))
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for r := 0; r < 2; r++ {
				wg.Add(1)
				go func() { defer wg.Done(); errs[r] = rawMember(srv.addr, job, 2, r) }()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					b.Error(err)
				}
			}
		}
	})
	b.ReportMetric(float64(2*b.N)/time.Since(start).Seconds(), "joins/s")
}

// BenchmarkWaitingClientMemory measures the memory a member costs while it
// waits for its job to fill: 2000 members join a job that never completes.
// The figure includes the benchmark's own client sockets (a few hundred
// bytes each), so it is an upper bound for the server.
func BenchmarkWaitingClientMemory(b *testing.B) {
	const clients = 2000
	for b.Loop() {
		srv := startLoopServer(b)
		before := memInUse()
		conns := make([]net.Conn, 0, clients)
		for i := 0; i < clients; i++ {
			c, err := waitingMember(srv.addr, "memory", clients+1)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		for srv.Metrics().Members < clients {
			time.Sleep(time.Millisecond)
		}
		after := memInUse()
		b.ReportMetric(float64(after-before)/clients, "bytes/client")
		for _, c := range conns {
			c.Close()
		}
		srv.stop(b)
	}
}

// waitingMember joins job and returns the open connection.
func waitingMember(addr, job string, world int) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(c, 64)
	key, _ := jobKey(testSecret, job)
	writeMessage(c, hello{})
	m, err := readMessage(br, MaxPayload)
	if err != nil {
		return nil, err
	}
	j := join{Echo: m.(challenge).Nonce, ClientNonce: newNonce(), Job: job, World: world, Rank: -1,
		Private: []netip.AddrPort{addrPortOf(c.LocalAddr())}}
	signJoin(key, &j)
	writeMessage(c, j)
	if _, err := readMessage(br, MaxPayload); err != nil {
		return nil, err
	}
	return c, nil
}

func memInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}
