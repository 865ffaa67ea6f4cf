#include "go_asm.h"
#include "textflag.h"

// CRC32C by folding with carry-less multiplication, after Intel's white paper
// "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ Instruction"
// and hash/crc32's ieeeCLMUL, with the Castagnoli constants and four
// independent 512-bit accumulators (256 bytes a step) so that the multiplier's
// latency is hidden. The constants are derived in constants_test.go:
// k(n) = bitreflect32(x^n mod P(x)) << 1.

// k(2048+32), k(2048-32): fold a 128-bit lane forward by 256 bytes.
DATA k2048<>+0(SB)/8, $0x0dcb17aa4
DATA k2048<>+8(SB)/8, $0x0b9e02b86
GLOBL k2048<>(SB), RODATA, $16

// k(512+32), k(512-32): by 64 bytes.
DATA k512<>+0(SB)/8, $0x0740eef02
DATA k512<>+8(SB)/8, $0x09e4addf8
GLOBL k512<>(SB), RODATA, $16

// k(128+32), k(128-32): by 16 bytes.
DATA k128<>+0(SB)/8, $0x0f20c0dfe
DATA k128<>+8(SB)/8, $0x14cd00bd6
GLOBL k128<>(SB), RODATA, $16

// k(64): 128 bits to 64.
DATA k64<>+0(SB)/8, $0x0dd45aab8
GLOBL k64<>(SB), RODATA, $8

// Barrett reduction: P(x) reflected (33 bits), mu = x^64 div P(x) reflected.
DATA pmu<>+0(SB)/8, $0x105ec76f1
DATA pmu<>+8(SB)/8, $0x0dea713f1
GLOBL pmu<>(SB), RODATA, $16

// FOLD moves the accumulator acc forward by the distance whose constants
// are in k and adds data to it: acc = clmul(acc.lo, k.lo) ^ clmul(acc.hi,
// k.hi) ^ data, in every 128-bit lane; tmp is clobbered.
#define FOLD(k, acc, tmp, data) \
	VPCLMULQDQ $0x11, k, acc, tmp; \
	VPCLMULQDQ $0x00, k, acc, acc; \
	VPTERNLOGD $0x96, data, tmp, acc

// FOLD4TO1 folds the four accumulators Z2, Z3, Z4 into Z1, 64 bytes at a
// time, and leaves the 64-byte constants in Z0; Z5 is clobbered.
#define FOLD4TO1 \
	VBROADCASTI32X4 k512<>(SB), Z0; \
	FOLD(Z0, Z1, Z5, Z2); \
	FOLD(Z0, Z1, Z5, Z3); \
	FOLD(Z0, Z1, Z5, Z4)

// LANESTO1 folds the four 128-bit lanes of Z1 into X1, 16 bytes at a time,
// and leaves the 16-byte constants in X0; X2-X5 are clobbered.
#define LANESTO1 \
	VEXTRACTI32X4 $1, Z1, X2; \
	VEXTRACTI32X4 $2, Z1, X3; \
	VEXTRACTI32X4 $3, Z1, X4; \
	VMOVDQU       k128<>(SB), X0; \
	FOLD(X0, X1, X5, X2); \
	FOLD(X0, X1, X5, X3); \
	FOLD(X0, X1, X5, X4)

// REDUCE reduces the 128 bits of X1 to the 32-bit CRC state in r, as
// hash/crc32's ieeeCLMUL does from there on: to 64 bits, then (with X3 a
// 32-bit mask) by Barrett reduction to 32. X0-X3 are clobbered and the
// upper halves of the vector registers zeroed.
#define REDUCE(r) \
	VZEROUPPER; \
	PCMPEQB   X3, X3; \
	PCLMULQDQ $1, X1, X0; \
	PSRLDQ    $8, X1; \
	PXOR      X0, X1; \
	MOVOA     X1, X2; \
	MOVQ      k64<>+0(SB), X0; \
	PSRLQ     $32, X3; \
	PSRLDQ    $4, X2; \
	PAND      X3, X1; \
	PCLMULQDQ $0, X0, X1; \
	PXOR      X2, X1; \
	MOVOU     pmu<>+0(SB), X0; \
	MOVOA     X1, X2; \
	PAND      X3, X1; \
	PCLMULQDQ $0x10, X0, X1; \
	PAND      X3, X1; \
	PCLMULQDQ $0, X0, X1; \
	PXOR      X2, X1; \
	PEXTRD    $1, X1, r

