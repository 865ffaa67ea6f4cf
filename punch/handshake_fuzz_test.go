package punch

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// fuzzSeeds are the seed corpus of the handshake fuzz targets: valid frames
// and the near misses a stray or hostile connection sends.
func fuzzSeeds() [][]byte {
	hello1 := validHelloFrom(1, 0)
	proofFrame := make([]byte, headerLen+proofBodyLen)
	putHeader(proofFrame, kindProof, proofBodyLen)
	v1 := bytes.Clone(hello1)
	v1[4] = 1
	big := bytes.Clone(hello1)
	big[6], big[7] = 0xFF, 0xFF
	return [][]byte{
		nil,
		hello1,
		append(bytes.Clone(hello1), proofFrame...),
		hello1[:headerLen],
		hello1[:helloFrameLen-1],
		v1,
		big,
		validHelloFrom(0, 1),
		validHelloFrom(1<<31, 0),
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		[]byte("FNMH"),
		{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
	}
}

// FuzzHandshakeHello: the hello decoder never panics, accepts only whole
// hello frames of version 2, and what it accepts re-encodes to the same
// bytes.
func FuzzHandshakeHello(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHello(b)
		if err != nil {
			if !IsRejection(err) {
				t.Fatalf("decoder error %v is not a rejection", err)
			}
			return
		}
		if len(b) != helloFrameLen || string(b[:4]) != frameMagic || b[4] != handshakeV || frameKind(b[5]) != kindHello {
			t.Fatalf("accepted a frame that is not a v2 hello: %x", b)
		}
		if got := h.marshal(); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, decoded from %x", got, b)
		}
	})
}

// streamConn is a net.Conn that reads a fixed byte stream and discards what
// is written: a peer that sends whatever the fuzzer chose.
type streamConn struct {
	r io.Reader
}

func (c *streamConn) Read(b []byte) (int, error)         { return c.r.Read(b) }
func (c *streamConn) Write(b []byte) (int, error)        { return len(b), nil }
func (c *streamConn) Close() error                       { return nil }
func (c *streamConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *streamConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *streamConn) SetDeadline(time.Time) error        { return nil }
func (c *streamConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzHandshake: whatever a peer sends, Handshake returns (no panic, no
// hang) and never accepts it: without the secret and our fresh nonce no
// byte string carries a valid proof. Both the dialing side (peer rank known)
// and the accepting side of a Port (any rank) are fuzzed.
func FuzzHandshake(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, accepting bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c := &streamConn{r: bytes.NewReader(b)}
		peer := 1
		if accepting {
			peer = anyRank
		}
		if _, err := handshake(ctx, c, ident(0), peer); err == nil {
			t.Fatalf("handshake accepted a fuzzed peer: %x", b)
		}
	})
}
