//go:build unix

package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBest(t *testing.T) {
	// Two reps of two ranks; the second rep is the faster.
	reps := func(rows0, rows1 int64) [][]phaseTimes {
		return [][]phaseTimes{
			{{Total: 3 * time.Second, Exchange: time.Second, Bytes: 1e9, OutRows: rows0}, {Total: 2 * time.Second, Exchange: time.Second, Bytes: 1e9, OutRows: rows1}},
			{{Total: time.Second, Exchange: time.Second / 2, Bytes: 1e9, OutRows: rows0}, {Total: 2 * time.Second, Exchange: time.Second / 4, Bytes: 1e9, OutRows: rows1}},
		}
	}
	for _, tc := range []struct {
		name        string
		reps        [][]phaseTimes
		perRankRows bool
		wantRows    int64
	}{
		// Frame.Count: every rank reports the whole result.
		{"operator", reps(222058, 222058), false, 222058},
		// The exchange alone: each rank its own rows, summed (the last
		// rank's alone were reported).
		{"exchange alone", reps(100346, 99654), true, 200000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := best(tc.reps, 200000, 2e9, tc.perRankRows)
			assert.Equal(t, 2.0, s.TotalSec, "the rep with the shortest slowest rank")
			assert.Equal(t, tc.wantRows, s.OutRows)
			assert.Equal(t, 3e9, s.ExchangeBps, "mean of 2 GB/s and 4 GB/s")
			assert.Equal(t, 1.5, s.OfCeiling)
			assert.Equal(t, 1e9, s.MedianBps, "the lower median of 1 and 3 GB/s")
			assert.Equal(t, 2, s.Reps)
		})
	}
}
