package rendezvous

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRelayHelloNoJobOracle: a relay-hello that does not verify gets the
// same error whether or not its job is in progress, so a client without the
// secret cannot tell which job IDs are live.
func TestRelayHelloNoJobOracle(t *testing.T) {
	srv := startLoopServer(t)
	member := dialRaw(t, srv.addr)
	member.join("live-job", 2, -1) // the job waits for its second member

	signedWith := func(secret []byte) func(*relayHello) {
		return func(rh *relayHello) {
			key, err := jobKey(secret, rh.Job)
			require.NoError(t, err)
			signRelay(key, rh)
		}
	}
	unsigned := func(*relayHello) {}
	type answer struct {
		code Code
		msg  string // with the job ID replaced by JOB
	}
	for _, tc := range []struct {
		name string
		sign func(*relayHello)
	}{
		{"no MAC", unsigned},
		{"MAC under another secret", signedWith([]byte("another secret of 32 bytes, too!"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]answer{}
			for _, job := range []string{"live-job", "gone-job"} {
				r := dialRaw(t, srv.addr)
				rh := relayHello{Job: job, Rank: 0, Peer: 1, Nonce: newNonce()}
				tc.sign(&rh)
				r.send(rh)
				e := r.expectError(CodeAuth)
				got[job] = answer{e.Code, strings.ReplaceAll(e.Msg, job, "JOB")}
			}
			assert.Equal(t, got["live-job"], got["gone-job"])
		})
	}
	// With the secret, a job that is not in progress is named as such.
	r := dialRaw(t, srv.addr)
	rh := relayHello{Job: "gone-job", Rank: 0, Peer: 1, Nonce: newNonce()}
	signedWith(testSecret)(&rh)
	r.send(rh)
	e := r.expectError(CodeRelay)
	assert.Contains(t, e.Msg, "no such job in progress")
}
