package collective

import (
	"context"
	"fmt"
	"hash/crc32"
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
					if tc.tamper && !tc.queued {
						// Rank 2's failure may reach every rank before
						// a second message would.
						return nil
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
						// Rank 2 may fail before it has read everything,
						// and its failure fails this rank's later calls.
						return nil
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

// TestCopySum: copySum copies as copy does and returns the checksum of the
// copy (hash/crc32's Castagnoli table as the oracle), for whole pieces,
// remainders and buffers that overlap.
func TestCopySum(t *testing.T) {
	oracle := crc32.MakeTable(crc32.Castagnoli)
	cases := []struct {
		name           string
		n              int
		shared         bool // src and dst in one array, at srcOff and dstOff
		srcOff, dstOff int
		extra          int // dst this much longer than src
	}{
		{"empty", 0, false, 0, 0, 0},
		{"one byte", 1, false, 0, 0, 0},
		{"under a piece", copySumPiece - 1, false, 0, 0, 0},
		{"one piece", copySumPiece, false, 0, 0, 0},
		{"pieces and a remainder", 3*copySumPiece + 5, false, 0, 0, 0},
		{"dst longer", copySumPiece + 3, false, 0, 0, 7},
		{"in place", 2*copySumPiece + 1, true, 0, 0, 0},
		{"dst after src", 2*copySumPiece + 1, true, 0, 100, 0},
		{"dst before src", 2*copySumPiece + 1, true, 100, 0, 0},
		{"adjacent", copySumPiece, true, 0, copySumPiece, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var src, dst []byte
			if tc.shared {
				arr := payload(1, max(tc.srcOff, tc.dstOff)+tc.n+tc.extra, 3)
				src = arr[tc.srcOff : tc.srcOff+tc.n]
				dst = arr[tc.dstOff : tc.dstOff+tc.n+tc.extra]
			} else {
				src = payload(1, tc.n, 3)
				dst = make([]byte, tc.n+tc.extra)
			}
			want := append([]byte{}, src...)
			sum := copySum(dst, src)
			require.Equal(t, want, dst[:tc.n])
			require.True(t, sum.ok)
			assert.Equal(t, crc32.Checksum(want, oracle), sum.crc)
		})
	}
}

// TestAllgatherIntoOwnChecksum: AllgatherInto's ring and recursive
// doubling send each rank's own block with the checksum computed as the
// block was copied into place (copySum), and recursive doubling each later
// step's blocks with the checksums of the previous step's joined
// (crc32c.Combine); every block arrives bit-identical and passes the check
// at every rank, forwarded ones too, with and without a trailer.
func TestAllgatherIntoOwnChecksum(t *testing.T) {
	cases := []struct {
		algo Algorithm
		p    int
	}{
		{AllgatherRing, 2}, {AllgatherRing, 3},
		{AllgatherRecursiveDoubling, 2}, {AllgatherRecursiveDoubling, 4}, {AllgatherRecursiveDoubling, 8},
	}
	for _, tc := range cases {
		p := tc.p
		for _, n := range []int{1000, streamMin + 12345} {
			t.Run(fmt.Sprintf("%s/p=%d/n=%d", tc.algo, p, n), func(t *testing.T) {
				tu := DefaultTuning()
				tu.Force[OpAllgather] = tc.algo
				comms := newComms(t, tcpMesh, p, WithTuning(tu))
				outs := make([][]byte, p)
				errs := runAll(t, comms, 20*time.Second, func(ctx context.Context, c *Comm) error {
					outs[c.Rank()] = make([]byte, p*n)
					return c.AllgatherInto(ctx, payload(c.Rank(), n, 9), outs[c.Rank()])
				})
				var want []byte
				for r := range p {
					want = append(want, payload(r, n, 9)...)
				}
				for r := range p {
					require.NoError(t, errs[r], "rank %d", r)
					assert.Equal(t, want, outs[r], "rank %d", r)
				}
			})
		}
	}
}
