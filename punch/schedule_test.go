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
		// 5 a second. The bounds are about 25 % around the counts of ten
		// jitter sequences (quoted; the jitter moves them by a few %).
		// Refused at once (this host): no bursts; the first interval ends
		// after 64 attempts (16 ms), then single attempts: 183-190.
		{"loopback", 0, true, 1, 140, 240},
		// 1 ms per hop, a 4 ms round trip, bursts: 271-281.
		{"short path", 4 * time.Millisecond, true, burstAttempts, 200, 350},
		// 60 ms: a refusal outlasts any burst, single attempts: 67-72.
		{"long path", 60 * time.Millisecond, true, 1, 50, 100},
		// Failures other than a refusal (no route to host) never burst:
		// 148-153.
		{"unreachable", 2 * time.Millisecond, false, 1, 110, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// Ten pairs of ranks: ten jitter sequences.
				for self := range 10 {
					start := time.Now()
					s := newSchedule(start, DefaultInterval, self, self+1, 0)
					attempts, dense, longest := 0, 0, 0
					for attempt := 1; time.Since(start) < 10*time.Second; attempt++ {
						begun := time.Now()
						attempts++
						time.Sleep(tt.rtt)
						w := s.next(begun, attempt, tt.refused)
						require.GreaterOrEqual(t, w, minGap)
						require.Less(t, w, DefaultInterval*5/4)
						// Back to back: at least minGap from the start, and
						// less than minGap after the end.
						if s.inBurst == 0 || s.inBurst > 1 {
							require.GreaterOrEqual(t, w, max(minGap, tt.rtt))
							require.LessOrEqual(t, w, max(minGap, tt.rtt+minGap))
						}
						if s.inBurst == 0 { // still in the first interval
							dense++
						}
						longest = max(longest, s.inBurst)
						time.Sleep(time.Until(begun.Add(w)))
					}
					assert.LessOrEqual(t, dense, denseAttempts)
					assert.Equal(t, tt.maxBurst, longest, "the longest burst")
					assert.GreaterOrEqual(t, attempts, tt.minAttempts)
					assert.LessOrEqual(t, attempts, tt.maxAttempts)
					t.Logf("%d attempts in 10 s, %d in the first interval", attempts, dense)
				}
			})
		})
	}
}
