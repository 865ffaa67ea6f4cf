//go:build !amd64

package crc32c

import (
	"hash/crc32"
	"math"
)

const (
	haveVector = false
	minVector  = math.MaxInt
)

// updateVector is hash/crc32 where there is no vector code (never called:
// haveVector is false).
func updateVector(crc uint32, p []byte) uint32 { return ^crc32.Update(^crc, table, p) }
