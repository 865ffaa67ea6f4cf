package osu

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The ceiling is one TCP stream's receiver throughput: a run of several
// streams (iperf3 -P) or of UDP is no ceiling for one link and is refused,
// not read as one (four streams on loopback carry more than one can, which
// would make fnmesh's share of the ceiling look worse than it is).
func TestReadIperf3OneTCPStream(t *testing.T) {
	const end = `"end":{"streams":[%s],"sum_sent":{"bits_per_second":4.1e10},"sum_received":{"bits_per_second":4e10}}`
	stream := `{"receiver":{"bits_per_second":1e10}}`
	doc := func(testStart string, streams int) string {
		s := strings.Repeat(stream+",", streams)
		return `{"start":{"test_start":` + testStart + `},` + strings.Replace(end, "%s", strings.TrimSuffix(s, ","), 1) + `}`
	}
	for _, tc := range []struct {
		name, json string
		want       float64 // MB/s; 0: an error
		errText    string
	}{
		{"one TCP stream (as run.sh measures)", doc(`{"protocol":"TCP","num_streams":1,"reverse":0}`, 1), 5000, ""},
		{"reverse mode: still the receiver's rate", doc(`{"protocol":"TCP","num_streams":1,"reverse":1}`, 1), 5000, ""},
		{"four parallel streams", doc(`{"protocol":"TCP","num_streams":4}`, 4), 0, "4 streams"},
		{"streams counted in end only", doc(`{}`, 2), 0, "2 streams"},
		{"UDP", doc(`{"protocol":"UDP","num_streams":1}`, 1), 0, "UDP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadIperf3(strings.NewReader(tc.json))
			if tc.want == 0 {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.errText)
				return
			}
			require.NoError(t, err)
			assert.InDelta(t, tc.want, got, 1e-9)
		})
	}
}
