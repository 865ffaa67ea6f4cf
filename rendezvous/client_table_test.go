package rendezvous

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawPeers is a peers frame of two members whose second observed endpoint
// is addr (4 bytes) and port, bypassing the encoder's checks.
func rawPeers(first []byte, addr [4]byte, port uint16) []byte {
	var p []byte
	p = binary.BigEndian.AppendUint32(p, 2)
	p = append(p, first...)
	p = append(p, 4)
	p = append(p, addr[:]...)
	p = binary.BigEndian.AppendUint16(p, port)
	p = append(p, 0, 0)
	h := []byte{0x46, 0x4D, ProtoVersion, 0x07}
	h = binary.BigEndian.AppendUint32(h, uint32(len(p)))
	return append(h, p...)
}

// TestClientHostileTable: a peer table or verdict the client cannot use
// fails Join at once with an error naming the server, never a hang or panic.
func TestClientHostileTable(t *testing.T) {
	first := []byte{4, 127, 0, 0, 1, 0, 9, 0, 0}
	tests := []struct {
		name   string
		script func(m *fakeMember)
		want   string
	}{
		{"unspecified endpoint", func(m *fakeMember) { m.c.Write(rawPeers(first, [4]byte{}, 80)) }, "0.0.0.0:80"},
		{"multicast endpoint", func(m *fakeMember) { m.c.Write(rawPeers(first, [4]byte{224, 0, 0, 1}, 80)) }, "multicast"},
		{"port 0", func(m *fakeMember) { m.c.Write(rawPeers(first, [4]byte{127, 0, 0, 1}, 0)) }, "port"},
		{"short table", func(m *fakeMember) { m.send(m.table(1, 0)) }, "peer table of 1 members"},
		{"long table", func(m *fakeMember) { m.send(m.table(3, 0)) }, "peer table of 3 members"},
		{"rank out of range", func(m *fakeMember) {
			m.send(m.table(2, 0))
			m.send(start{Rank: 2, PunchTimeout: time.Second, RelayTimeout: time.Second})
		}, "assigned rank 2"},
		{"verdict for itself", func(m *fakeMember) {
			m.send(m.table(2, 0))
			m.send(start{Rank: 0, PunchTimeout: 5 * time.Second, RelayTimeout: time.Second})
			m.send(verdict{Peer: 0, Tier: TierDirect})
		}, "one verdict per peer"},
		{"verdict out of range", func(m *fakeMember) {
			m.send(m.table(2, 0))
			m.send(start{Rank: 0, PunchTimeout: 5 * time.Second, RelayTimeout: time.Second})
			m.send(verdict{Peer: 7, Tier: TierDirect})
		}, "one verdict per peer"},
		{"verdict before start", func(m *fakeMember) {
			m.send(verdict{Peer: 1, Tier: TierDirect})
		}, "one verdict per peer"},
		{"start before table", func(m *fakeMember) {
			m.send(start{Rank: 0, PunchTimeout: time.Second, RelayTimeout: time.Second})
		}, "start after one peer table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFakeServer(t, time.Second, func(m *fakeMember) { tt.script(m); m.drain() }, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			began := time.Now()
			_, err := Join(ctx, srv.addr, "hostile", 2, testSecret)
			require.Error(t, err)
			t.Log(err)
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, srv.addr)
			require.Less(t, time.Since(began), 3*time.Second)
		})
	}
}

// TestClientServerProtocolErrorIsNotARefusal: a frame out of order from the
// server is the server's fault, not a refusal of ours: Join's error must not
// match an *Error with code bad-request (what "rank taken" gives), or a
// caller that picks another rank on bad-request would act on a lie.
func TestClientServerProtocolErrorIsNotARefusal(t *testing.T) {
	srv := startFakeServer(t, time.Second, func(m *fakeMember) {
		m.send(verdict{Peer: 1, Tier: TierDirect})
		m.drain()
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Join(ctx, srv.addr, "hostile", 2, testSecret)
	require.Error(t, err)
	var e *Error
	require.False(t, errors.As(err, &e), "error %q is an *Error", err)
	require.ErrorContains(t, err, "the server sent verdict")
}
