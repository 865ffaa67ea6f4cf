package osu

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A size too large says so; one that is no byte count says what is wanted
// (-max 99999G used to say "want a byte count").
func TestParseSizeErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"99999G", `osu: size "99999G": too large, at most 2G`},
		{"3G", `osu: size "3G": too large, at most 2G`},
		{"2049M", `osu: size "2049M": too large, at most 2G`},
		{"99999999999999999999", `too large, at most 2G`},
		{"x", `osu: size "x": want a byte count like 64, 8K or 16MiB`},
		{"-1", `want a byte count`},
		{"1.5M", `want a byte count`},
		{"", `want a byte count`},
	} {
		_, err := ParseSize(tc.in)
		require.Error(t, err, tc.in)
		assert.Contains(t, err.Error(), tc.want, tc.in)
	}
	n, err := ParseSize("2G")
	require.NoError(t, err)
	assert.Equal(t, 2<<30, n, "the largest")
}

// The config of a JSON report is in snake_case like the rest of it; a
// report written with the Go field names (before) still reads.
func TestReportConfigKeys(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteJSON(&b, Report{Tool: "fnmesh", Config: DefaultConfig(), Results: fixture}))
	for _, key := range []string{"min_size", "max_size", "large_size", "iterations", "warmup",
		"large_iterations", "large_warmup", "window", "bw_large_iterations", "bw_large_warmup"} {
		assert.Contains(t, b.String(), `"`+key+`": `, key)
	}
	assert.NotContains(t, b.String(), "MinSize")
	got, err := ReadJSON(&b)
	require.NoError(t, err)
	assert.Equal(t, DefaultConfig(), got.Config)

	old := `{"tool": "fnmesh", "config": {"MinSize": 1, "MaxSize": 16777216, "LargeSize": 8192,
		"Iterations": 1000, "Warmup": 100, "LargeIterations": 100, "LargeWarmup": 10, "Window": 64,
		"BWLargeIterations": 20, "BWLargeWarmup": 2}, "results": []}`
	got, err = ReadJSON(strings.NewReader(old))
	require.NoError(t, err)
	assert.Equal(t, DefaultConfig(), got.Config, "the Go field names of earlier reports")

	_, err = ReadJSON(strings.NewReader(`{"config": {"min_size": "x"}}`))
	assert.ErrorContains(t, err, "osu: json report")
}
