package collective

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/internal/crc32c"
)

// TestForwardKnownChecksum: rank 1 receives a message from rank 0 and
// forwards it to rank 2 with the checksum it arrived with (link.sendSum), as
// the ring allgather and the bcast trees do. The message arrives at rank 2
// bit-identical; if rank 1's copy changed between receipt and forward, rank
// 2 finds it (the checksum checked is the first sender's); a first hop
// without a checksum gives no checksum to forward.
func TestForwardKnownChecksum(t *testing.T) {
	cases := []struct {
		name     string
		kind     meshKind
		size     int
		tamper   bool
		queued   bool // the message is queued before rank 1 posts its receive
		firstOff bool // rank 0 sends without a checksum
	}{
		{"empty", pipeKind, 0, false, false, false},
		{"header checksum", pipeKind, 1000, false, false, false},
		{"header checksum tampered", pipeKind, 1000, true, false, false},
		{"header checksum queued", pipeKind, 1000, false, true, false},
		{"trailer checksum", tcpMesh, streamMin + 12345, false, false, false},
		{"trailer checksum tampered", tcpMesh, streamMin + 12345, true, false, false},
		{"trailer checksum queued and tampered", tcpMesh, streamMin + 12345, true, true, false},
		{"trailer checksum over pipes", pipeKind, 3 * streamMin, false, false, false},
		{"first hop unchecked", pipeKind, 5000, false, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var comms []*Comm
			if tc.firstOff {
				links := pipeMesh(3)
				for i := range 3 {
					c, err := New(i, links[i], WithChecksum(i != 0))
					require.NoError(t, err)
					t.Cleanup(func() { _ = c.Close() })
					comms = append(comms, c)
				}
			} else {
				comms = newComms(t, tc.kind, 3)
			}
			const tag = 5
			msg := payload(0, tc.size, 11)
			k := key{comms[1].id, tag}
			var (
				got     []byte
				recvErr error
				sum     msgSum // as rank 1 received it
			)
			errs := runAll(t, comms, 10*time.Second, func(ctx context.Context, c *Comm) error {
				switch c.Rank() {
				case 0:
					if err := c.Send(ctx, 1, tag, msg); err != nil {
						return err
					}
					return c.Send(ctx, 1, tag+1, nil)
				case 1:
					if tc.queued { // the link delivers in order: msg is queued by now
						if _, err := c.Recv(ctx, 0, tag+1); err != nil {
							return err
						}
					}
					dst := make([]byte, tc.size)
					_, _, s, err := waitSum(c.links[0].post(k, modeExact, dst))
					if err != nil {
						return err
					}
					sum = s
					if tc.firstOff {
						s = msgSum{crc: crc32c.Checksum(dst), ok: true} // as send would compute it
					}
					if tc.tamper {
						dst[len(dst)/2] ^= 0x10
					}
					err = c.links[2].sendSum(ctx, k, [][]byte{dst}, s)
					if tc.tamper {
						err = nil // rank 2 may fail before it has read everything
					}
					if !tc.queued && err == nil {
						_, err = c.Recv(ctx, 0, tag+1)
					}
					return err
				default:
					got, recvErr = c.Recv(ctx, 1, tag)
					return nil
				}
			})
			require.NoError(t, errs[0])
			require.NoError(t, errs[1])
			if tc.firstOff {
				assert.False(t, sum.ok, "a message sent without a checksum has none to forward")
			} else {
				require.True(t, sum.ok)
				assert.Equal(t, crc32c.Checksum(msg), sum.crc)
			}
			if tc.tamper {
				require.ErrorIs(t, recvErr, ErrCorrupt)
				return
			}
			require.NoError(t, recvErr)
			assert.Equal(t, msg, got)
		})
	}
}
