package osu

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ReadCSV refuses a time or rate that is not a finite number (NaN and Inf
// were read, into a ratio of NaN or 0.000).
func TestReadCSVRejectsNonFinite(t *testing.T) {
	for _, tc := range []struct{ name, row, want string }{
		{"NaN avg", "allreduce,2,8,5,NaN,1,1,1", `csv line 2: avg_us "NaN": not a non-negative number`},
		{"Inf min", "allreduce,2,8,5,1,Inf,1,1", `min_us "Inf": not a non-negative number`},
		{"+Inf max", "allreduce,2,8,5,1,1,+Inf,1", `max_us "+Inf"`},
		{"-Inf rate", "allreduce,2,8,5,1,1,1,-Inf", `mb_per_s "-Inf"`},
		{"nan lower case", "allreduce,2,8,5,nan,1,1,1", `avg_us "nan"`},
		{"1e999 overflows", "allreduce,2,8,5,1e999,1,1,1", `avg_us "1e999"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadCSV(strings.NewReader(strings.Join(Columns, ",") + "\n" + tc.row + "\n"))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// ReadJSON checks its results as ReadCSV does.
func TestReadJSONRejectsNonMeasurements(t *testing.T) {
	for _, tc := range []struct{ name, results, want string }{
		{"negative avg", `{"op":"allreduce","np":2,"size":8,"avg_us":-1}`, "result 1: allreduce np=2 size 8: avg_us -1: not a finite non-negative number"},
		{"empty op", `{"op":"","np":2,"size":8,"avg_us":1}`, "result 1: empty op or np < 1"},
		{"np 0", `{"op":"bw","np":0,"size":8,"avg_us":1}`, "result 1: empty op or np < 1"},
		{"negative size", `{"op":"bw","np":2,"size":-8,"avg_us":1}`, "result 1: bw np=2: negative size -8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadJSON(strings.NewReader(`{"results":[` + tc.results + `]}`))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "osu: json report: "+tc.want)
		})
	}
}
