package rendezvous

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
)

// scaleMember is one protocol client of TestScaleJobsMetrics: it joins,
// waits, reports every pair (failed for the pairs in relayed, linked on
// its LAN for the others), moves payload bytes through the server for
// every relayed pair, says done and closes.
type scaleMember struct {
	addr, job string
	world     int
	rank      int      // asked for; -1: any
	relayed   [][2]int // pairs (lower rank first) this job relays
	bytes     int      // per direction of a relayed pair
	joined    func()   // called once the server accepted the join
	c         net.Conn // the control connection
	br        *bufio.Reader
	key       []byte
}

func (m *scaleMember) relays(a, b int) bool {
	for _, p := range m.relayed {
		if p == [2]int{min(a, b), max(a, b)} {
			return true
		}
	}
	return false
}

// dial connects to the server, with ctx's deadline on the connection.
func (m *scaleMember) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", m.addr)
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	return c, nil
}

func (m *scaleMember) run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("job %s rank %d: %w", m.job, m.rank, err)
		}
	}()
	c, err := m.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	m.c, m.br = c, bufio.NewReaderSize(c, 512)
	if m.key, err = jobKey(testSecret, m.job); err != nil {
		return err
	}
	if err := writeMessage(c, hello{}); err != nil {
		return err
	}
	msg, err := readMessage(m.br, MaxPayload)
	if err != nil {
		return err
	}
	ch, ok := msg.(challenge)
	if !ok {
		return fmt.Errorf("got %#v, want challenge", msg)
	}
	j := join{Echo: ch.Nonce, ClientNonce: newNonce(), Job: m.job, World: m.world, Rank: m.rank,
		Private: []netip.AddrPort{addrPortOf(c.LocalAddr())}}
	signJoin(m.key, &j)
	if err := writeMessage(c, j); err != nil {
		return err
	}
	rank, decided := -1, 0
	var g errgroup.Group
	for decided < m.world-1 {
		msg, err := readMessage(m.br, MaxPayload)
		if err != nil {
			return fmt.Errorf("after %d verdicts: %w", decided, err)
		}
		switch msg := msg.(type) {
		case ping:
			if err := writeMessage(c, pong{Seq: msg.Seq}); err != nil {
				return err
			}
		case joined:
			if msg.MAC != joinedMAC(m.key, j.ClientNonce, j.Echo, m.world, msg.Joined) {
				return fmt.Errorf("joined MAC does not verify")
			}
			m.joined()
		case peers:
			if len(msg.Members) != m.world {
				return fmt.Errorf("peer table of %d members", len(msg.Members))
			}
		case start:
			rank = msg.Rank
			if m.rank >= 0 && rank != m.rank {
				return fmt.Errorf("asked for rank %d, got %d", m.rank, rank)
			}
			for p := 0; p < m.world; p++ {
				if p == rank {
					continue
				}
				o := outcomeLAN
				if m.relays(rank, p) && rank < p { // one side fails: the pair is relayed
					o = outcomeFailed
				}
				if err := writeMessage(c, report{Peer: p, Outcome: o}); err != nil {
					return err
				}
			}
		case verdict:
			decided++
			want := TierDirect
			if m.relays(rank, msg.Peer) {
				want = TierRelay
			}
			if msg.Tier != want {
				return fmt.Errorf("verdict %v for peer %d, want %v", msg.Tier, msg.Peer, want)
			}
			if msg.Tier == TierRelay {
				g.Go(func() error { return m.relay(ctx, rank, msg.Peer, msg.Nonce) })
			}
		default:
			return fmt.Errorf("unexpected %#v", msg)
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return writeMessage(c, done{})
}

// relay opens the relay connection to peer and checks that the bytes each
// side sends arrive intact.
func (m *scaleMember) relay(ctx context.Context, rank, peer int, ticket [nonceSize]byte) error {
	c, err := m.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	rh := relayHello{Job: m.job, Rank: rank, Peer: peer, Nonce: ticket}
	signRelay(m.key, &rh)
	if err := writeMessage(c, rh); err != nil {
		return err
	}
	msg, err := readMessage(c, MaxPayload)
	if err != nil {
		return fmt.Errorf("relay to %d: %w", peer, err)
	}
	if _, ok := msg.(relayReady); !ok {
		return fmt.Errorf("relay to %d: got %#v, want relay-ready", peer, msg)
	}
	werr := make(chan error, 1)
	go func() { _, err := c.Write(payload(rank, peer, m.bytes)); werr <- err }()
	got := make([]byte, m.bytes)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("relay from %d: %w", peer, err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("relay to %d: %w", peer, err)
	}
	if !bytes.Equal(got, payload(peer, rank, m.bytes)) {
		return fmt.Errorf("relay from %d: corrupt bytes", peer)
	}
	return nil
}

// promValue returns the value of one sample of the Prometheus text.
func promValue(t *testing.T, text, sample string) int64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(t, err, line)
			return n
		}
	}
	t.Fatalf("no sample %s in\n%s", sample, text)
	return 0
}

