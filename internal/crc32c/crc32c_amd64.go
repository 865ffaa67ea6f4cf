package crc32c

import "golang.org/x/sys/cpu"

// haveVector: the CPU has the 512-bit carry-less multiply, and the OS saves
// the AVX-512 registers (x/sys/cpu checks both).
var haveVector = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VPCLMULQDQ && cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSE41

// minVector is the shortest input updateVector takes; below it hash/crc32's
// three-way SSE4.2 loop is as fast.
const minVector = 512

// updateVector folds p (len(p) >= 256, a multiple of 16) into the
// uninverted CRC state crc.
//
//go:noescape
func updateVector(crc uint32, p []byte) uint32
