package osu

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A ratio is judged at the precision it is printed with: one that prints
// as 1.000 is a tie, neither "slower" nor behind a ratio <= 1 target. A CSV
// file's times carry 3 decimals, a JSON report's all of them; compared, a
// run with itself printed 1.000 "slower".
func TestRatioVerdictAtPrintedPrecision(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ours       float64
		theirs     float64
		wantRatio  string
		wantSlower bool
	}{
		{"rounded in the csv", 2000.0004, 2000.000, "1.000", false},
		{"just below 1.0005", 1000.4999, 1000, "1.000", false},
		{"equal", 5, 5, "1.000", false},
		{"faster", 999, 1000, "0.999", false},
		{"1.001", 1001, 1000, "1.001", true},
		{"1.0006 prints 1.001", 1000.6, 1000, "1.001", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours := []Result{{Op: "allgather", Ranks: 2, Size: 1 << 20, AvgUs: tc.ours}}
			theirs := []Result{{Op: "allgather", Ranks: 2, Size: 1 << 20, AvgUs: tc.theirs}}
			ratios := Compare(ours, theirs)
			require.Len(t, ratios, 1)
			var b bytes.Buffer
			require.NoError(t, WriteRatios(&b, "a", "b", ratios))
			line := strings.Split(strings.TrimSpace(b.String()), "\n")[1]
			fields := strings.Fields(line)
			assert.Equal(t, tc.wantRatio, fields[5], line)
			assert.Equal(t, tc.wantSlower, strings.HasSuffix(line, "slower"), line)
			vs := DefaultTargets().Check(ratios, ours, 0)
			require.Len(t, vs, 1)
			assert.Equal(t, !tc.wantSlower, vs[0].Met, vs[0].Detail)
			assert.Contains(t, vs[0].Detail, "worst "+tc.wantRatio)
		})
	}
	// The latency target, at its own bound: 2.0004 prints 2.000, met.
	ratios := Compare([]Result{{Op: "latency", Ranks: 2, Size: 8, AvgUs: 20.004}}, []Result{{Op: "latency", Ranks: 2, Size: 8, AvgUs: 10}})
	vs := DefaultTargets().Check(ratios, nil, 0)
	require.Len(t, vs, 1)
	assert.True(t, vs[0].Met, vs[0].Detail)
}

// The bw share of the TCP ceiling is judged as printed too: 79.96% prints
// 80.0%, met.
func TestCeilingShareAtPrintedPrecision(t *testing.T) {
	for _, tc := range []struct {
		mbps   float64
		want   string
		wantOK bool
	}{
		{799.6, "80.0%", true},
		{799.4, "79.9%", false},
		{800, "80.0%", true},
	} {
		ours := []Result{{Op: "bw", Ranks: 2, Size: 1 << 20, AvgUs: 1, MBps: tc.mbps}}
		vs := DefaultTargets().Check(nil, ours, 1000)
		require.Len(t, vs, 1)
		assert.Contains(t, vs[0].Detail, "= "+tc.want+" of", vs[0].Detail)
		assert.Equal(t, tc.wantOK, vs[0].Met, vs[0].Detail)
	}
}

// With no target applying, WriteVerdicts says so rather than nothing (the
// "targets" heading above it stood alone).
func TestWriteVerdictsNone(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteVerdicts(&b, nil))
	assert.Equal(t, "none applies: the runs share no row a target covers\n", b.String())
	b.Reset()
	require.NoError(t, WriteVerdicts(&b, []Verdict{{Target: "t", Ranks: 2, Met: true, Detail: "d"}}))
	assert.Equal(t, "MET  np=2  t  d\n", b.String())
}
