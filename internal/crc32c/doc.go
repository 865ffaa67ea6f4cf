// Package crc32c computes CRC32C (the Castagnoli polynomial, as in iSCSI,
// ext4 and hash/crc32's Castagnoli table) at memory speed. It exists for the
// payload checksums of collective's wire frames, which every byte a
// communicator moves passes through twice (once when sent, once when
// received): hash/crc32's SSE4.2 code runs at about 20 GB/s on a core, which
// costs a loopback link a sixth of its CPU. On amd64 with AVX-512 and
// VPCLMULQDQ, Update folds 256 bytes per step in four independent 512-bit
// carry-less multiply chains (the method of Intel's "Fast CRC Computation
// for Generic Polynomials Using PCLMULQDQ"); elsewhere, and for short
// inputs, it is hash/crc32. UpdateCached, for data in the L2 cache (just
// read from a socket, just copied), also runs eight scalar CRC32 chains
// beside the folding on CPUs where that pays (AMD Zen 5), and joins their
// results with carry-less multiplications: about 1.6 times as fast there.
//
// Results are those of hash/crc32 with crc32.MakeTable(crc32.Castagnoli),
// bit for bit: Update(crc, p) == UpdateCached(crc, p) ==
// crc32.Update(crc, castagnoliTable, p).
package crc32c