// func updateVector(crc uint32, p []byte) uint32
// len(p) >= 256 and a multiple of 16; crc is the uninverted state.
TEXT ·updateVector(SB), NOSPLIT, $0-36
	MOVL crc+0(FP), AX
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), CX

	// The first 256 bytes, with the initial state added into the first lane.
	VMOVD     AX, X10 // zeroes the rest of Z10
	VMOVDQU64 0(SI), Z1
	VMOVDQU64 64(SI), Z2
	VMOVDQU64 128(SI), Z3
	VMOVDQU64 192(SI), Z4
	VPXORQ    Z10, Z1, Z1
	ADDQ      $256, SI
	SUBQ      $256, CX

	VBROADCASTI32X4 k2048<>(SB), Z0
	CMPQ            CX, $256
	JB              fold4

loop256:
	VMOVDQU64  0(SI), Z11
	VMOVDQU64  64(SI), Z12
	VMOVDQU64  128(SI), Z13
	VMOVDQU64  192(SI), Z14
	FOLD(Z0, Z1, Z5, Z11)
	FOLD(Z0, Z2, Z6, Z12)
	FOLD(Z0, Z3, Z7, Z13)
	FOLD(Z0, Z4, Z8, Z14)
	ADDQ       $256, SI
	SUBQ       $256, CX
	CMPQ       CX, $256
	JAE        loop256

fold4:
	FOLD4TO1
	CMPQ CX, $64
	JB   lanes

loop64:
	VMOVDQU64 0(SI), Z11
	FOLD(Z0, Z1, Z5, Z11)
	ADDQ       $64, SI
	SUBQ       $64, CX
	CMPQ       CX, $64
	JAE        loop64

lanes:
	LANESTO1
	CMPQ CX, $16
	JB   reduce

loop16:
	VMOVDQU 0(SI), X11
	FOLD(X0, X1, X5, X11)
	ADDQ       $16, SI
	SUBQ       $16, CX
	CMPQ       CX, $16
	JAE        loop16

reduce:
	REDUCE(AX)
	MOVL AX, ret+32(FP)
	RET

// Hybrid: the vector folding above and eight scalar CRC32Q chains at once.
// On Zen 5 the 512-bit carry-less multiply issues every other cycle, which
// caps updateVector at about 16 bytes a cycle, while the integer units run
// eight independent CRC32Q chains at about 16-20; the two use different
// execution units, so interleaved they checksum data in the L2 cache about
// 1.6 times as fast as the folding alone. A block (hybridBlock bytes, the
// geometry in crc32c_amd64.go, here through go_asm.h) is hybridFolded
// bytes folded as by updateVector followed by eight lanes of hybridLane
// bytes, each a CRC32Q chain from state 0, 24 bytes of each per 256-byte
// fold step (hybridSteps steps). At the end of a block the nine states are
// joined: shifting a state c forward over n bytes is CRC32Q(0, clmul(c,
// x^(8n-33) mod P)), the one bit a reflected carry-less product gains and
// the 32 of CRC32Q making up the 33.

// hybridK<>+8(j-1): x^(8·j·hybridLane - 33) mod P(x), reflected, to shift a
// state forward over j lanes (checked in hybrid_amd64_test.go).
DATA hybridK<>+0(SB)/8, $0x9ef68d35
DATA hybridK<>+8(SB)/8, $0x359674f7
DATA hybridK<>+16(SB)/8, $0x005bb964
DATA hybridK<>+24(SB)/8, $0xb9d68d49
DATA hybridK<>+32(SB)/8, $0xf7ac8f1f
DATA hybridK<>+40(SB)/8, $0x6bde96db
DATA hybridK<>+48(SB)/8, $0x57e82916
DATA hybridK<>+56(SB)/8, $0xc1f19ee1
GLOBL hybridK<>(SB), RODATA, $64

// SHIFTADD adds the CRC state in r, shifted forward by the distance whose
// constant is at hybridK<>+off, into R12; r, DI, X6 and X7 are clobbered.
#define SHIFTADD(r, off) \
	MOVQ      r, X6; \
	MOVQ      hybridK<>+off(SB), X7; \
	PCLMULQDQ $0, X7, X6; \
	MOVQ      X6, r; \
	XORL      DI, DI; \
	CRC32Q    r, DI; \
	XORQ      DI, R12

