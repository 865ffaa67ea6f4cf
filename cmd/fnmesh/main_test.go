package main

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/fnmesh/fnmesh/rendezvous"
	"github.com/stretchr/testify/assert"
)

// Exit statuses: 0 for help asked for, 2 for a command line that cannot
// run; help goes to stderr, stdout stays empty.
func TestMainUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: fnmesh <command>"},
		{[]string{"-h"}, 0, "usage: fnmesh <command>"},
		{[]string{"--help"}, 0, "usage: fnmesh <command>"},
		{[]string{"help"}, 0, "usage: fnmesh <command>"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		// "help join" used to print the command list, not join's flags.
		{[]string{"help", "join"}, 0, "usage: fnmesh join --rendezvous"},
		{[]string{"help", "bench", "compare"}, 0, "usage: fnmesh bench compare"},
		{[]string{"help", "demo"}, 0, "usage: fnmesh demo"},
		{[]string{"help", "nope"}, 2, `fnmesh help: unknown command "nope"`},
	} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, tc.code, run(context.Background(), tc.args, &stdout, &stderr), "%q", tc.args)
		assert.Contains(t, stderr.String(), tc.want, "%q", tc.args)
		assert.Empty(t, stdout.String(), "%q", tc.args)
	}
}

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"version"}, 0, "fnmesh ", ""},
		{[]string{"--version"}, 0, "fnmesh ", ""},
		{[]string{"-version"}, 0, "fnmesh ", ""},
		{[]string{"version", "-h"}, 0, "", "usage: fnmesh version"},
		{[]string{"version", "extra"}, 2, "", "takes no arguments"},
	} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, tc.code, run(context.Background(), tc.args, &stdout, &stderr), "%q", tc.args)
		if tc.stdout == "" {
			assert.Empty(t, stdout.String(), "%q", tc.args)
		} else {
			out := stdout.String()
			assert.True(t, strings.HasPrefix(out, tc.stdout), "%q: %q", tc.args, out)
			assert.Contains(t, out, runtime.Version(), "%q", tc.args)
			assert.Contains(t, out, fmt.Sprintf("rendezvous protocol %d\n", rendezvous.ProtoVersion), "%q", tc.args)
		}
		assert.Contains(t, stderr.String(), tc.stderr, "%q", tc.args)
	}
}
