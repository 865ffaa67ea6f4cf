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
	// Fold the four accumulators into Z1, 64 bytes at a time.
	VBROADCASTI32X4 k512<>(SB), Z0
	FOLD(Z0, Z1, Z5, Z2)
	FOLD(Z0, Z1, Z5, Z3)
	FOLD(Z0, Z1, Z5, Z4)
	CMPQ            CX, $64
	JB              lanes

loop64:
	VMOVDQU64 0(SI), Z11
	FOLD(Z0, Z1, Z5, Z11)
	ADDQ       $64, SI
	SUBQ       $64, CX
	CMPQ       CX, $64
	JAE        loop64

lanes:
	// Fold the four 128-bit lanes of Z1 into X1, 16 bytes at a time.
	VEXTRACTI32X4 $1, Z1, X2
	VEXTRACTI32X4 $2, Z1, X3
	VEXTRACTI32X4 $3, Z1, X4
	VMOVDQU       k128<>(SB), X0
	FOLD(X0, X1, X5, X2)
	FOLD(X0, X1, X5, X3)
	FOLD(X0, X1, X5, X4)
	CMPQ          CX, $16
	JB            reduce

loop16:
	VMOVDQU 0(SI), X11
	FOLD(X0, X1, X5, X11)
	ADDQ       $16, SI
	SUBQ       $16, CX
	CMPQ       CX, $16
	JAE        loop16

reduce:
	VZEROUPPER

	// 128 bits to 64 (as hash/crc32's ieeeCLMUL does from here on).
	PCMPEQB   X3, X3
	PCLMULQDQ $1, X1, X0
	PSRLDQ    $8, X1
	PXOR      X0, X1

	MOVOA X1, X2
	MOVQ  k64<>+0(SB), X0

	// A 32-bit mask; the upper half does not matter.
	PSRLQ $32, X3

	PSRLDQ    $4, X2
	PAND      X3, X1
	PCLMULQDQ $0, X0, X1
	PXOR      X2, X1

	// Barrett reduction to 32 bits.
	MOVOU pmu<>+0(SB), X0

	MOVOA     X1, X2
	PAND      X3, X1
	PCLMULQDQ $0x10, X0, X1
	PAND      X3, X1
	PCLMULQDQ $0, X0, X1
	PXOR      X2, X1

	PEXTRD $1, X1, AX
	MOVL   AX, ret+32(FP)
	RET
