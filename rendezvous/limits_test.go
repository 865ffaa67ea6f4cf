package rendezvous

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// joinAsking joins job through r, asking for punch timeout pt.
func (r *rawClient) joinAsking(job string, world, rank int, pt time.Duration) {
	r.t.Helper()
	r.hello()
	j := r.joinMsg(job, world, rank, testSecret)
	j.PunchTimeout = pt
	key, err := jobKey(testSecret, job)
	require.NoError(r.t, err)
	signJoin(key, &j)
	r.send(j)
	m := r.mustRecv()
	_, ok := m.(joined)
	require.True(r.t, ok, "got %#v, want joined", m)
}

// jobDeadline returns how long the server's job has left before it times out.
func jobDeadline(t *testing.T, srv *loopServer, job string) time.Duration {
	t.Helper()
	srv.mu.Lock()
	j := srv.jobs[job]
	srv.mu.Unlock()
	require.NotNil(t, j, "job %q is not on the server", job)
	j.mu.Lock()
	defer j.mu.Unlock()
	return time.Until(j.deadline)
}

// TestPunchTimeoutCappedAtServers: members may ask for a shorter punch
// timeout than the server's, never a longer one, and a long request does not
// extend the job past what the server's own configuration allows.
func TestPunchTimeoutCappedAtServers(t *testing.T) {
	t.Parallel()
	const serverPT, relayT = time.Second, 100 * time.Millisecond
	for _, tc := range []struct {
		name string
		asks [2]time.Duration
		want time.Duration
	}{
		{"neither asks", [2]time.Duration{0, 0}, serverPT},
		{"one asks for less", [2]time.Duration{200 * time.Millisecond, 0}, 200 * time.Millisecond},
		{"the smaller of two", [2]time.Duration{700 * time.Millisecond, 400 * time.Millisecond}, 400 * time.Millisecond},
		{"one asks for 1000h", [2]time.Duration{1000 * time.Hour, 0}, serverPT},
		{"both ask for more", [2]time.Duration{2 * time.Second, 5 * time.Second}, serverPT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startLoopServer(t, WithJobTimeout(300*time.Millisecond),
				WithDefaultPunchTimeout(serverPT), WithRelayTimeout(relayT))
			a, b := dialRaw(t, srv.addr), dialRaw(t, srv.addr)
			a.joinAsking("pt", 2, 0, tc.asks[0])
			b.joinAsking("pt", 2, 1, tc.asks[1])
			_, sa := a.started()
			_, sb := b.started()
			assert.Equal(t, tc.want, sa.PunchTimeout, "rank 0's start frame")
			assert.Equal(t, tc.want, sb.PunchTimeout, "rank 1's start frame")
			// begin extends the deadline by the start delay, the punch
			// timeout, two relay timeouts and 10 s: server values only.
			limit := serverPT + 2*relayT + 10*time.Second + time.Second
			assert.Less(t, jobDeadline(t, srv, "pt"), limit)
		})
	}
}

// TestLongPunchTimeoutRequestStillTimesOut: a job whose member asked for a
// 1000-hour punch timeout still fails with the job timeout, within the time
// the server's configuration allows.
func TestLongPunchTimeoutRequestStillTimesOut(t *testing.T) {
	t.Parallel()
	srv := startLoopServer(t, WithJobTimeout(300*time.Millisecond), WithDefaultPunchTimeout(200*time.Millisecond),
		WithRelayTimeout(100*time.Millisecond), WithPingInterval(time.Second))
	a, b := dialRaw(t, srv.addr), dialRaw(t, srv.addr)
	a.joinAsking("long", 2, 0, 1000*time.Hour)
	b.join("long", 2, 1)
	began := time.Now()
	_, s := a.started()
	require.Equal(t, 200*time.Millisecond, s.PunchTimeout)
	b.started()
	go func() { // rank 1 answers its pings until its connection ends
		for {
			if _, err := b.recv(); err != nil {
				return
			}
		}
	}()
	// Neither side reports: the pair is decided relay, nobody relays, and
	// the job times out. Read (answering pings) until the error frame.
	var e errorMsg
	for range 20 {
		m := a.mustRecv()
		if em, ok := m.(errorMsg); ok {
			e = em
			break
		}
	}
	require.Equal(t, CodeTimeout, e.Code, "error: %s", e.Msg)
	assert.Contains(t, e.Msg, "mesh not complete within the job timeout")
	assert.Less(t, time.Since(began), 200*time.Millisecond+2*100*time.Millisecond+10*time.Second+2*time.Second)
	assert.Equal(t, int64(1), srv.Metrics().JobsEnded["timeout"])
}
