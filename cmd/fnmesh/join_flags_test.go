package main

import (
	"context"
	"strings"
	"testing"

	"github.com/fnmesh/fnmesh/internal/osu"
	"github.com/fnmesh/fnmesh/rendezvous"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		str  string
	}{
		{"0", 0, "0"},
		{"1048576", 1 << 20, "1MiB"},
		{"64KiB", 64 << 10, "64KiB"},
		{"1 GiB", 1 << 30, "1GiB"},
		{"123B", 123, "123"},
		// Every unit is binary, in either case, as in fnmesh bench's -min
		// and -max (2MB used to be 2000000 here, and 1k was refused).
		{"2MB", 2 << 20, "2MiB"},
		{"5kB", 5 << 10, "5KiB"},
		{"64K", 64 << 10, "64KiB"},
		{"1m", 1 << 20, "1MiB"},
		{"2 G", 2 << 30, "2GiB"},
		{"3t", 3 << 40, "3072GiB"},
	} {
		var b byteSize
		require.NoError(t, b.Set(tc.in), tc.in)
		assert.Equal(t, tc.want, int64(b), tc.in)
		assert.Equal(t, tc.str, b.String(), tc.in)
	}
	for _, bad := range []string{"", "-1", "+1", "1.5MiB", "MiB", "12XB", "9999999999TiB", "9999999999T", "1Mi", "M", "1 K B", "0x10"} {
		var b byteSize
		assert.Error(t, b.Set(bad), bad)
	}
}

// TestByteSizeMatchesBench: --bytes (join, demo) and bench's -min/-max read
// a size the same way.
func TestByteSizeMatchesBench(t *testing.T) {
	for _, in := range []string{"0", "1", "123B", "8K", "8k", "8KB", "8kb", "8KiB", "8kib", "16M", "16m", "16MB", "16MiB", "1G", "1gb", "2GiB", " 4 K "} {
		var b byteSize
		require.NoError(t, b.Set(in), in)
		n, err := osu.ParseSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, int64(n), int64(b), in)
	}
}

// TestCheckJobAgreesWithJoin: rendezvous.CheckJob, which fnmesh join checks
// --job with, refuses exactly the job IDs that rendezvous.Join refuses,
// with the same reason.
func TestCheckJobAgreesWithJoin(t *testing.T) {
	const jobLen = 128 // the protocol's longest job ID
	for _, tc := range []struct {
		job  string
		want string // "": valid
	}{
		{"j", ""},
		{"job-42 (nightly), ünïcode ✓", ""},
		{strings.Repeat("j", jobLen), ""},
		{strings.Repeat("é", jobLen/2), ""},
		{"", "job ID of 0 bytes (want 1..128)"},
		{strings.Repeat("j", jobLen+1), "job ID of 129 bytes (want 1..128)"},
		{strings.Repeat("é", jobLen/2) + "j", "job ID of 129 bytes (want 1..128)"},
		{"a\tb", "job ID has an invalid or control character at byte 1"},
		{"ab\x7f", "job ID has an invalid or control character at byte 2"},
		{"a\u0085", "job ID has an invalid or control character at byte 1"},
		{"a\nb", "job ID has an invalid or control character at byte 1"},
		{"a\xffb", "job ID is not UTF-8"},
	} {
		err := rendezvous.CheckJob(tc.job)
		// A job ID Join refuses fails it at once, before any dial; with
		// a context that has ended, a valid one fails on the context.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, joinErr := rendezvous.Join(ctx, "127.0.0.1:1", tc.job, 2, []byte("agreement test secret, 32 bytes."),
			rendezvous.WithConnectRetry(0))
		require.Error(t, joinErr, "%q", tc.job)
		if tc.want == "" {
			assert.NoError(t, err, "%q", tc.job)
			assert.NotContains(t, joinErr.Error(), "job ID", "%q", tc.job)
			continue
		}
		assert.EqualError(t, err, tc.want, "%q", tc.job)
		assert.ErrorContains(t, joinErr, ": "+tc.want, "%q", tc.job)
	}
}
