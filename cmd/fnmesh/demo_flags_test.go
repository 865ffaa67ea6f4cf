package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
)

// A punch timeout under the protocol's unit (1ms) is a usage error: the
// demo's rendezvous server refused to start with it, unseen, and every
// worker then dialed a closed port until it gave up, "is the server up?".
func TestDemoPunchTimeoutUnderUnit(t *testing.T) {
	for _, pt := range []string{"500us", "1ns"} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"demo", "-workers", "2", "-skip", "collectives,frame",
			"-bytes", "1K", "-timeout", "3s", "-punch-timeout", pt}, &stdout, &stderr)
		assert.Equal(t, 2, code, "-punch-timeout %s: stderr: %s", pt, stderr.String())
		assert.Contains(t, stderr.String(), "fnmesh demo: --punch-timeout", pt)
		assert.Contains(t, stderr.String(), "at least 1ms", pt)
		assert.Empty(t, stdout.String(), pt)
	}
}
