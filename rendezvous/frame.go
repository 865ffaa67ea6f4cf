package rendezvous

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The wire format: every message is one frame, an 8-byte header followed by
// a payload. docs/rendezvous.md specifies every message byte by byte.
//
//	offset size field
//	0      2    magic "FM" (0x46 0x4D)
//	2      1    protocol version (2)
//	3      1    message type
//	4      4    payload length, big endian
//	8      n    payload
//
// The first byte, 0x46, has its two high bits set to 01, which no STUN
// message can have (RFC 5389 section 6), so one TCP port carries both.
const (
	frameMagic0   = 'F'
	frameMagic1   = 'M'
	frameHeader   = 8
	ProtoVersion  = 2       // the protocol version this package speaks (docs/rendezvous.md lists the changes)
	MaxPayload    = 1 << 20 // largest payload any peer accepts (the peer table of a 4096-rank job fits)
	maxClientLoad = 4 << 10 // largest payload the server accepts from a client
)

// msgType identifies a message; the values are part of the wire format.
type msgType uint8

const (
	typeHello      msgType = 0x01 // client -> server: first frame of a control connection
	typeChallenge  msgType = 0x02 // server -> client: fresh nonce to sign
	typeJoin       msgType = 0x03 // client -> server: job, world, rank, endpoints, MAC
	typeJoined     msgType = 0x04 // server -> client: accepted, server's proof of the secret
	typePing       msgType = 0x05 // server -> client: RTT probe and keepalive
	typePong       msgType = 0x06 // client -> server: echo of a ping
	typePeers      msgType = 0x07 // server -> client: the peer table of a complete job
	typeStart      msgType = 0x08 // server -> client: your rank, when to punch, deadlines
	typeReport     msgType = 0x09 // client -> server: outcome of one pair's punch
	typeVerdict    msgType = 0x0A // server -> client: the tier a pair takes (the server arbitrates)
	typeDone       msgType = 0x0B // client -> server: every link of this member is ready
	typeRelayHello msgType = 0x0C // client -> server: first frame of a relay connection
	typeRelayReady msgType = 0x0D // server -> client: partner present, raw bytes follow
	typeError      msgType = 0x0E // either way: what went wrong; the sender then closes
)

var typeNames = map[msgType]string{
	typeHello: "hello", typeChallenge: "challenge", typeJoin: "join", typeJoined: "joined",
	typePing: "ping", typePong: "pong", typePeers: "peers", typeStart: "start",
	typeReport: "report", typeVerdict: "verdict", typeDone: "done",
	typeRelayHello: "relay-hello", typeRelayReady: "relay-ready", typeError: "error",
}

func (t msgType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type-0x%02x", uint8(t))
}

// header is a decoded frame header.
type header struct {
	typ msgType
	len int
}

// errNotFrame reports a header that is not an fnmesh frame at all.
var errNotFrame = &Error{Code: CodeMalformed, Rank: -1, Msg: "not an fnmesh frame (bad magic)"}

// parseHeader checks a frame header against the payload limit.
func parseHeader(b []byte, limit int) (header, error) {
	if b[0] != frameMagic0 || b[1] != frameMagic1 {
		return header{}, errNotFrame
	}
	if b[2] != ProtoVersion {
		return header{}, &Error{Code: CodeVersion, Rank: -1,
			Msg: fmt.Sprintf("protocol version %d not supported (this side speaks %d)", b[2], ProtoVersion)}
	}
	n := binary.BigEndian.Uint32(b[4:8])
	if n > uint32(limit) {
		return header{}, &Error{Code: CodeTooLarge, Rank: -1,
			Msg: fmt.Sprintf("%v frame of %d bytes exceeds the limit of %d", msgType(b[3]), n, limit)}
	}
	return header{typ: msgType(b[3]), len: int(n)}, nil
}

// readMessage reads and decodes one frame. It reads exactly the frame's bytes
// and no more, so a relay connection can hand its socket to the kernel's
// splice path right after its first frame.
func readMessage(r io.Reader, limit int) (message, error) {
	var hb [frameHeader]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return nil, err
	}
	return readAfterHeader(r, hb[:], limit)
}

// readAfterHeader finishes reading a frame whose header was already read.
func readAfterHeader(r io.Reader, hb []byte, limit int) (message, error) {
	h, err := parseHeader(hb, limit)
	if err != nil {
		return nil, err
	}
	payload := make([]byte, h.len)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading %v payload: %w", h.typ, err)
	}
	return decodePayload(h.typ, payload)
}

// decodeFrame decodes one complete frame held in b; trailing bytes are an error.
func decodeFrame(b []byte, limit int) (message, error) {
	if len(b) < frameHeader {
		return nil, malformed("frame of %d bytes is shorter than its header", len(b))
	}
	h, err := parseHeader(b[:frameHeader], limit)
	if err != nil {
		return nil, err
	}
	if len(b)-frameHeader != h.len {
		return nil, malformed("%v frame: header says %d payload bytes, have %d", h.typ, h.len, len(b)-frameHeader)
	}
	return decodePayload(h.typ, b[frameHeader:])
}

// encodeFrame returns the complete frame of m.
func encodeFrame(m message) []byte {
	b := make([]byte, frameHeader, 64)
	b[0], b[1], b[2], b[3] = frameMagic0, frameMagic1, ProtoVersion, byte(m.msgType())
	b = m.appendPayload(b)
	binary.BigEndian.PutUint32(b[4:8], uint32(len(b)-frameHeader))
	return b
}

// writeMessage writes the frame of m in one Write.
func writeMessage(w io.Writer, m message) error {
	_, err := w.Write(encodeFrame(m))
	return err
}

func malformed(format string, args ...any) error {
	return &Error{Code: CodeMalformed, Rank: -1, Msg: fmt.Sprintf(format, args...)}
}
