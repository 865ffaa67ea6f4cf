package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
)

// A --punch-timeout under the protocol's unit (1ms) is a usage error, as
// in fnmesh demo and the rendezvous server: it was sent as 1ms, so that
// the run punched for longer than it said (the server logged
// punch_timeout=1ms for --punch-timeout 500us).
func TestJoinPunchTimeoutUnderUnit(t *testing.T) {
	t.Setenv("FNMESH_SECRET", "s")
	for _, pt := range []string{"500us", "1ns"} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"join", "--rendezvous", "127.0.0.1:1", "--job", "j", "--world", "2",
			"--connect-retry", "0", "--timeout", "2s", "--punch-timeout", pt}, &stdout, &stderr)
		assert.Equal(t, 2, code, "--punch-timeout %s: stderr: %s", pt, stderr.String())
		assert.Contains(t, stderr.String(), "fnmesh join: --punch-timeout", pt)
		assert.Contains(t, stderr.String(), "at least 1ms", pt)
		assert.Empty(t, stdout.String(), pt)
	}
}