// TestScaleJobsMetrics: 2000 members of 500 jobs join at once over
// loopback (ranks asked for and assigned mixed, one relayed pair in every
// fifth job): every job completes, a waiting member costs a bounded amount
// of memory, nothing is left behind once every client closed, and the
// metrics, as counters and as Prometheus text, say what happened.
func TestScaleJobsMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping 2000 concurrent clients")
	}
	const (
		jobs, world = 500, 4
		relayEvery  = 5
		relayBytes  = 16 << 10
		waiting     = jobs * (world - 1)
	)
	goroutinesBefore := runtime.NumGoroutine()
	// The members report every pair as soon as they read their start, but
	// a pair whose two reports have not both reached the server by the
	// start + punch timeout + 1 s is relayed (job.decideRemaining). With
	// the default 3 s, 500 jobs starting at once under -race on a loaded
	// 2-core machine missed it ("verdict relay for peer 2, want direct"):
	// give the reports the test's whole time instead.
	srv := startLoopServer(t, WithDefaultPunchTimeout(30*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	var joinedWG sync.WaitGroup
	var g errgroup.Group
	launch := func(j, r int) {
		m := &scaleMember{addr: srv.addr, job: fmt.Sprintf("scale-%d", j), world: world, rank: r,
			bytes: relayBytes, joined: joinedWG.Done}
		if r%2 == 1 {
			m.rank = -1 // the server assigns it
		}
		if j%relayEvery == 0 {
			m.relayed = [][2]int{{0, 1}}
		}
		joinedWG.Add(1)
		g.Go(func() error { return m.run(ctx) })
	}
	// Three members of every job join and wait.
	memBefore := memInUse()
	for j := 0; j < jobs; j++ {
		for r := 0; r < world-1; r++ {
			launch(j, r)
		}
	}
	joinedWG.Wait()
	require.Equal(t, int64(waiting), srv.Metrics().Members)
	perMember := float64(memInUse()-memBefore) / waiting
	goroutinesPer := float64(runtime.NumGoroutine()-goroutinesBefore) / waiting
	t.Logf("%d waiting members: %.0f bytes and %.1f goroutines each (server and test client together)",
		waiting, perMember, goroutinesPer)
	// The server's two goroutines and buffers, the client's goroutine,
	// buffers and both socket ends.
	assert.Less(t, perMember, 48e3)
	assert.Less(t, goroutinesPer, 3.5)

	// The last member of every job: every job completes.
	for j := 0; j < jobs; j++ {
		launch(j, world-1)
	}
	require.NoError(t, g.Wait())

	require.Eventually(t, func() bool {
		m := srv.Metrics()
		return m.Jobs == 0 && m.Connections == 0 && m.RelaysActive == 0
	}, 20*time.Second, 10*time.Millisecond)
	relayed := int64(jobs / relayEvery)
	pairs := int64(jobs * world * (world - 1) / 2)
	m := srv.Metrics()
	assert.Equal(t, int64(0), m.Members)
	assert.Equal(t, int64(jobs*world), m.Joins)
	assert.Equal(t, map[string]int64{"complete": jobs, "timeout": 0, "member_left": 0, "abandoned": 0, "shutdown": 0}, m.JobsEnded)
	assert.Equal(t, int64(0), m.Evictions)
	assert.Equal(t, pairs, m.PunchAttempts)
	assert.Equal(t, map[Tier]int64{TierDirect: pairs - relayed, TierPunched: 0, TierRelay: relayed}, m.Pairs)
	assert.Equal(t, relayed, m.RelaysTotal)
	assert.Equal(t, int64(0), m.RelayFailures)
	assert.Equal(t, relayed*2*relayBytes, m.RelayBytes)
	assert.Empty(t, m.Rejected)

	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	for sample, want := range map[string]int64{
		"fnmesh_rendezvous_connections":                             0,
		"fnmesh_rendezvous_jobs":                                    0,
		"fnmesh_rendezvous_members":                                 0,
		"fnmesh_rendezvous_joins_total":                             jobs * world,
		`fnmesh_rendezvous_jobs_ended_total{outcome="complete"}`:    jobs,
		`fnmesh_rendezvous_jobs_ended_total{outcome="member_left"}`: 0,
		"fnmesh_rendezvous_evictions_total":                         0,
		"fnmesh_rendezvous_punch_attempts_total":                    pairs,
		`fnmesh_rendezvous_pairs_total{tier="direct"}`:              pairs - relayed,
		`fnmesh_rendezvous_pairs_total{tier="relay"}`:               relayed,
		"fnmesh_rendezvous_relays_active":                           0,
		"fnmesh_rendezvous_relays_total":                            relayed,
		"fnmesh_rendezvous_relay_failures_total":                    0,
		"fnmesh_rendezvous_relay_bytes_total":                       relayed * 2 * relayBytes,
		`fnmesh_rendezvous_rejected_total{code="overloaded"}`:       0,
	} {
		assert.Equal(t, want, promValue(t, text, sample), sample)
	}

	// Nothing of the 2000 members is left on the server: only its accept
	// loop, its UDP loop and Serve itself run.
	assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutinesBefore+4 }, 10*time.Second, 10*time.Millisecond,
		"goroutines: %d before, %d now", goroutinesBefore, runtime.NumGoroutine())
	srv.stop(t)
	assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutinesBefore+1 }, 10*time.Second, 10*time.Millisecond,
		"goroutines after shutdown: %d before, %d now", goroutinesBefore, runtime.NumGoroutine())
}
