package rendezvous

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fnmesh/fnmesh/punch"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
)

// TestServerRejects sends the server bad input of every kind on a fresh
// connection: each gets an error frame with the right code and a closed
// connection, and the server keeps serving.
func TestServerRejects(t *testing.T) {
	srv := startLoopServer(t, WithHandshakeTimeout(300*time.Millisecond))
	header := func(version, typ byte, n uint32) []byte {
		b := []byte{'F', 'M', version, typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[4:], n)
		return b
	}
	tests := []struct {
		name string
		run  func(r *rawClient)
		code Code
	}{
		{"garbage", func(r *rawClient) { r.sendBytes([]byte("GET / HTTP/1.1\r\n")) }, CodeMalformed},
		{"future version", func(r *rawClient) { r.sendBytes(header(ProtoVersion+1, 1, 0)) }, CodeVersion},
		{"version 1 client", func(r *rawClient) { r.sendBytes(header(1, byte(typeHello), 0)) }, CodeVersion},
		{"oversized first frame", func(r *rawClient) { r.sendBytes(header(ProtoVersion, byte(typeHello), 1<<20)) }, CodeTooLarge},
		{"unknown type", func(r *rawClient) { r.sendBytes(header(ProtoVersion, 0x77, 0)) }, CodeMalformed},
		{"truncated frame", func(r *rawClient) {
			r.sendBytes(header(ProtoVersion, byte(typeHello), 4)[:8])
			r.sendBytes([]byte{1})
			r.c.(*net.TCPConn).CloseWrite()
		}, CodeMalformed},
		{"join before hello", func(r *rawClient) { r.send(r.joinMsg("j", 2, -1, testSecret)) }, CodeBadRequest},
		{"silence", func(r *rawClient) {}, CodeTimeout},
		{"silence after hello", func(r *rawClient) { r.hello() }, CodeTimeout},
		{"wrong secret", func(r *rawClient) {
			r.hello()
			r.send(r.joinMsg("j", 2, -1, []byte("not the secret")))
		}, CodeAuth},
		{"tampered join", func(r *rawClient) {
			r.hello()
			j := r.joinMsg("j", 2, -1, testSecret)
			j.World = 3 // the MAC covered world 2
			r.send(j)
		}, CodeAuth},
		{"oversized join", func(r *rawClient) {
			r.hello()
			r.sendBytes(header(ProtoVersion, byte(typeJoin), maxClientLoad+1))
		}, CodeTooLarge},
		{"malformed join", func(r *rawClient) {
			r.hello()
			r.sendBytes(append(header(ProtoVersion, byte(typeJoin), 3), 1, 2, 3))
		}, CodeMalformed},
		{"rank out of range", func(r *rawClient) {
			r.hello()
			r.send(r.joinMsg("j", 2, 2, testSecret))
		}, CodeBadRequest},
		{"second hello", func(r *rawClient) {
			r.hello()
			r.send(hello{})
		}, CodeBadRequest},
		{"relay for no job", func(r *rawClient) {
			rh := relayHello{Job: "nope", Rank: 0, Peer: 1, Nonce: newNonce()}
			key, _ := jobKey(testSecret, "nope")
			signRelay(key, &rh)
			r.send(rh)
		}, CodeReplay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, srv.addr)
			tt.run(r)
			r.expectError(tt.code)
		})
	}
	t.Run("replayed join", func(t *testing.T) {
		// A join captured on one connection is sent again on another:
		// it answers the first connection's challenge.
		first := dialRaw(t, srv.addr)
		first.hello()
		captured := first.joinMsg("replay", 2, -1, testSecret)
		first.c.Close()
		r := dialRaw(t, srv.addr)
		r.hello()
		r.send(captured)
		r.expectError(CodeReplay)
	})
	t.Run("replayed join on its own connection", func(t *testing.T) {
		r := dialRaw(t, srv.addr)
		r.join("replay-same", 2, -1)
		r.send(r.joinMsg("replay-same", 2, -1, testSecret))
		r.expectError(CodeBadRequest)
	})
	t.Run("server still serves", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		meshes, err := joinAll(ctx, t, srv.addr, "after-rejects", 2, nil)
		require.NoError(t, err)
		closeMeshes(meshes)
	})
	m := srv.Metrics()
	assert.Positive(t, m.Rejected[CodeMalformed])
	assert.Positive(t, m.Rejected[CodeAuth])
	assert.Positive(t, m.Rejected[CodeReplay])
	assert.Positive(t, m.Rejected[CodeTooLarge])
}

