package rendezvous

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	ep4 = netip.MustParseAddrPort("198.51.100.7:40001")
	ep6 = netip.MustParseAddrPort("[2001:db8::7]:40002")
	ep8 = netip.MustParseAddrPort("198.18.0.2:5000")
)

func nonceOf(b byte) (n [nonceSize]byte) {
	for i := range n {
		n[i] = b + byte(i)
	}
	return n
}

func macOf(b byte) (m [macSize]byte) {
	for i := range m {
		m[i] = b ^ byte(i)
	}
	return m
}

// sampleMessages has one or more values of every message type.
func sampleMessages() map[string]message {
	return map[string]message{
		"hello":     hello{},
		"challenge": challenge{Nonce: nonceOf(1), PingInterval: 5 * time.Second},
		"join any rank": join{Echo: nonceOf(2), ClientNonce: nonceOf(3), Job: "job-1", World: 64, Rank: -1,
			PunchTimeout: 0, Private: []netip.AddrPort{ep8}, MAC: macOf(4)},
		"join full": join{Echo: nonceOf(2), ClientNonce: nonceOf(3), Job: "ジョブ/42", World: MaxWorld, Rank: MaxWorld - 1,
			PunchTimeout: 1500 * time.Millisecond, Public: ep4, Private: []netip.AddrPort{ep8, ep6}, MAC: macOf(5)},
		"joined":       joined{World: 3, Joined: 3, MAC: macOf(6)},
		"joined first": joined{World: MaxWorld, Joined: 1, MAC: macOf(7)},
		"ping":         ping{Seq: 7, Joined: 12},
		"ping full":    ping{Seq: 8, Joined: MaxWorld},
		"pong":         pong{Seq: 1<<32 - 1},
		"peers": peers{Members: []peerEntry{
			{Observed: ep4, Private: []netip.AddrPort{ep8}},
			{Observed: ep6, Public: ep4, Private: nil},
			{Observed: ep8, Private: []netip.AddrPort{ep8, ep4, ep6}},
		}},
		"start":          start{Rank: 5, Delay: 12345 * time.Microsecond, PunchTimeout: 3 * time.Second, RelayTimeout: 10 * time.Second},
		"report failed":  report{Peer: 0, Outcome: outcomeFailed},
		"report lan":     report{Peer: 4095, Outcome: outcomeLAN},
		"report public":  report{Peer: 9, Outcome: outcomePublic},
		"verdict direct": verdict{Peer: 1, Tier: TierDirect},
		"verdict punch":  verdict{Peer: 2, Tier: TierPunched},
		"verdict relay":  verdict{Peer: 3, Tier: TierRelay, Nonce: nonceOf(9)},
		"done":           done{},
		"relay hello":    relayHello{Job: "j", Rank: 1, Peer: 0, Nonce: nonceOf(10), MAC: macOf(11)},
		"relay ready":    relayReady{},
		"error":          errorMsg{Code: CodeMemberLeft, Rank: 3, Msg: "rank 3 left"},
		"error no rank":  errorMsg{Code: CodeAuth, Rank: -1, Msg: ""},
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	for name, m := range sampleMessages() {
		t.Run(name, func(t *testing.T) {
			b := encodeFrame(m)
			require.Equal(t, []byte{'F', 'M', ProtoVersion, byte(m.msgType())}, b[:4])
			require.Equal(t, uint32(len(b)-frameHeader), binary.BigEndian.Uint32(b[4:8]))
			got, err := decodeFrame(b, MaxPayload)
			require.NoError(t, err)
			assert.Equal(t, m, got)
			// The same through a stream, with the next frame behind it.
			r := bytes.NewReader(append(append([]byte(nil), b...), b...))
			got, err = readMessage(r, MaxPayload)
			require.NoError(t, err)
			assert.Equal(t, m, got)
			assert.Equal(t, len(b), r.Len(), "readMessage must not read past its frame")
		})
	}
}

// TestMessageLayout pins a few messages byte by byte, as docs/rendezvous.md specifies them.
func TestMessageLayout(t *testing.T) {
	tests := []struct {
		name string
		m    message
		want []byte
	}{
		{"hello", hello{}, []byte{0x46, 0x4D, 2, 0x01, 0, 0, 0, 0}},
		{"ping", ping{Seq: 0x01020304, Joined: 12}, []byte{0x46, 0x4D, 2, 0x05, 0, 0, 0, 8, 1, 2, 3, 4, 0, 0, 0, 12}},
		{"joined", joined{World: 64, Joined: 3, MAC: macOf(0)}, append([]byte{0x46, 0x4D, 2, 0x04, 0, 0, 0, 40, 0, 0, 0, 64, 0, 0, 0, 3},
			func() []byte { m := macOf(0); return m[:] }()...)},
		{"report", report{Peer: 5, Outcome: outcomePublic}, []byte{0x46, 0x4D, 2, 0x09, 0, 0, 0, 5, 0, 0, 0, 5, 2}},
		{"verdict punched", verdict{Peer: 1, Tier: TierPunched}, []byte{0x46, 0x4D, 2, 0x0A, 0, 0, 0, 5, 0, 0, 0, 1, 2}},
		{"error", errorMsg{Code: CodeMemberLeft, Rank: -1, Msg: "x"}, []byte{0x46, 0x4D, 2, 0x0E, 0, 0, 0, 9,
			0, 7, 0xFF, 0xFF, 0xFF, 0xFF, 0, 1, 'x'}},
		{"start", start{Rank: 2, Delay: 300 * time.Microsecond, PunchTimeout: time.Second, RelayTimeout: 2 * time.Second},
			[]byte{0x46, 0x4D, 2, 0x08, 0, 0, 0, 16, 0, 0, 0, 2, 0, 0, 0x01, 0x2C, 0, 0, 0x03, 0xE8, 0, 0, 0x07, 0xD0}},
		{"peers", peers{Members: []peerEntry{{Observed: netip.MustParseAddrPort("203.0.113.1:258"),
			Private: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:1")}}}},
			[]byte{0x46, 0x4D, 2, 0x07, 0, 0, 0, 20, 0, 0, 0, 1, 4, 203, 0, 113, 1, 1, 2, 0, 1, 4, 198, 18, 0, 1, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, encodeFrame(tt.m))
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	frame := func(typ msgType, payload ...byte) []byte {
		b := []byte{'F', 'M', ProtoVersion, byte(typ), 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[4:], uint32(len(payload)))
		return append(b, payload...)
	}
	joinFrame := func(mut func(*join)) []byte {
		j := join{Echo: nonceOf(1), ClientNonce: nonceOf(2), Job: "ok", World: 4, Rank: -1, Private: []netip.AddrPort{ep8}}
		mut(&j)
		return encodeFrame(j)
	}
	withPayloadByte := func(b []byte, off int, v byte) []byte {
		b = append([]byte(nil), b...)
		b[frameHeader+off] = v
		return b
	}
	long := make([]byte, 9)
	tests := []struct {
		name  string
		frame []byte
		limit int
		code  Code
		want  string
	}{
		{"short header", []byte{'F', 'M', ProtoVersion}, MaxPayload, CodeMalformed, "shorter than its header"},
		{"bad magic", []byte{'G', 'M', ProtoVersion, 1, 0, 0, 0, 0}, MaxPayload, CodeMalformed, "bad magic"},
		{"future version", []byte{'F', 'M', 3, 1, 0, 0, 0, 0}, MaxPayload, CodeVersion, "version 3"},
		{"version 1", []byte{'F', 'M', 1, 1, 0, 0, 0, 0}, MaxPayload, CodeVersion, "version 1 not supported (this side speaks 2)"},
		{"oversized", frame(typePing, long...), 8, CodeTooLarge, "exceeds the limit of 8"},
		{"length beyond data", append(frame(typePing, 0, 0, 0, 1)[:7], 5, 1, 2), MaxPayload, CodeMalformed, "header says 5"},
		{"unknown type", frame(0x7F), MaxPayload, CodeMalformed, "unknown message type 0x7f"},
		{"trailing bytes", frame(typeHello, 0), MaxPayload, CodeMalformed, "1 trailing bytes"},
		{"truncated ping", frame(typePing, 0, 0), MaxPayload, CodeMalformed, "truncated"},
		{"version 1 ping (no count)", frame(typePing, 0, 0, 0, 1), MaxPayload, CodeMalformed, "truncated"},
		{"ping, none joined", frame(typePing, 0, 0, 0, 1, 0, 0, 0, 0), MaxPayload, CodeMalformed, "0 members joined"},
		{"ping, too many joined", frame(typePing, 0, 0, 0, 1, 0, 0, 0x10, 1), MaxPayload, CodeMalformed, "4097 members joined"},
		{"joined, more than the world", encodeFrame(joined{World: 4, Joined: 5}), MaxPayload, CodeMalformed, "5 members joined out of range 1..4"},
		{"joined, none", encodeFrame(joined{World: 4, Joined: 0}), MaxPayload, CodeMalformed, "0 members joined"},
		{"joined, world 0", encodeFrame(joined{World: 0, Joined: 1}), MaxPayload, CodeMalformed, "world size 0"},
		{"bad outcome", frame(typeReport, 0, 0, 0, 1, 3), MaxPayload, CodeMalformed, "outcome 3"},
		{"peer out of range", frame(typeReport, 0, 0, 0x10, 0, 1), MaxPayload, CodeMalformed, "peer 4096 out of range"},
		{"bad tier", frame(typeVerdict, 0, 0, 0, 1, 4), MaxPayload, CodeMalformed, "tier 4"},
		{"relay verdict without ticket", frame(typeVerdict, 0, 0, 0, 1, 3), MaxPayload, CodeMalformed, "truncated"},
		{"world 0", joinFrame(func(j *join) { j.World = 0 }), MaxPayload, CodeMalformed, "world size 0"},
		{"world too big", joinFrame(func(j *join) { j.World = MaxWorld + 1 }), MaxPayload, CodeMalformed, "world size 4097"},
		{"empty job", joinFrame(func(j *join) { j.Job = "" }), MaxPayload, CodeMalformed, "job ID of 0 bytes"},
		{"control char in job", joinFrame(func(j *join) { j.Job = "a\nb" }), MaxPayload, CodeMalformed, "control character"},
		{"invalid UTF-8 job", joinFrame(func(j *join) { j.Job = "a\xffb" }), MaxPayload, CodeMalformed, "not UTF-8"},
		{"too many endpoints", joinFrame(func(j *join) { j.Private = make([]netip.AddrPort, 9) }), MaxPayload, CodeMalformed, "9 endpoints"},
		{"endpoint port 0", joinFrame(func(j *join) { j.Private = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:0")} }), MaxPayload, CodeMalformed, "port 0"},
		{"unspecified endpoint", joinFrame(func(j *join) { j.Private = []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:1")} }), MaxPayload, CodeMalformed, "no address"},
		{"mapped IPv4 as family 6", joinFrame(func(j *join) {
			j.Private = []netip.AddrPort{netip.MustParseAddrPort("[::1]:1")}
		}), MaxPayload, CodeMalformed, "", // patched below to ::ffff:198.18.0.1
		},
		{"endpoint family 5", withPayloadByte(joinFrame(func(j *join) {}), 16+16+3+4+4+4+1+1, 5), MaxPayload, CodeMalformed, "family 5"},
		{"public flag 2", withPayloadByte(joinFrame(func(j *join) {}), 16+16+3+4+4+4, 2), MaxPayload, CodeMalformed, "flags 0x02"},
		{"relay to itself", encodeFrame(relayHello{Job: "j", Rank: 2, Peer: 2}), MaxPayload, CodeMalformed, "to itself"},
		{"error text too long", frame(typeError, 0, 1, 0, 0, 0, 0, 0x04, 0x01), MaxPayload, CodeMalformed, "1025 bytes"},
		{"error text not UTF-8", frame(typeError, 0, 1, 0, 0, 0, 0, 0, 1, 0xff), MaxPayload, CodeMalformed, "not UTF-8"},
	}
	// A v4-mapped IPv6 endpoint must be sent as family 4.
	mapped := joinFrame(func(j *join) { j.Private = []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:1")} })
	off := frameHeader + 16 + 16 + 3 + 4 + 4 + 4 + 1 + 1 + 1 // first address byte of the private endpoint
	copy(mapped[off:], netip.MustParseAddr("::ffff:198.18.0.1").AsSlice())
	for i := range tests {
		if tests[i].name == "mapped IPv4 as family 6" {
			tests[i].frame, tests[i].want = mapped, "IPv4-mapped"
		}
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeFrame(tt.frame, tt.limit)
			require.Error(t, err)
			var e *Error
			require.True(t, errors.As(err, &e), "error %v is not an *Error", err)
			assert.Equal(t, tt.code, e.Code, "error: %v", err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestReadMessageTruncated(t *testing.T) {
	b := encodeFrame(ping{Seq: 1})
	for n := 0; n < len(b); n++ {
		_, err := readMessage(bytes.NewReader(b[:n]), MaxPayload)
		require.Error(t, err, "prefix of %d bytes", n)
		if n > 0 {
			assert.True(t, errors.Is(err, io.ErrUnexpectedEOF), "prefix %d: %v", n, err)
		}
	}
}

func TestErrorText(t *testing.T) {
	long := strings.Repeat("é", 600) // 1200 bytes
	b := encodeFrame(errorMsg{Code: CodeMalformed, Rank: -1, Msg: long})
	m, err := decodeFrame(b, MaxPayload)
	require.NoError(t, err)
	got := m.(errorMsg).Msg
	assert.Len(t, got, 1024)
	assert.True(t, strings.HasPrefix(long, got))
}

// FuzzDecodeFrame checks that the decoder never panics on any input, and that
// whatever it accepts re-encodes to exactly the same bytes (the encoding is
// canonical, so a frame has one meaning).
func FuzzDecodeFrame(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(encodeFrame(m))
	}
	f.Add([]byte{})
	f.Add([]byte{'F', 'M', ProtoVersion, 0x03, 0, 0, 0, 1, 0})
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeFrame(b, MaxPayload)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("decode error %v is not an *Error", err)
			}
			return
		}
		if again := encodeFrame(m); !bytes.Equal(again, b) {
			t.Fatalf("frame %x decodes to %#v which encodes to %x", b, m, again)
		}
	})
}

// TestMillis: durations go on the wire as whole milliseconds, rounded up,
// so that a positive duration never becomes 0 ("the default").
func TestMillis(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want uint32
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Nanosecond, 1},
		{time.Millisecond, 1},
		{time.Millisecond + 1, 2},
		{1500 * time.Microsecond, 2},
		{3 * time.Second, 3000},
		{1 << 62, 1<<32 - 1},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, millis(tt.d), "%v", tt.d)
	}
}
