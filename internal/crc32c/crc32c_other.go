//go:build !amd64

package crc32c

import "hash/crc32"

const (
	haveVector = false
	minVector  = 1 << 62
)

// updateVector is hash/crc32 where there is no vector code (never called:
// haveVector is false).
func updateVector(crc uint32, p []byte) uint32 { return ^crc32.Update(^crc, table, p) }
