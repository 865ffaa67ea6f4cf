package punch

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The schedule against an endpoint that fails every connect after a round
// trip rtt: dense for the first interval, then, if the connects are
// refused, bursts of at most burstAttempts that last at most an eighth of
// the wait, the waits growing to the interval; bounded attempts over a 10 s
// punch.
func TestScheduleShape(t *testing.T) {
	tests := []struct {
		name        string
		rtt         time.Duration
		refused     bool
		maxBurst    int // the longest burst after the dense phase
		minAttempts int
		maxAttempts int
	}{
		// The waits: about 16 ln(3.2 s / first wait) while they grow, then
		// 5 a second. The bounds are about 25 % around the counts of 300
		// runs (jitter moves them by a few %).
		// Refused at once (this host): no bursts; the first interval ends
		// after 64 attempts (16 ms), then single attempts: 180-192.
		{"loopback", 0, true, 1, 140, 240},
		// 1 ms per hop, a 4 ms round trip, bursts: 265-285.
		{"short path", 4 * time.Millisecond, true, burstAttempts, 200, 350},
		// 60 ms: a refusal outlasts any burst, single attempts: 67-73.
		{"long path", 60 * time.Millisecond, true, 1, 50, 100},
		// Failures other than a refusal (no route to host) never burst:
		// 146-154.
		{"unreachable", 2 * time.Millisecond, false, 1, 110, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				s := newSchedule(start, DefaultInterval, 0, 1, 0)
				var starts []time.Time
				for attempt := 1; time.Since(start) < 10*time.Second; attempt++ {
					begun := time.Now()
					starts = append(starts, begun)
					time.Sleep(tt.rtt)
					w := s.next(begun, attempt, tt.refused)
					require.GreaterOrEqual(t, w, minGap)
					require.Less(t, w, DefaultInterval*5/4)
					time.Sleep(time.Until(begun.Add(w)))
				}
				burst, longest, dense := 1, 1, 0
				for i := 1; i < len(starts); i++ {
					gap := starts[i].Sub(starts[i-1])
					if i < denseAttempts && starts[i].Sub(start) < DefaultInterval {
						dense++
						assert.Equal(t, max(tt.rtt, minGap), gap, "back to back in the first interval")
						continue
					}
					if gap == max(tt.rtt, minGap) && tt.rtt < DefaultInterval/8 {
						burst++
					} else {
						burst = 1
					}
					longest = max(longest, burst)
				}
				assert.LessOrEqual(t, dense, denseAttempts)
				assert.Equal(t, tt.maxBurst, longest, "the longest burst")
				assert.GreaterOrEqual(t, len(starts), tt.minAttempts)
				assert.LessOrEqual(t, len(starts), tt.maxAttempts)
				t.Logf("%d attempts in 10 s, %d in the first interval", len(starts), dense)
			})
		})
	}
}
