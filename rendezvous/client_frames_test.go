package rendezvous

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClientServerBadFrameSaysSo: a frame from the server the client cannot
// decode (after the handshake) fails Join with an error that says the server
// broke the protocol, not that it was lost; errors.Is still finds the code.
func TestClientServerBadFrameSaysSo(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		code Code
		want string
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\n"), CodeMalformed, "rendezvous server sent a malformed frame: malformed: not an fnmesh frame"},
		{"unknown type", rawFrameHeader(ProtoVersion, 0x77, 0), CodeMalformed, "rendezvous server sent a malformed frame: malformed: unknown message type 0x77"},
		{"too large", rawFrameHeader(ProtoVersion, byte(typePeers), MaxPayload+1), CodeTooLarge, "rendezvous server sent a frame over the size limit: too-large: peers frame of 1048577 bytes exceeds the limit of 1048576"},
		{"future version", rawFrameHeader(3, byte(typePeers), 0), CodeVersion, "rendezvous server speaks another protocol version: version: protocol version 3 not supported (this side speaks 2)"},
		{"version 1 (no joined counts)", rawFrameHeader(1, byte(typePeers), 0), CodeVersion, "rendezvous server speaks another protocol version: version: protocol version 1 not supported (this side speaks 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeServer(t, time.Second, func(m *fakeMember) { m.c.Write(tc.raw); m.drain() }, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := Join(ctx, srv.addr, "j", 2, testSecret)
			require.Error(t, err)
			t.Log(err)
			assert.ErrorContains(t, err, tc.want)
			assert.ErrorContains(t, err, srv.addr)
			assert.NotContains(t, err.Error(), "lost the rendezvous server")
			assert.ErrorIs(t, err, &Error{Code: tc.code})
			var e *Error
			assert.True(t, errors.As(err, &e))
		})
	}
}

// rawFrameHeader is a frame header of any version, type and length.
func rawFrameHeader(version, typ byte, n uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{frameMagic0, frameMagic1, version, typ}, n)
}

// TestClientBadFrameBeforeJoined: a malformed frame where the client awaits
// the server's joined says so too; an error frame of code malformed (the
// server's refusal of what the client sent) is not reworded; and a frame cut
// short by the server's end is a lost server.
func TestClientBadFrameBeforeJoined(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := readMessage(br, maxClientLoad); err != nil {
			return
		}
		writeMessage(c, challenge{Nonce: newNonce(), PingInterval: time.Second})
		if _, err := readMessage(br, maxClientLoad); err != nil {
			return
		}
		c.Write(rawFrameHeader(ProtoVersion, 0x77, 0))
		c.Read(make([]byte, 1))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Join(ctx, ln.Addr().String(), "j", 2, testSecret)
	require.Error(t, err)
	assert.ErrorContains(t, err, "waiting for the server to accept the join: rendezvous server sent a malformed frame: malformed: unknown message type 0x77")
	assert.ErrorIs(t, err, &Error{Code: CodeMalformed})

	for _, tc := range []struct {
		name   string
		script func(*fakeMember)
		want   string
	}{
		{"refusal", func(m *fakeMember) { m.send(errorMsg{Code: CodeMalformed, Rank: -1, Msg: "your report"}) },
			" s ago): malformed: your report"},
		{"cut short", func(m *fakeMember) { m.c.Write(rawFrameHeader(ProtoVersion, byte(typePeers), 100)) },
			" s ago): lost the rendezvous server: reading peers payload: unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeServer(t, time.Second, tc.script, nil)
			_, err := Join(ctx, srv.addr, "j", 2, testSecret)
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.want)
			assert.NotContains(t, err.Error(), "sent a malformed frame")
		})
	}
}
