package rendezvous

import (
	"encoding/binary"
	"net/netip"
	"unicode/utf8"
)

// Field encodings shared by the messages (see docs/rendezvous.md):
//
//	u8, u16, u32   unsigned integers, big endian
//	rank           u32; 0xFFFFFFFF means "none" (any rank, no rank)
//	endpoint       u8 family (4 or 6), 4 or 16 address bytes, u16 port (not 0)
//	job            u8 length (1..128) + that many bytes of UTF-8 without control characters
//	text           u16 length (0..1024) + that many bytes of UTF-8
const (
	noRank        = 0xFFFFFFFF
	maxJobLen     = 128
	maxTextLen    = 1024
	maxEndpoints  = 8    // private endpoints a member may declare
	MaxWorld      = 4096 // largest world size the protocol allows
	nonceSize     = 16
	macSize       = 32
	familyIPv4    = 4
	familyIPv6    = 6
	maxDelayMicro = 1<<32 - 1
)

// enc appends fields to a byte slice.
type enc []byte

func (e enc) u8(v uint8) enc   { return append(e, v) }
func (e enc) u16(v uint16) enc { return binary.BigEndian.AppendUint16(e, v) }
func (e enc) u32(v uint32) enc { return binary.BigEndian.AppendUint32(e, v) }
func (e enc) raw(b []byte) enc { return append(e, b...) }

func (e enc) rank(r int) enc {
	if r < 0 {
		return e.u32(noRank)
	}
	return e.u32(uint32(r))
}

func (e enc) str8(s string) enc  { return append(e.u8(uint8(len(s))), s...) }
func (e enc) str16(s string) enc { return append(e.u16(uint16(len(s))), s...) }
func (e enc) endpoint(ap netip.AddrPort) enc {
	a := ap.Addr().Unmap()
	if a.Is4() {
		b := a.As4()
		return e.u8(familyIPv4).raw(b[:]).u16(ap.Port())
	}
	b := a.As16()
	return e.u8(familyIPv6).raw(b[:]).u16(ap.Port())
}

// dec reads fields from a payload; the first error sticks and later reads
// return zero values, so a decoder checks d.err once at the end.
type dec struct {
	b   []byte
	off int
	typ msgType
	err error
}

func (d *dec) fail(format string, args ...any) {
	if d.err == nil {
		d.err = malformed("%v payload: "+format, append([]any{d.typ}, args...)...)
	}
}

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b)-d.off < n {
		d.fail("truncated at byte %d (need %d more, have %d)", d.off, n, len(d.b)-d.off)
		return nil
	}
	b := d.b[d.off : d.off+n]
	d.off += n
	return b
}

func (d *dec) u8() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *dec) u16() uint16 {
	if b := d.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *dec) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// rank reads a rank field that may be "none" (-1) when optional is set.
func (d *dec) rank(what string, optional bool) int {
	v := d.u32()
	if v == noRank && optional {
		return -1
	}
	if v >= MaxWorld && d.err == nil {
		d.fail("%s %d out of range (max %d)", what, v, MaxWorld-1)
	}
	return int(v)
}

func (d *dec) array(out []byte) {
	if b := d.take(len(out)); b != nil {
		copy(out, b)
	}
}

func (d *dec) job() string {
	n := int(d.u8())
	b := d.take(n)
	if d.err != nil {
		return ""
	}
	if err := CheckJob(string(b)); err != nil {
		d.fail("%v", err)
	}
	return string(b)
}

func (d *dec) text() string {
	n := int(d.u16())
	if n > maxTextLen {
		d.fail("text of %d bytes exceeds %d", n, maxTextLen)
		return ""
	}
	b := d.take(n)
	if d.err == nil && !utf8.Valid(b) {
		d.fail("text is not UTF-8")
	}
	return string(b)
}

func (d *dec) endpoint() netip.AddrPort {
	var a netip.Addr
	switch fam := d.u8(); fam {
	case familyIPv4:
		var b [4]byte
		d.array(b[:])
		a = netip.AddrFrom4(b)
	case familyIPv6:
		var b [16]byte
		d.array(b[:])
		a = netip.AddrFrom16(b)
		if a.Is4In6() {
			d.fail("IPv4-mapped address %v must be sent as family 4", a)
		}
	default:
		d.fail("endpoint family %d (want 4 or 6)", fam)
	}
	port := d.u16()
	ap := netip.AddrPortFrom(a, port)
	if d.err == nil {
		if err := checkEndpoint(ap); err != nil {
			d.fail("%v", err)
		}
	}
	return ap
}

// endpoints reads a u8 count and that many endpoints.
func (d *dec) endpoints() []netip.AddrPort {
	n := int(d.u8())
	if n > maxEndpoints {
		d.fail("%d endpoints exceed the limit of %d", n, maxEndpoints)
		return nil
	}
	var eps []netip.AddrPort
	for i := 0; i < n && d.err == nil; i++ {
		eps = append(eps, d.endpoint())
	}
	return eps
}

// optEndpoint reads a flags byte (bit 0: present) and the endpoint if present.
func (d *dec) optEndpoint() netip.AddrPort {
	switch f := d.u8(); f {
	case 0:
		return netip.AddrPort{}
	case 1:
		return d.endpoint()
	default:
		d.fail("endpoint flags 0x%02x (want 0 or 1)", f)
		return netip.AddrPort{}
	}
}

func (e enc) optEndpoint(ap netip.AddrPort) enc {
	if !ap.IsValid() {
		return e.u8(0)
	}
	return e.u8(1).endpoint(ap)
}

func (e enc) endpoints(eps []netip.AddrPort) enc {
	e = e.u8(uint8(len(eps)))
	for _, ap := range eps {
		e = e.endpoint(ap)
	}
	return e
}

// end fails if bytes are left over.
func (d *dec) end() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d trailing bytes", len(d.b)-d.off)
	}
	return d.err
}
