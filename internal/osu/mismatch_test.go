package osu

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Compare pairs rows on op, np and size only; Mismatches says where the two
// runs did not measure alike: rows of one that the other lacks (a run cut
// short, a different -ops or -max) and pairs timed over different numbers of
// calls (a different -iters). The ratio table used to leave both out
// silently, so a comparison of unlike runs looked like any other.
func TestMismatches(t *testing.T) {
	row := func(op string, np, size, iters int) Result {
		return Result{Op: op, Ranks: np, Size: size, Iterations: iters, AvgUs: 10, MinUs: 10, MaxUs: 10}
	}
	for _, tc := range []struct {
		name         string
		ours, theirs []Result
		want         []string
	}{
		{"alike", []Result{row("barrier", 2, 0, 1000), row("bcast", 2, 1<<20, 100)},
			[]Result{row("barrier", 2, 0, 1000), row("bcast", 2, 1<<20, 100)}, nil},
		{"repeated runs alike", []Result{row("bcast", 2, 8, 1000), row("bcast", 2, 8, 1000)},
			[]Result{row("bcast", 2, 8, 1000)}, nil},
		{"iterations differ", []Result{row("bcast", 2, 8, 200), row("bcast", 4, 8, 1000)},
			[]Result{row("bcast", 2, 8, 1000), row("bcast", 4, 8, 1000)},
			[]string{"bcast np=2 8: 200 calls in ours, 1000 in theirs"}},
		{"rows on one side only", []Result{row("bcast", 2, 8, 1000), row("bcast", 2, 16, 1000)},
			[]Result{row("bcast", 2, 8, 1000), row("latency", 2, 8, 1000)},
			[]string{"bcast np=2 16: only in ours", "latency np=2 8: only in theirs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Mismatches(tc.ours, tc.theirs, "ours", "theirs"))
		})
	}
}
