package crc32c

// Combine returns the CRC32C of the concatenation a||b from the CRC32C of a
// (crcA), that of b (crcB) and b's length, without reading either: crcA
// times x^(8·lenB) modulo the polynomial, plus crcB (the method of zlib's
// crc32_combine; the initial and final inversions cancel). A rank that
// forwards blocks it received with their checksums joins them with it
// instead of reading the data again. It costs well under a microsecond.
// A negative lenB counts as 0.
func Combine(crcA, crcB uint32, lenB int64) uint32 {
	return multModP(xPow8n(uint64(max(lenB, 0))), crcA) ^ crcB
}

// castagnoliReflected is the Castagnoli polynomial, bit-reversed: bit i is
// the coefficient of x^(31-i), as hash/crc32 and the CRC32 instruction
// hold it.
const castagnoliReflected = 0x82f63b78

// multModP returns a(x)·b(x) mod P(x), both in reflected form.
func multModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		if b&1 != 0 {
			b = b>>1 ^ castagnoliReflected
		} else {
			b >>= 1
		}
	}
	return p
}

// xPow2k[k] is x^(2^k) mod P(x), reflected, for every bit k of 8n, n a
// uint64.
var xPow2k = func() (t [64 + 3]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = multModP(p, p)
	}
	return t
}()

// xPow8n returns x^(8n) mod P(x), reflected (8n may exceed 64 bits).
func xPow8n(n uint64) uint32 { return xPowShifted(n, 3) }

// xPowShifted returns x^(e·2^s) mod P(x), reflected: the product of
// x^(2^k) over the bits k-s of e.
func xPowShifted(e uint64, s int) uint32 {
	p := uint32(1) << 31 // x^0
	for k := s; e != 0; k, e = k+1, e>>1 {
		if e&1 != 0 {
			p = multModP(xPow2k[k], p)
		}
	}
	return p
}
