package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckArgs(t *testing.T) {
	for _, tc := range []struct {
		name          string
		data          string
		threads, reps int
		args          []string
		want          string
	}{
		{"ok", "/tmp/d", 2, 3, nil, ""},
		{"no data", "", 2, 3, nil, "-data is required"},
		{"no threads", "/tmp/d", 0, 3, nil, "-threads 0: want at least 1"},
		{"no reps", "/tmp/d", 2, 0, nil, "-reps 0: want at least 1"},
		{"stray argument", "/tmp/d", 2, 3, []string{"x"}, `unexpected argument "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkArgs(tc.data, tc.threads, tc.reps, tc.args)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