// func updateHybrid(crc uint32, p []byte) uint32
// crc is the uninverted state; p is taken hybridBlock bytes at a time, and
// a remainder shorter than a block is left out (Go passes whole blocks).
TEXT ·updateHybrid(SB), NOSPLIT, $0-36
	MOVL  crc+0(FP), R12
	MOVQ  p_base+8(FP), SI
	MOVQ  p_len+16(FP), CX

hblock:
	CMPQ CX, $const_hybridBlock
	JB   hdone

	VMOVD           R12, X10 // zeroes the rest of Z10
	VBROADCASTI32X4 k2048<>(SB), Z0
	VMOVDQU64       0(SI), Z1
	VMOVDQU64       64(SI), Z2
	VMOVDQU64       128(SI), Z3
	VMOVDQU64       192(SI), Z4
	VPXORQ          Z10, Z1, Z1
	LEAQ            const_hybridFolded(SI), DI
	ADDQ            $256, SI
	XORL            AX, AX
	XORL            BX, BX
	XORL            DX, DX
	XORL            R8, R8
	XORL            R9, R9
	XORL            R10, R10
	XORL            R11, R11
	XORL            R12, R12
	MOVL            $const_hybridSteps, R13

hloop:
	VMOVDQU64 0(SI), Z11
	VMOVDQU64 64(SI), Z12
	VMOVDQU64 128(SI), Z13
	VMOVDQU64 192(SI), Z14
	FOLD(Z0, Z1, Z5, Z11)
	FOLD(Z0, Z2, Z6, Z12)
	FOLD(Z0, Z3, Z7, Z13)
	FOLD(Z0, Z4, Z8, Z14)
	CRC32Q 0(DI), AX
	CRC32Q const_hybridLane(DI), BX
	CRC32Q (2*const_hybridLane)(DI), DX
	CRC32Q (3*const_hybridLane)(DI), R8
	CRC32Q (4*const_hybridLane)(DI), R9
	CRC32Q (5*const_hybridLane)(DI), R10
	CRC32Q (6*const_hybridLane)(DI), R11
	CRC32Q (7*const_hybridLane)(DI), R12
	CRC32Q 8(DI), AX
	CRC32Q (const_hybridLane+8)(DI), BX
	CRC32Q (2*const_hybridLane+8)(DI), DX
	CRC32Q (3*const_hybridLane+8)(DI), R8
	CRC32Q (4*const_hybridLane+8)(DI), R9
	CRC32Q (5*const_hybridLane+8)(DI), R10
	CRC32Q (6*const_hybridLane+8)(DI), R11
	CRC32Q (7*const_hybridLane+8)(DI), R12
	CRC32Q 16(DI), AX
	CRC32Q (const_hybridLane+16)(DI), BX
	CRC32Q (2*const_hybridLane+16)(DI), DX
	CRC32Q (3*const_hybridLane+16)(DI), R8
	CRC32Q (4*const_hybridLane+16)(DI), R9
	CRC32Q (5*const_hybridLane+16)(DI), R10
	CRC32Q (6*const_hybridLane+16)(DI), R11
	CRC32Q (7*const_hybridLane+16)(DI), R12
	ADDQ $256, SI
	ADDQ $24, DI
	DECQ R13
	JNZ  hloop

	// The folded part's state, then every state shifted to the end of the
	// block and added into lane 7's (R12).
	FOLD4TO1
	LANESTO1
	REDUCE(R13)
	SHIFTADD(R13, 56)
	SHIFTADD(AX, 48)
	SHIFTADD(BX, 40)
	SHIFTADD(DX, 32)
	SHIFTADD(R8, 24)
	SHIFTADD(R9, 16)
	SHIFTADD(R10, 8)
	SHIFTADD(R11, 0)

	ADDQ $(8*const_hybridLane), SI // past the lanes: the next block
	SUBQ $const_hybridBlock, CX
	JMP  hblock

hdone:
	MOVL R12, ret+32(FP)
	RET

// func cpuid(leaf uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	XORL CX, CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET
