//go:build unix

package main

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckFlags(t *testing.T) {
	type flags struct {
		counts     []int
		rows       int
		scaling    string
		uniqueness float64
		reps       int
		par        int
		ceilingMB  int
	}
	ok := flags{counts: []int{1, 2}, rows: 1000, scaling: "weak", uniqueness: 0.9, reps: 3, ceilingMB: 1024}
	for _, tc := range []struct {
		name    string
		change  func(*flags)
		wantErr string
	}{
		{"defaults", func(*flags) {}, ""},
		{"strong", func(f *flags) { f.scaling = "strong" }, ""},
		{"no ceiling", func(f *flags) { f.ceilingMB = 0 }, ""},
		{"scaling", func(f *flags) { f.scaling = "both" }, "-scaling"},
		{"negative rows", func(f *flags) { f.rows = -5 }, "-rows -5"},
		{"no rows", func(f *flags) { f.rows = 0 }, "-rows 0"},
		{"strong, fewer rows than workers", func(f *flags) { f.scaling, f.rows = "strong", 1 }, "one row per worker"},
		// NaN made json.Marshal of the worker arguments fail, and each
		// worker, finding no arguments, ran the whole default benchmark.
		{"uniqueness NaN", func(f *flags) { f.uniqueness = math.NaN() }, "-uniqueness"},
		{"uniqueness Inf", func(f *flags) { f.uniqueness = math.Inf(1) }, "-uniqueness"},
		{"uniqueness 0", func(f *flags) { f.uniqueness = 0 }, "-uniqueness"},
		{"no reps", func(f *flags) { f.reps = 0 }, "-reps 0"},
		{"negative par", func(f *flags) { f.par = -1 }, "-par -1"},
		{"negative ceiling", func(f *flags) { f.ceilingMB = -1 }, "-ceiling-mb -1"},
		// 100000 used to start worker processes until the machine gave out.
		{"too many workers", func(f *flags) { f.counts = []int{1, 100000} }, "-workers 100000: at most 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ok
			tc.change(&f)
			err := checkFlags(f.counts, f.rows, f.scaling, f.uniqueness, f.reps, f.par, f.ceilingMB)
			if tc.wantErr == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tc.wantErr)
			}
		})
	}
}

func TestParseCounts(t *testing.T) {
	counts, err := parseCounts("4, 1,2")
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2, 4}, counts)
	for _, bad := range []string{"0", "1,x", "", "1,,2", "-2"} {
		_, err := parseCounts(bad)
		assert.ErrorContains(t, err, "-workers", "%q", bad)
	}
}
