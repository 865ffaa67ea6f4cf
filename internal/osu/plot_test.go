package osu

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot/plotutil"
)

// The ratio plot must be readable: its y axis labels ratios between 1/4 and
// 4 (it labelled only powers of ten, so runs within 0.3-3x of each other got
// one label, "1", and no way to read how far a line is from parity), and
// its parity line is drawn in a colour no operation's line has (it was the
// first line's red, bcast np=2's in run.sh's comparisons).
func TestRatioPlotReadable(t *testing.T) {
	var ratios []Ratio
	for i, op := range []string{"bcast", "allgather"} {
		for j, size := range []int{1, 1 << 10, 1 << 20} {
			ratios = append(ratios, Ratio{Op: op, Ranks: 2, Size: size, OursUs: 1, TheirsUs: 1, Ratio: []float64{0.45, 1.3, 2.6}[(i+j)%3]})
		}
	}
	p, parity, err := ratioPlot("ratio", ratios)
	require.NoError(t, err)
	fitLog(&p.Y)
	var labels []string
	for _, tk := range p.Y.Tick.Marker.Ticks(p.Y.Min, p.Y.Max) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	assert.Subset(t, labels, []string{"0.5", "1", "2"}, "labels on the y axis: %v", labels)

	require.NotNil(t, parity, "a parity line at 1")
	for i := range 2 { // bcast np=2, allgather np=2
		assert.NotEqual(t, plotutil.Color(i), parity.Color, "the parity line has a colour of its own")
	}
}
