//go:build !amd64

package crc32c

import (
	"hash/crc32"
	"math"
)

const (
	haveVector  = false
	haveHybrid  = false
	minVector   = math.MaxInt
	hybridBlock = math.MaxInt
)

// updateVector is hash/crc32 where there is no vector code (never called:
// haveVector is false).
func updateVector(crc uint32, p []byte) uint32 { return ^crc32.Update(^crc, table, p) }

// updateHybrid is updateVector (never called: haveHybrid is false).
func updateHybrid(crc uint32, p []byte) uint32 { return updateVector(crc, p) }