// TestServerRanksAndPeerTable checks rank assignment (asked-for ranks kept,
// the others filled in join order) and the peer table every member gets.
func TestServerRanksAndPeerTable(t *testing.T) {
	srv := startLoopServer(t)
	asks := []int{2, -1, -1, 0} // members in join order
	var rs []*rawClient
	for _, rank := range asks {
		r := dialRaw(t, srv.addr)
		r.join("ranks", len(asks), rank)
		rs = append(rs, r)
	}
	wantRank := []int{2, 1, 3, 0}
	var table []peerEntry
	for i, r := range rs {
		p, s := r.started()
		assert.Equal(t, wantRank[i], s.Rank, "member %d", i)
		assert.Equal(t, DefaultPunchTimeout, s.PunchTimeout)
		assert.Equal(t, DefaultRelayTimeout, s.RelayTimeout)
		assert.Less(t, s.Delay, time.Second)
		if table == nil {
			table = p.Members
		}
		assert.Equal(t, table, p.Members, "every member gets the same table")
	}
	require.Len(t, table, 4)
	for i, r := range rs {
		e := table[wantRank[i]]
		assert.Equal(t, r.local(), e.Observed, "observed endpoint of member %d", i)
		assert.Equal(t, []netip.AddrPort{r.local()}, e.Private)
		assert.False(t, e.Public.IsValid())
	}
}

// TestSlowJoinDoesNotDelayStart: a member that answers its challenge late
// (a retransmitted join, or a client that was descheduled) must not hold
// the whole job's punch back by half that delay. Over OS sockets the server
// takes the kernel's own round trip, which the slow answer does not inflate.
func TestSlowJoinDoesNotDelayStart(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the kernel's round-trip sample (TCP_INFO) is read on Linux only")
	}
	const late = 600 * time.Millisecond
	srv := startLoopServer(t)
	fast := dialRaw(t, srv.addr)
	fast.join("slow-join", 2, 0)
	slow := dialRaw(t, srv.addr)
	slow.hello()
	time.Sleep(late)
	slow.send(slow.joinMsg("slow-join", 2, 1, testSecret))
	_, ok := slow.mustRecv().(joined)
	require.True(t, ok, "want joined")
	for name, r := range map[string]*rawClient{"fast": fast, "slow": slow} {
		_, st := r.started()
		assert.Less(t, st.Delay, late/4, "%s member's start delay: the late join's %v counted as a round trip", name, late)
	}
}

func TestServerRankConflicts(t *testing.T) {
	srv := startLoopServer(t)
	a := dialRaw(t, srv.addr)
	a.join("conflict", 3, 1)
	b := dialRaw(t, srv.addr)
	b.hello()
	b.send(b.joinMsg("conflict", 3, 1, testSecret))
	e := b.expectError(CodeBadRequest)
	assert.Equal(t, 1, e.Rank)
	assert.Contains(t, e.Msg, "rank 1")

	c := dialRaw(t, srv.addr)
	c.hello()
	c.send(c.joinMsg("conflict", 4, -1, testSecret))
	e = c.expectError(CodeBadRequest)
	assert.Contains(t, e.Msg, "world size 3, not 4")

	// The first member left while waiting: its rank is free again.
	a.c.Close()
	require.Eventually(t, func() bool { return srv.Metrics().Members == 0 }, 5*time.Second, 10*time.Millisecond)
	d := dialRaw(t, srv.addr)
	d.join("conflict", 3, 1)
	assert.Equal(t, int64(1), srv.Metrics().Members)
}

// TestJoinFailsWhenMemberLeaves: once the job has started, a member that
// disconnects makes every other member's Join fail with an error naming it.
func TestJoinFailsWhenMemberLeaves(t *testing.T) {
	srv := startLoopServer(t, WithDefaultPunchTimeout(5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			m, err := Join(ctx, srv.addr, "leaver", 3, testSecret)
			if m != nil {
				m.Close()
			}
			errs <- err
		}()
	}
	// The third member joins with rank 2, waits for the start, and leaves
	// without punching (its peers' punches then never succeed).
	r := dialRaw(t, srv.addr)
	require.Eventually(t, func() bool { return srv.Metrics().Members == 2 }, 5*time.Second, 5*time.Millisecond)
	r.join("leaver", 3, 2)
	r.started()
	r.c.Close()
	for i := 0; i < 2; i++ {
		err := <-errs
		require.Error(t, err)
		assert.True(t, errors.Is(err, ErrMemberLeft), "error %v", err)
		var e *Error
		require.True(t, errors.As(err, &e))
		assert.Equal(t, 2, e.Rank)
		assert.Contains(t, err.Error(), "rank 2 left job \"leaver\"")
	}
	m := srv.Metrics()
	assert.Equal(t, int64(1), m.Evictions)
	assert.Equal(t, int64(1), m.JobsEnded["member_left"])
	assert.Equal(t, int64(0), m.Jobs)
	assert.Equal(t, int64(0), m.Members)
}

