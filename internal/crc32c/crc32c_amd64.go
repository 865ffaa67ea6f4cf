package crc32c

import "golang.org/x/sys/cpu"

// haveVector: the CPU has the 512-bit carry-less multiply, and the OS saves
// the AVX-512 registers (x/sys/cpu checks both).
var haveVector = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VPCLMULQDQ && cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSE41

// haveHybrid: UpdateCached runs updateHybrid on whole blocks, because it is
// the faster of the two here for data in the L2 cache. That was measured
// on AMD Zen 5 (family 1Ah), where it checksums 256 KiB in the L2 at about
// 90 GB/s against updateVector's 55 (BenchmarkHybrid). On CPUs whose
// 512-bit carry-less multiply issues every cycle and whose CRC32 does not
// (Intel's, by the published instruction tables; not measured here), the
// scalar chains would hold the folding back, so elsewhere it is off.
var haveHybrid = haveVector && cpu.X86.HasSSE42 && amdFamily() >= 0x1a

// minVector is the shortest input updateVector takes; below it hash/crc32's
// three-way SSE4.2 loop is as fast.
const minVector = 512

// updateHybrid's block: hybridFolded bytes folded and eight lanes of
// hybridLane bytes, 24 bytes of each lane per 256-byte fold step
// (crc32c_amd64.s reads these through go_asm.h).
const (
	hybridSteps  = 64
	hybridFolded = 256 * (hybridSteps + 1)
	hybridLane   = 24 * hybridSteps
	hybridBlock  = hybridFolded + 8*hybridLane
)

// updateVector folds p (len(p) >= 256, a multiple of 16) into the
// uninverted CRC state crc.
//
//go:noescape
func updateVector(crc uint32, p []byte) uint32

// updateHybrid adds p to the uninverted CRC state crc, hybridBlock bytes
// at a time; a remainder shorter than a block is left out.
//
//go:noescape
func updateHybrid(crc uint32, p []byte) uint32

func cpuid(leaf uint32) (eax, ebx, ecx, edx uint32)

// amdFamily returns the CPU's family if it is an AMD one, otherwise 0.
func amdFamily() uint32 {
	_, b, c, d := cpuid(0)
	if b != 0x68747541 || d != 0x69746e65 || c != 0x444d4163 { // "AuthenticAMD"
		return 0
	}
	a, _, _, _ := cpuid(1)
	family := a >> 8 & 0xf
	if family == 0xf {
		family += a >> 20 & 0xff
	}
	return family
}
