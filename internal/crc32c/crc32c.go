package crc32c

import "hash/crc32"

var table = crc32.MakeTable(crc32.Castagnoli)

// Update returns the result of adding the bytes in p to crc, as
// crc32.Update does with the Castagnoli table.
func Update(crc uint32, p []byte) uint32 {
	if len(p) >= minVector && haveVector {
		n := len(p) &^ 15
		crc = ^updateVector(^crc, p[:n])
		p = p[n:]
	}
	return crc32.Update(crc, table, p)
}

// Checksum returns the CRC32C checksum of p.
func Checksum(p []byte) uint32 { return Update(0, p) }
