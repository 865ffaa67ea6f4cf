package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A world larger than a job may have, a job ID the server would refuse and
// a -rendezvous address that is not HOST:PORT are bad flags (exit status
// 2), said before anything is dialed. The check of -world was against
// collective.MaxRanks (32768), above the 4096 ranks a job may have, so
// -world 5000 failed as a job (status 1), as did a malformed -rendezvous,
// and a bad -job only after the server had been dialed.
func TestWorldAndJobCheckedFirst(t *testing.T) {
	t.Setenv("FNMESH_SECRET", "s")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-rendezvous", "127.0.0.1:1", "-job", "j", "-world", "5000", "-timeout", "2s"}, "-world 5000: at most 4096"},
		{[]string{"-rendezvous", "127.0.0.1:1", "-job", strings.Repeat("j", 129), "-world", "2", "-timeout", "2s"}, "-job: job ID of 129 bytes (want 1..128)"},
		{[]string{"-rendezvous", "127.0.0.1:1", "-job", "a\tb", "-world", "2", "-timeout", "2s"}, "-job: job ID has an invalid or control character"},
		{[]string{"-rendezvous", "bad", "-job", "j", "-world", "2", "-timeout", "2s"}, `-rendezvous "bad": want HOST:PORT`},
		{[]string{"-rendezvous", "127.0.0.1:0", "-job", "j", "-world", "2", "-timeout", "2s"}, `-rendezvous "127.0.0.1:0": port "0" is not 1..65535`},
	} {
		err := run(context.Background(), tc.args, &bytes.Buffer{})
		var usage usageError
		require.ErrorAs(t, err, &usage, "args %q", tc.args)
		require.Contains(t, usage.msg, tc.want, "args %q", tc.args)
	}
}
