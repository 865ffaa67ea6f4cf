package rendezvous

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLeaveRacesCompletion: a waiting member hangs up exactly while the
// last member joins. Either it left first (its place is free again: the
// last member waits, alone) or the job had started (the last member gets
// member-left naming it); the gauges end at zero and the outcomes add up.
func TestLeaveRacesCompletion(t *testing.T) {
	srv := startLoopServer(t, WithPingInterval(time.Second))
	const rounds = 40
	started := 0
	for i := range rounds {
		job := fmt.Sprintf("race-%d", i)
		a, b := dialRaw(t, srv.addr), dialRaw(t, srv.addr)
		a.join(job, 2, 0)
		b.hello()
		jm := b.joinMsg(job, 2, -1, testSecret)
		go a.c.Close()
		b.send(jm)
		require.IsType(t, joined{}, b.mustRecv())
		next := func(wait time.Duration) (message, error) { // the next frame but pings
			b.c.SetReadDeadline(time.Now().Add(wait))
			for {
				m, err := readMessage(b.br, MaxPayload)
				if _, ok := m.(ping); err != nil || !ok {
					return m, err
				}
			}
		}
		m, err := next(200 * time.Millisecond)
		if isTimeout(err) && srv.Metrics().PunchAttempts > int64(started) {
			// The job did start (its pair was scheduled before b was sent
			// joined): its frames are only late, on a loaded machine.
			m, err = next(5 * time.Second)
		}
		if err == nil {
			started++
			p, ok := m.(peers)
			require.True(t, ok, "got %#v", m)
			require.Len(t, p.Members, 2)
			st, ok := b.mustRecv().(start)
			require.True(t, ok)
			assert.Equal(t, 1, st.Rank)
			e := b.expectError(CodeMemberLeft)
			assert.Equal(t, 0, e.Rank)
		} else {
			// The job did not start: b waits alone, then leaves.
			require.True(t, isTimeout(err), "b: %v", err)
			b.c.Close()
		}
	}
	require.Eventually(t, func() bool {
		m := srv.Metrics()
		return m.Jobs == 0 && m.Members == 0 && m.Connections == 0
	}, 10*time.Second, 5*time.Millisecond)
	m := srv.Metrics()
	t.Logf("%d of %d rounds started before the member left", started, rounds)
	assert.Equal(t, int64(started), m.JobsEnded["member_left"])
	assert.Equal(t, int64(started), m.Evictions)
	assert.Equal(t, int64(2*(rounds-started)), m.JobsEnded["abandoned"])
	assert.Equal(t, int64(0), m.JobsEnded["complete"])
	assert.Equal(t, int64(started), m.PunchAttempts)
}
