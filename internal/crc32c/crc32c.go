package crc32c

import "hash/crc32"

var table = crc32.MakeTable(crc32.Castagnoli)

// Update returns the result of adding the bytes in p to crc, as
// crc32.Update does with the Castagnoli table. It reads p as one stream,
// which suits data wherever it is; UpdateCached is faster for data in the
// core's L2 cache.
func Update(crc uint32, p []byte) uint32 {
	if haveVector && len(p) >= minVector {
		n := len(p) &^ 15
		crc = ^updateVector(^crc, p[:n])
		p = p[n:]
	}
	return crc32.Update(crc, table, p)
}

// UpdateCached is Update for p that is in the core's L1 or L2 cache, such
// as bytes just read from a socket or just copied. Where it pays (AMD Zen
// 5), it runs eight scalar CRC32 chains beside the vector folding, each on
// its own part of p: about 1.6 times as fast from the L2 cache, but slower
// from main memory, whose prefetchers follow nine streams less well than
// one.
func UpdateCached(crc uint32, p []byte) uint32 {
	if haveHybrid && len(p) >= hybridBlock {
		n := len(p) - len(p)%hybridBlock
		crc = ^updateHybrid(^crc, p[:n])
		p = p[n:]
	}
	return Update(crc, p)
}

// Checksum returns the CRC32C checksum of p.
func Checksum(p []byte) uint32 { return Update(0, p) }