func TestJoinTimesOut(t *testing.T) {
	srv := startLoopServer(t, WithJobTimeout(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Join(ctx, srv.addr, "lonely", 3, testSecret)
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrJobTimeout), "error %v", err)
	assert.Contains(t, err.Error(), "1 of 3 members joined")
	assert.Equal(t, int64(1), srv.Metrics().JobsEnded["timeout"])
}

// TestJoinContextCancelled: a cancelled Join returns promptly and its
// member leaves the waiting job.
func TestJoinContextCancelled(t *testing.T) {
	srv := startLoopServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := Join(ctx, srv.addr, "cancelled", 2, testSecret); done <- err }()
	require.Eventually(t, func() bool { return srv.Metrics().Members == 1 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("Join did not return after its context was cancelled")
	}
	require.Eventually(t, func() bool { return srv.Metrics().Jobs == 0 }, 5*time.Second, 5*time.Millisecond)
}

// TestSilentMemberEvicted: a member that stops answering pings is dropped.
func TestSilentMemberEvicted(t *testing.T) {
	srv := startLoopServer(t, WithPingInterval(50*time.Millisecond))
	r := dialRaw(t, srv.addr)
	r.join("silent", 2, -1) // and never reads again
	require.Eventually(t, func() bool { return srv.Metrics().Members == 0 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, int64(1), srv.Metrics().JobsEnded["abandoned"])
}

func TestJoinWrongSecret(t *testing.T) {
	srv := startLoopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Join(ctx, srv.addr, "j", 2, []byte("a different secret"))
	require.Error(t, err)
	assert.True(t, errors.Is(err, &Error{Code: CodeAuth}), "error %v", err)
}

// TestRelayProtocol drives a pair through the relay by hand: both report a
// failed punch, get relay tickets, connect, and their bytes are spliced.
// A replayed relay-hello is refused.
func TestRelayProtocol(t *testing.T) {
	srv := startLoopServer(t)
	a, b, va, vb := relayedPair(t, srv.addr, "relay")
	require.Equal(t, TierRelay, va.Tier)
	require.Equal(t, TierRelay, vb.Tier)
	require.NotEqual(t, va.Nonce, vb.Nonce)
	b.send(report{Peer: 0, Outcome: outcomePublic}) // late: the pair is decided

	key, _ := jobKey(testSecret, "relay")
	hello := func(rank, peer int, nonce [nonceSize]byte) relayHello {
		rh := relayHello{Job: "relay", Rank: rank, Peer: peer, Nonce: nonce}
		signRelay(key, &rh)
		return rh
	}
	ra, rb := dialRaw(t, srv.addr), dialRaw(t, srv.addr)
	ra.send(hello(0, 1, va.Nonce))
	// b presents a's ticket: refused, and the slot still waits for b.
	bad := dialRaw(t, srv.addr)
	bad.send(hello(1, 0, va.Nonce))
	bad.expectError(CodeReplay)
	rb.send(hello(1, 0, vb.Nonce))
	require.IsType(t, relayReady{}, ra.mustRecv())
	require.IsType(t, relayReady{}, rb.mustRecv())

	// Replaying a used ticket is refused.
	replay := dialRaw(t, srv.addr)
	replay.send(hello(0, 1, va.Nonce))
	replay.expectError(CodeReplay)

	// Bytes flow both ways, and a half close passes through.
	msgA, msgB := []byte(strings.Repeat("a->b ", 10000)), []byte(strings.Repeat("b->a ", 7000))
	var g errgroup.Group
	g.Go(func() error { _, err := ra.c.Write(msgA); ra.c.(*net.TCPConn).CloseWrite(); return err })
	g.Go(func() error { _, err := rb.c.Write(msgB); rb.c.(*net.TCPConn).CloseWrite(); return err })
	gotB, err := io.ReadAll(rb.br)
	require.NoError(t, err)
	gotA, err := io.ReadAll(ra.br)
	require.NoError(t, err)
	require.NoError(t, g.Wait())
	assert.Equal(t, msgA, gotB)
	assert.Equal(t, msgB, gotA)

	a.send(done{})
	b.send(done{})
	require.Eventually(t, func() bool { return srv.Metrics().Jobs == 0 }, 5*time.Second, 5*time.Millisecond)
	m := srv.Metrics()
	assert.Equal(t, int64(len(msgA)+len(msgB)), m.RelayBytes)
	assert.Equal(t, int64(1), m.RelaysTotal)
	assert.Equal(t, int64(1), m.Pairs[TierRelay])
	assert.Equal(t, int64(1), m.JobsEnded["complete"])
}

// TestRelayPartnerMissing: a relay connection whose partner never comes
// gets a timeout error naming the partner.
func TestRelayPartnerMissing(t *testing.T) {
	srv := startLoopServer(t, WithRelayTimeout(200*time.Millisecond))
	_, _, va, _ := relayedPair(t, srv.addr, "alone")
	key, _ := jobKey(testSecret, "alone")
	rh := relayHello{Job: "alone", Rank: 0, Peer: 1, Nonce: va.Nonce}
	signRelay(key, &rh)
	ra := dialRaw(t, srv.addr)
	ra.send(rh)
	e := ra.expectError(CodeRelay)
	assert.Equal(t, 1, e.Rank)
	assert.Contains(t, e.Msg, "rank 1 did not connect")
	assert.Equal(t, int64(1), srv.Metrics().RelayFailures)
}

func TestServerSTUN(t *testing.T) {
	srv := startLoopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := net.Dial("tcp4", srv.addr)
	require.NoError(t, err)
	defer c.Close()
	for i := 0; i < 2; i++ { // two requests on one stream
		got, err := punch.DiscoverConn(ctx, c)
		require.NoError(t, err)
		assert.Equal(t, addrPortOf(c.LocalAddr()), got)
	}

	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	got, err := punch.DiscoverPacket(ctx, pc, srv.ap)
	require.NoError(t, err)
	assert.Equal(t, addrPortOf(pc.LocalAddr()), got)

	// Not STUN over UDP: dropped (and counted), the server keeps answering.
	_, err = pc.WriteTo([]byte("hello?"), net.UDPAddrFromAddrPort(srv.ap))
	require.NoError(t, err)
	got, err = punch.DiscoverPacket(ctx, pc, srv.ap)
	require.NoError(t, err)
	assert.Equal(t, addrPortOf(pc.LocalAddr()), got)

	m := srv.Metrics()
	assert.Equal(t, int64(2), m.STUNRequests["tcp"])
	assert.Equal(t, int64(2), m.STUNRequests["udp"])
}

func TestHandler(t *testing.T) {
	srv := startLoopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	meshes, err := joinAll(ctx, t, srv.addr, "metrics", 3, nil)
	require.NoError(t, err)
	closeMeshes(meshes)
	require.Eventually(t, func() bool { return srv.Metrics().Jobs == 0 }, 5*time.Second, 5*time.Millisecond)

	h := httptest.NewServer(srv.Handler())
	defer h.Close()
	get := func(path string) (int, string, string) {
		resp, err := http.Get(h.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	code, _, body := get("/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)

	code, ctype, body := get("/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, ctype, "version=0.0.4")
	for _, line := range []string{
		"fnmesh_rendezvous_jobs 0",
		"fnmesh_rendezvous_joins_total 3",
		`fnmesh_rendezvous_jobs_ended_total{outcome="complete"} 1`,
		"fnmesh_rendezvous_punch_attempts_total 3",
		`fnmesh_rendezvous_pairs_total{tier="direct"} 3`,
		`fnmesh_rendezvous_pairs_total{tier="relay"} 0`,
		"fnmesh_rendezvous_relay_bytes_total 0",
		"# TYPE fnmesh_rendezvous_relay_bytes_total counter",
		"# TYPE fnmesh_rendezvous_members gauge",
	} {
		assert.Contains(t, body, line+"\n")
	}
	// Every sample line is "name{labels} value" with a HELP and TYPE before it.
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		require.Len(t, f, 2, "line %q", line)
		name, _, _ := strings.Cut(f[0], "{")
		assert.Contains(t, body, "# TYPE "+name+" ")
	}

	srv.stop(t)
	code, _, _ = get("/healthz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
}

// TestShutdownTellsWaitingMembers: a shutting-down server tells waiting
// members with an error and Serve returns nil.
func TestShutdownTellsWaitingMembers(t *testing.T) {
	srv := startLoopServer(t)
	r := dialRaw(t, srv.addr)
	r.join("shutdown", 2, -1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { _, err := Join(ctx, srv.addr, "shutdown2", 2, testSecret); errc <- err }()
	require.Eventually(t, func() bool { return srv.Metrics().Members == 2 }, 5*time.Second, 5*time.Millisecond)
	srv.stop(t)
	r.expectError(CodeShutdown)
	err := <-errc
	assert.True(t, errors.Is(err, &Error{Code: CodeShutdown}), "error %v", err)
}

// TestManyJobsAtOnce runs many jobs side by side, with thousands of
// protocol clients: every job completes with its own members only.
func TestManyJobsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping 2000 concurrent clients")
	}
	srv := startLoopServer(t)
	const jobs, world = 500, 4
	var wg sync.WaitGroup
	errs := make(chan error, jobs*world)
	for j := 0; j < jobs; j++ {
		for r := 0; r < world; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := rawMember(srv.addr, fmt.Sprintf("job-%d", j), world, r); err != nil {
					errs <- fmt.Errorf("job %d rank %d: %w", j, r, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Eventually(t, func() bool { return srv.Metrics().Jobs == 0 }, 10*time.Second, 10*time.Millisecond)
	m := srv.Metrics()
	assert.Equal(t, int64(jobs), m.JobsEnded["complete"])
	assert.Equal(t, int64(jobs*world), m.Joins)
	assert.Equal(t, int64(jobs*world*(world-1)/2), m.Pairs[TierDirect])
}

// rawMember joins a job over the protocol, reports every pair as linked on
// its LAN, waits for every verdict and says done: the server side of a
// whole job without sockets for links.
func rawMember(addr, job string, world, rank int) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	key, _ := jobKey(testSecret, job)
	if err := writeMessage(c, hello{}); err != nil {
		return err
	}
	m, err := readMessage(c, MaxPayload)
	if err != nil {
		return err
	}
	ch, ok := m.(challenge)
	if !ok {
		return fmt.Errorf("got %#v, want challenge", m)
	}
	j := join{Echo: ch.Nonce, ClientNonce: newNonce(), Job: job, World: world, Rank: rank,
		Private: []netip.AddrPort{addrPortOf(c.LocalAddr())}}
	signJoin(key, &j)
	if err := writeMessage(c, j); err != nil {
		return err
	}
	var verdicts []int
	for len(verdicts) < world-1 {
		m, err := readMessage(c, MaxPayload)
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case ping:
			writeMessage(c, pong{Seq: m.Seq})
		case joined, peers:
		case start:
			if m.Rank != rank {
				return fmt.Errorf("assigned rank %d", m.Rank)
			}
			for p := 0; p < world; p++ {
				if p != rank {
					writeMessage(c, report{Peer: p, Outcome: outcomeLAN})
				}
			}
		case verdict:
			if m.Tier != TierDirect {
				return fmt.Errorf("verdict %v for rank %d", m.Tier, m.Peer)
			}
			verdicts = append(verdicts, m.Peer)
		default:
			return fmt.Errorf("unexpected %#v", m)
		}
	}
	sort.Ints(verdicts)
	for i, p := range verdicts {
		if want := i + boolInt(i >= rank); p != want {
			return fmt.Errorf("verdicts for ranks %v", verdicts)
		}
	}
	return writeMessage(c, done{})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestJoinFailsWhenRelayPartnerMissing: a peer that is told to relay and
// never connects makes Join fail with an error naming it.
func TestJoinFailsWhenRelayPartnerMissing(t *testing.T) {
	srv := startLoopServer(t, WithRelayTimeout(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		m, err := Join(ctx, srv.addr, "no-partner", 2, testSecret, WithRank(0))
		if m != nil {
			m.Close()
		}
		errc <- err
	}()
	b := dialRaw(t, srv.addr)
	b.join("no-partner", 2, 1)
	b.started()
	b.send(report{Peer: 0, Outcome: outcomeFailed}) // and never opens its relay connection
	require.Equal(t, TierRelay, b.mustRecv().(verdict).Tier)
	err := <-errc
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rank 0: relay to rank 1")
	assert.True(t, errors.Is(err, &Error{Code: CodeRelay}), "error %v", err)
	assert.False(t, errors.Is(err, ErrJobTimeout))
}
