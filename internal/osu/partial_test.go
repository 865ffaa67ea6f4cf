package osu

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A partial run says so in its report, with its counts.
func TestReportPartial(t *testing.T) {
	for _, tc := range []struct {
		name        string
		rep         Report
		wantJSON    string
		wantPartial string
	}{
		{"complete", Report{Planned: 2, Results: fixture[:2]}, `"planned_results": 2`, ""},
		{"cut short", Report{Planned: 21, Partial: true, Stopped: "stopped: interrupt signal received", Results: fixture[:2]},
			`"partial": true`, "partial run: 2 of 21 results (stopped: interrupt signal received)"},
		{"cut short, no reason", Report{Planned: 21, Partial: true, Results: fixture[:2]}, `"partial": true`, "partial run: 2 of 21 results"},
		{"fewer results than planned, unflagged", Report{Planned: 21, Results: fixture[:2]}, `"planned_results": 21`, "partial run: 2 of 21 results"},
		{"before the field existed", Report{Results: fixture[:2]}, `"results"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, WriteJSON(&b, tc.rep))
			assert.Contains(t, b.String(), tc.wantJSON)
			if !tc.rep.Partial {
				assert.NotContains(t, b.String(), `"partial"`)
			}
			got, err := ReadJSON(&b)
			require.NoError(t, err)
			assert.Equal(t, tc.wantPartial, got.PartialNote())
		})
	}
}
