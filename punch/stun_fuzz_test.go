package punch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"testing"

	"github.com/pion/stun/v4"
)

// stunFuzzSeeds are STUN messages and near misses: a Binding request with
// and without FINGERPRINT, another method, an unknown required attribute,
// responses (success with XOR-MAPPED-ADDRESS or MAPPED-ADDRESS, error), a
// bad length, a truncated message and an fnmesh frame.
func stunFuzzSeeds(t testing.TB) [][]byte {
	build := func(setters ...stun.Setter) []byte {
		m, err := stun.Build(append([]stun.Setter{stun.NewTransactionIDSetter([stun.TransactionIDSize]byte{1, 2, 3})}, setters...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m.Raw
	}
	unknown := build(stun.BindingRequest)
	unknown = append(unknown, 0x00, 0x2F, 0x00, 0x04, 1, 2, 3, 4) // required, not known
	binary.BigEndian.PutUint16(unknown[2:], uint16(len(unknown)-stunHeaderLen))
	badLen := build(stun.BindingRequest, stun.Fingerprint)
	badLen[3]++
	return [][]byte{
		build(stun.BindingRequest),
		build(stun.BindingRequest, stun.Fingerprint),
		build(stun.NewType(stun.MethodAllocate, stun.ClassRequest), stunSoftware, stun.Fingerprint),
		build(stun.NewType(stun.MethodBinding, stun.ClassIndication)),
		unknown,
		build(stun.BindingSuccess, &stun.XORMappedAddress{IP: []byte{203, 0, 113, 7}, Port: 4242}, stun.Fingerprint),
		build(stun.BindingSuccess, &stun.XORMappedAddress{IP: netip.MustParseAddr("2001:db8::1").AsSlice(), Port: 1}),
		build(stun.BindingSuccess, &stun.MappedAddress{IP: []byte{198, 51, 100, 1}, Port: 65535}),
		build(stun.BindingSuccess, &stun.XORMappedAddress{IP: []byte{0, 0, 0, 0}, Port: 9}),
		build(stun.BindingError, stun.CodeUnknownAttribute),
		build(stun.BindingSuccess),
		badLen,
		badLen[:stunHeaderLen+3],
		{'F', 'M', 1, 1, 0, 0, 0, 0},
	}
}

// FuzzSTUNServer: whatever a client sends, the server side (ReadSTUNMessage
// over a stream, STUNResponse) never panics; ReadSTUNMessage returns
// exactly the message the header frames; and an answer is a STUN response
// to the same transaction, of the request's method, and for a Binding
// request that succeeded, one a client parses back to the client's address.
func FuzzSTUNServer(f *testing.F) {
	for _, s := range stunFuzzSeeds(f) {
		f.Add(s)
	}
	from := netip.MustParseAddrPort("203.0.113.9:40000")
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := ReadSTUNMessage(bytes.NewReader(b))
		if err == nil {
			if len(msg) < stunHeaderLen || len(msg) > MaxSTUNMessage || !bytes.HasPrefix(b, msg) ||
				len(msg) != stunHeaderLen+int(binary.BigEndian.Uint16(b[2:4])) {
				t.Fatalf("ReadSTUNMessage returned %x from %x", msg, b)
			}
		} else if len(b) == 0 != errors.Is(err, io.EOF) {
			t.Fatalf("ReadSTUNMessage of %d bytes: %v", len(b), err)
		}
		if len(b) > MaxSTUNMessage {
			b = b[:MaxSTUNMessage] // a datagram is read into a buffer of this size
		}
		resp, err := STUNResponse(b, from)
		if err != nil {
			return
		}
		req := new(stun.Message)
		if err := stun.Decode(b, req); err != nil {
			t.Fatalf("answered a message that does not decode: %v", err)
		}
		m := new(stun.Message)
		if err := stun.Decode(resp, m); err != nil {
			t.Fatalf("the response does not decode: %v", err)
		}
		if m.TransactionID != req.TransactionID || m.Type.Method != req.Type.Method ||
			(m.Type.Class != stun.ClassSuccessResponse && m.Type.Class != stun.ClassErrorResponse) {
			t.Fatalf("response %v (transaction %x) to request %v (transaction %x)", m.Type, m.TransactionID, req.Type, req.TransactionID)
		}
		if err := stun.Fingerprint.Check(m); err != nil {
			t.Fatalf("response: %v", err)
		}
		if m.Type == stun.BindingSuccess {
			got, ok, err := parseBindingResponse(resp, req)
			if !ok || err != nil || got != from {
				t.Fatalf("a client parses the response as %v (ok %v, %v), want %v", got, ok, err, from)
			}
		}
	})
}

// FuzzSTUNClient: whatever a STUN server (or anyone who can send to the
// client's socket) answers, parseBindingResponse never panics, and an
// address it returns is one a peer can dial. The request's transaction ID
// is taken from the input, so that the fuzzer gets past the ID check.
func FuzzSTUNClient(f *testing.F) {
	for _, s := range stunFuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := newBindingRequest()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) >= stunHeaderLen {
			copy(req.TransactionID[:], b[8:stunHeaderLen])
		}
		addr, ok, err := parseBindingResponse(b, req)
		switch {
		case !ok && err != nil:
			t.Fatalf("not an answer, yet an error: %v", err)
		case ok && err == nil:
			a := addr.Addr()
			if !addr.IsValid() || addr.Port() == 0 || a.IsUnspecified() || a.IsMulticast() || a.Is4In6() ||
				a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				t.Fatalf("accepted the mapped address %v from %x", addr, b)
			}
		}
	})
}
