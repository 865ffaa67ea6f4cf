package rendezvous

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestJoinWaitSaysHowManyJoined: when a worker's context ends while it
// waits for the rest of its job, its error says how many members the
// server had counted when it last heard from it (the joined frame, then
// every ping), so that a half-failed fan-out reads as such. Real server on
// loopback, world 5; the other members are Joins of their own that wait.
func TestJoinWaitSaysHowManyJoined(t *testing.T) {
	const world = 5
	tests := []struct {
		name   string
		before int // other members that join before the worker
		after  int // other members that join after it
		leave  int // of those, how many give up before the worker's end
		want   string
	}{
		{"alone", 0, 0, 0, "1 of 5 joined"},
		{"others joined first", 2, 0, 0, "3 of 5 joined"},
		{"others joined later (the pings say so)", 0, 3, 0, "4 of 5 joined"},
		{"members left (the pings say so)", 3, 0, 2, "2 of 5 joined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Pings often enough to carry the count soon, not so often that
			// a member on a loaded machine misses three (it is evicted: at
			// 100 ms, members of a -race run beside other tests were, and
			// the worker heard "1 of 5").
			const ping = 200 * time.Millisecond
			srv := startLoopServer(t, WithPingInterval(ping))
			job := "progress-" + tt.name
			var wg sync.WaitGroup
			defer wg.Wait()
			others, stopOthers := context.WithCancel(context.Background())
			defer stopOthers()
			var cancels []context.CancelFunc
			startOthers := func(n int) {
				for range n {
					ctx, cancel := context.WithCancel(others)
					cancels = append(cancels, cancel)
					wg.Go(func() {
						_, err := Join(ctx, srv.addr, job, world, testSecret)
						assert.ErrorIs(t, err, context.Canceled)
					})
				}
			}
			members := func(n int) {
				require.Eventually(t, func() bool { return srv.Metrics().Members == int64(n) },
					5*time.Second, time.Millisecond, "want %d waiting members", n)
			}

			startOthers(tt.before)
			members(tt.before)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				_, err := Join(ctx, srv.addr, job, world, testSecret)
				errc <- err
			}()
			members(tt.before + 1)
			startOthers(tt.after)
			members(tt.before + 1 + tt.after)
			for _, c := range cancels[:tt.leave] {
				c()
			}
			members(tt.before + 1 + tt.after - tt.leave)
			time.Sleep(3 * ping) // 2 or 3 pings: the worker has heard the count
			cancel()

			var err error
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Fatal("Join did not return after its context ended")
			}
			require.Error(t, err)
			t.Log(err)
			assert.ErrorIs(t, err, context.Canceled)
			assert.ErrorContains(t, err, "waiting for the other members of the job ("+tt.want+
				" when last heard from the server, ")
			assert.Regexp(t, regexp.MustCompile(`joined when last heard from the server, 0\.[0-9] s ago\): `), err.Error())
		})
	}
}

// TestJoinTimeoutSaysHowManyJoined: the same with a deadline, the usual
// way a worker's wait ends, and the server's default ping interval (5 s):
// the count comes from the joined frame (and the first ping, sent with it).
func TestJoinTimeoutSaysHowManyJoined(t *testing.T) {
	srv := startLoopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for range 2 {
		wg.Go(func() {
			_, err := Join(ctx, srv.addr, "progress-deadline", 64, testSecret)
			assert.Error(t, err)
		})
	}
	require.Eventually(t, func() bool { return srv.Metrics().Members == 2 }, 5*time.Second, time.Millisecond)
	wctx, wcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer wcancel()
	_, err := Join(wctx, srv.addr, "progress-deadline", 64, testSecret)
	cancel()
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	assert.Regexp(t, regexp.MustCompile(
		`waiting for the other members of the job \(3 of 64 joined when last heard from the server, 0\.[0-9] s ago\): context deadline exceeded`),
		err.Error())
}

// TestJoinRefusesImpossibleCount: a ping that counts more members joined
// than the job's world is the server's protocol error, which Join reports
// as such, not a count it repeats.
func TestJoinRefusesImpossibleCount(t *testing.T) {
	srv := startFakeServer(t, time.Second, func(m *fakeMember) {
		m.send(ping{Seq: 1, Joined: 3})
		m.drain()
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Join(ctx, srv.addr, "j", 2, testSecret)
	require.Error(t, err)
	assert.ErrorContains(t, err, "waiting for the other members of the job (1 of 2 joined when last heard from the server, ")
	assert.ErrorContains(t, err, "s ago): protocol error: the server's ping says 3 members joined a job of world size 2")
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
}
