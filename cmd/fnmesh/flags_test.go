package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/fnmesh/fnmesh/internal/secret"
	"github.com/stretchr/testify/assert"
)

// A flag that does not parse gets one line naming it and saying what it
// should look like, and a pointer to -h: not the whole help after it (for
// bench some sixty lines, after which bench printed the error again).
func TestFlagErrorsAreShort(t *testing.T) {
	t.Setenv(secret.Env, joinTestSecret)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"join", "--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2", "--timeout", "3"},
			`fnmesh join: invalid value "3" for flag -timeout: want a duration such as 500ms, 30s or 2m`},
		{[]string{"join", "--frob"}, "fnmesh join: flag provided but not defined: -frob"},
		{[]string{"join", "--bytes", "1X"}, `fnmesh join: invalid value "1X" for flag -bytes: "1X" is not a byte count`},
		{[]string{"demo", "-workers", "six"}, `fnmesh demo: invalid value "six" for flag -workers: want an integer`},
		{[]string{"demo", "-v=maybe"}, `fnmesh demo: invalid boolean value "maybe" for -v: want true or false, as in -v=false`},
		{[]string{"demo", "-seed", "-1"}, `fnmesh demo: invalid value "-1" for flag -seed: want a non-negative integer`},
		{[]string{"bench", "-max", "1X"}, `fnmesh bench: invalid value "1X" for flag -max: osu: size "1X"`},
		{[]string{"bench", "-np", "x"}, `fnmesh bench: invalid value "x" for flag -np: want an integer`},
		{[]string{"bench", "compare", "-names"}, "fnmesh bench compare: flag needs an argument: -names"},
		// It printed the whole help without saying what was wrong.
		{[]string{"bench", "compare", "ours.csv"}, "fnmesh bench compare: want two result files, ours and theirs (got 1)"},
	} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, 2, run(context.Background(), tc.args, &stdout, &stderr), "%q", tc.args)
		lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
		if assert.Len(t, lines, 2, "%q: the error and the hint, no more: %s", tc.args, stderr.String()) {
			assert.Contains(t, lines[0], tc.want, "%q", tc.args)
			name := strings.SplitN(lines[0], ":", 2)[0]
			assert.Equal(t, "Run '"+name+" -h' for its flags.", lines[1], "%q", tc.args)
		}
		assert.Empty(t, stdout.String(), "%q", tc.args)
	}
	// Help asked for is still the whole help, and exits 0.
	for _, args := range [][]string{{"join", "-h"}, {"demo", "--help"}, {"bench", "-h"}, {"bench", "compare", "-h"}} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, 0, run(context.Background(), args, &stdout, &stderr), "%q", args)
		assert.Contains(t, stderr.String(), "usage: fnmesh "+strings.Join(args[:len(args)-1], " "), "%q", args)
		assert.Contains(t, stderr.String(), "\nflags:\n", "%q", args)
	}
}
