package collective

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"testing"
)

// Oracle tests: every collective, every algorithm (forced) and the
// automatic choice (with default and with tiny switch points), rank counts
// 1..17, sizes from 0 bytes up (several MiB on a few rank counts), roots
// other than 0; each rank compares its result with a sequential
// computation of the same thing.

// variant is one configuration of the algorithm choice.
type variant struct {
	name string
	tune Tuning
	big  bool
}

// tinyTuning moves every switch point down so that Auto's large-message
// paths run on small test sizes.
func tinyTuning() Tuning {
	t := DefaultTuning()
	t.BcastShort, t.BcastMinRanks = 64, 2
	t.AllgatherShortPow2, t.AllgatherShort = 256, 256
	t.AlltoallBruckMax, t.AlltoallBruckMinRanks, t.AlltoallScatteredMax, t.AlltoallBatch = 8, 2, 64, 3
	t.ReduceShort, t.AllreduceShort, t.AllreduceRingMin, t.ReduceScatterShort = 64, 64, 1024, 512
	t.ChunkSize = 100
	return t
}

// variants are the configurations each collective is tested under. Large
// sizes run only where big is set (they dominate the run time under the
// race detector and tiny switch points add nothing there).
func variants(op Collective) []variant {
	vs := []variant{{"auto", DefaultTuning(), true}, {"auto-tiny", tinyTuning(), false}}
	for _, a := range Algorithms(op) {
		t := DefaultTuning()
		t.Force[op] = a
		t.ChunkSize = 4096 // several chunks per ring step on the larger sizes
		vs = append(vs, variant{algorithmInfo[a].name, t, true})
	}
	return vs
}

// sizes returns the message sizes tested at p ranks: small odd sizes
// everywhere, larger ones (up to several MiB) on a few rank counts.
func sizes(p int, big bool) []int {
	s := []int{0, 1, 7, 333, 4099}
	if !big {
		return s
	}
	switch p {
	case 2:
		s = append(s, 100_003, 3<<20+1)
	case 3, 4:
		s = append(s, 1<<20+3)
	case 5, 8, 17:
		s = append(s, 100_003)
	}
	return s
}

// varSize makes per-rank sizes differ, with zeros.
func varSize(base, rank int) int {
	if base == 0 {
		return 0
	}
	return base*(rank%4)/3 + (rank*13)%7
}

func roots(p int) []int {
	r := []int{0}
	if p > 2 {
		r = append(r, p/2)
	}
	if p > 1 {
		r = append(r, p-1)
	}
	return r
}

// forEachP runs body for every rank count 1..17 over one set of loopback
// TCP communicators per rank count.
func forEachP(t *testing.T, body func(t *testing.T, comms []*Comm)) {
	for p := 1; p <= 17; p++ {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			body(t, newComms(t, tcpMesh, p))
		})
	}
}

// withVariants runs fn for each variant of op, setting the tuning on every
// rank first.
func withVariants(t *testing.T, comms []*Comm, op Collective, fn func(t *testing.T, big bool)) {
	for _, v := range variants(op) {
		t.Run(v.name, func(t *testing.T) {
			for _, c := range comms {
				if err := c.SetTuning(v.tune); err != nil {
					t.Fatal(err)
				}
			}
			fn(t, v.big)
		})
	}
}

func mismatch(what string, got, want []byte) error {
	if bytes.Equal(got, want) {
		return nil
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Errorf("%s: got %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
}

func TestOracleBarrier(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		withVariants(t, comms, OpBarrier, func(t *testing.T, big bool) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				for range 3 {
					if err := c.Barrier(ctx); err != nil {
						return err
					}
				}
				return nil
			})
		})
	})
}

func TestOracleBcast(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		p := len(comms)
		withVariants(t, comms, OpBcast, func(t *testing.T, big bool) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				for _, n := range sizes(p, big) {
					for _, root := range roots(p) {
						want := payload(root, n, 1)
						var in []byte
						if c.Rank() == root {
							in = want
						}
						got, err := c.Bcast(ctx, root, in)
						if err != nil {
							return err
						}
						if err := mismatch(fmt.Sprintf("bcast n=%d root=%d", n, root), got, want); err != nil {
							return err
						}
						buf := make([]byte, n)
						if c.Rank() == root {
							copy(buf, want)
						}
						if err := c.BcastInto(ctx, root, buf); err != nil {
							return err
						}
						if err := mismatch(fmt.Sprintf("bcast into n=%d root=%d", n, root), buf, want); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
	})
}

func TestOracleGather(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		p := len(comms)
		withVariants(t, comms, OpGather, func(t *testing.T, big bool) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				for _, n := range sizes(p, big) {
					for _, root := range roots(p) {
						got, err := c.Gather(ctx, root, payload(c.Rank(), varSize(n, c.Rank()), 2))
						if err != nil {
							return err
						}
						if c.Rank() != root {
							if got != nil {
								return fmt.Errorf("gather: non-root got a result")
							}
							continue
						}
						if len(got) != p {
							return fmt.Errorf("gather: %d results", len(got))
						}
						for i := range p {
							if err := mismatch(fmt.Sprintf("gather n=%d root=%d from %d", n, root, i), got[i], payload(i, varSize(n, i), 2)); err != nil {
								return err
							}
						}
					}
				}
				return nil
			})
		})
	})
}

func TestOracleScatter(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		p := len(comms)
		withVariants(t, comms, OpScatter, func(t *testing.T, big bool) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				for _, n := range sizes(p, big) {
					for _, root := range roots(p) {
						var parts [][]byte
						if c.Rank() == root {
							for i := range p {
								parts = append(parts, payload(i, varSize(n, i), 3))
							}
						}
						got, err := c.Scatter(ctx, root, parts)
						if err != nil {
							return err
						}
						if err := mismatch(fmt.Sprintf("scatter n=%d root=%d", n, root), got, payload(c.Rank(), varSize(n, c.Rank()), 3)); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
	})
}

func TestOracleAllgather(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		p := len(comms)
		withVariants(t, comms, OpAllgather, func(t *testing.T, big bool) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				for _, n := range sizes(p, big) {
					// Equal sizes, then sizes that differ per rank (with zeros).
					for _, vary := range []bool{false, true} {
						size := func(r int) int {
							if vary {
								return varSize(n, r)
							}
							return n
						}
						got, err := c.Allgather(ctx, payload(c.Rank(), size(c.Rank()), 4))
						if err != nil {
							return err
						}
						if len(got) != p {
							return fmt.Errorf("allgather: %d results", len(got))
						}
						for i := range p {
							if err := mismatch(fmt.Sprintf("allgather n=%d vary=%v from %d", n, vary, i), got[i], payload(i, size(i), 4)); err != nil {
								return err
							}
						}
						if vary {
							continue
						}
						out := make([]byte, p*n)
						if err := c.AllgatherInto(ctx, payload(c.Rank(), n, 4), out); err != nil {
							return err
						}
						for i := range p {
							if err := mismatch(fmt.Sprintf("allgather into n=%d from %d", n, i), out[i*n:(i+1)*n], payload(i, n, 4)); err != nil {
								return err
							}
						}
					}
				}
				return nil
			})
		})
	})
}

// a2aSize is the size of the part rank i sends rank j: uneven, with zeros.
func a2aSize(base, i, j int) int {
	if (i+2*j)%5 == 0 {
		return 0
	}
	return base*((i+j)%3)/2 + (i*7+j)%5
}

func TestOracleAlltoallv(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		p := len(comms)
		withVariants(t, comms, OpAlltoallv, func(t *testing.T, big bool) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				for _, n := range sizes(p, big) {
					n /= p // total per rank about n
					r := c.Rank()
					parts := make([][]byte, p)
					for j := range parts {
						parts[j] = payload(r*100+j, a2aSize(n, r, j), 5)
					}
					got, err := c.Alltoallv(ctx, parts)
					if err != nil {
						return err
					}
					into := make([][]byte, p)
					for j := range into {
						into[j] = make([]byte, a2aSize(n, j, r))
					}
					if err := c.AlltoallvInto(ctx, parts, into); err != nil {
						return err
					}
					for j := range p {
						want := payload(j*100+r, a2aSize(n, j, r), 5)
						if err := mismatch(fmt.Sprintf("alltoallv n=%d from %d", n, j), got[j], want); err != nil {
							return err
						}
						if err := mismatch(fmt.Sprintf("alltoallv into n=%d from %d", n, j), into[j], want); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
	})
}

func TestOracleAlltoall(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		p := len(comms)
		withVariants(t, comms, OpAlltoall, func(t *testing.T, big bool) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				for _, n := range sizes(p, big) {
					bs := n / p
					got, err := c.Alltoall(ctx, payload(c.Rank(), bs*p, 6))
					if err != nil {
						return err
					}
					want := make([]byte, 0, bs*p)
					for j := range p {
						want = append(want, payload(j, bs*p, 6)[c.Rank()*bs:(c.Rank()+1)*bs]...)
					}
					if err := mismatch(fmt.Sprintf("alltoall block=%d", bs), got, want); err != nil {
						return err
					}
				}
				return nil
			})
		})
	})
}

// ---- reductions ----------------------------------------------------------

// matmul is a non-commutative, associative op: the product of 2x2
// matrices of uint16 (mod 2^16) packed into a uint64.
func matmul(a, b uint64) uint64 {
	m := func(x uint64, i int) uint64 { return (x >> (16 * i)) & 0xffff }
	c0 := m(a, 0)*m(b, 0) + m(a, 1)*m(b, 2)
	c1 := m(a, 0)*m(b, 1) + m(a, 1)*m(b, 3)
	c2 := m(a, 2)*m(b, 0) + m(a, 3)*m(b, 2)
	c3 := m(a, 2)*m(b, 1) + m(a, 3)*m(b, 3)
	return c0&0xffff | (c1&0xffff)<<16 | (c2&0xffff)<<32 | (c3&0xffff)<<48
}

func vecU64(rank, n, salt int) []uint64 {
	return memoize(fmt.Sprint("u64", rank, n, salt), func() []uint64 { return makeU64(rank, n, salt) })
}

func makeU64(rank, n, salt int) []uint64 {
	v := make([]uint64, n)
	for i := range v {
		v[i] = bits.RotateLeft64(uint64(rank+1)*0x9E3779B97F4A7C15+uint64(i)*0xBF58476D1CE4E5B9+uint64(salt), rank+i)
	}
	return v
}

func vecI64(rank, n int) []int64 {
	return memoize(fmt.Sprint("i64", rank, n), func() []int64 { return makeI64(rank, n) })
}

func makeI64(rank, n int) []int64 {
	v := make([]int64, n)
	for i := range v {
		v[i] = int64((rank+1)*(i%1000+1)) - 3000
	}
	return v
}

// oracle reduces the ranks' vectors in rank order, once per key.
func oracle[T Number](k string, p int, vec func(r int) []T, f func(a, b T) T) []T {
	return memoize(fmt.Sprint("oracle", k, p), func() []T { return foldOracle(p, vec, f) })
}

// foldOracle reduces the ranks' vectors in rank order.
func foldOracle[T Number](p int, vec func(r int) []T, f func(a, b T) T) []T {
	out := append([]T(nil), vec(0)...)
	for r := 1; r < p; r++ {
		v := vec(r)
		for i := range out {
			out[i] = f(out[i], v[i])
		}
	}
	return out
}

func eqSlices[T comparable](what string, got, want []T) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d elements, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("%s: element %d = %v, want %v", what, i, got[i], want[i])
		}
	}
	return nil
}

// reduceCounts are element counts: odd, zero, below and above the largest
// power of two <= p, and large on a few rank counts.
func reduceCounts(p int, big bool) []int {
	s := []int{0, 1, 3, 17, 1001}
	if !big {
		return s
	}
	switch p {
	case 2:
		s = append(s, 400_003) // 3.2 MB of 8-byte elements
	case 3, 4:
		s = append(s, 150_001) // 1.2 MB
	case 5, 8, 17:
		s = append(s, 20_001)
	}
	return s
}

// matBytesOp is matmul as a BytesOp over 8-byte elements.
var matBytesOp = NewBytesOp(8, func(acc, in []byte) {
	for i := 0; i+8 <= len(acc); i += 8 {
		binary.LittleEndian.PutUint64(acc[i:], matmul(binary.LittleEndian.Uint64(acc[i:]), binary.LittleEndian.Uint64(in[i:])))
	}
}, false)

func u64Bytes(v []uint64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], x)
	}
	return b
}

func TestOracleAllreduce(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		p := len(comms)
		withVariants(t, comms, OpAllreduce, func(t *testing.T, big bool) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				r := c.Rank()
				for _, n := range reduceCounts(p, big) {
					sum, err := Allreduce(ctx, c, vecI64(r, n), Sum[int64]())
					if err != nil {
						return err
					}
					if err := eqSlices(fmt.Sprintf("allreduce sum n=%d", n), sum, oracle(fmt.Sprint("sum", n), p, func(r int) []int64 { return vecI64(r, n) }, func(a, b int64) int64 { return a + b })); err != nil {
						return err
					}
					mat, err := Allreduce(ctx, c, vecU64(r, n, 1), NewOp(matmul, false))
					if err != nil {
						return err
					}
					want := oracle(fmt.Sprint("mat1", n), p, func(r int) []uint64 { return vecU64(r, n, 1) }, matmul)
					if err := eqSlices(fmt.Sprintf("allreduce matmul n=%d", n), mat, want); err != nil {
						return err
					}
					inPlace := append([]uint64(nil), vecU64(r, n, 1)...)
					if err := AllreduceInto(ctx, c, inPlace, inPlace, NewOp(matmul, false)); err != nil {
						return err
					}
					if err := eqSlices(fmt.Sprintf("allreduce in place matmul n=%d", n), inPlace, want); err != nil {
						return err
					}
					if n > 20_000 {
						continue
					}
					mb, err := AllreduceBytes(ctx, c, memoize(fmt.Sprint("u64b", r, n), func() []byte { return u64Bytes(vecU64(r, n, 1)) }), matBytesOp)
					if err != nil {
						return err
					}
					if err := mismatch(fmt.Sprintf("allreduce bytes matmul n=%d", n), mb, memoize(fmt.Sprint("u64bw", p, n), func() []byte { return u64Bytes(want) })); err != nil {
						return err
					}
				}
				return nil
			})
		})
	})
}

func TestOracleReduce(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		p := len(comms)
		withVariants(t, comms, OpReduce, func(t *testing.T, big bool) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				r := c.Rank()
				for _, n := range reduceCounts(p, big) {
					for _, root := range roots(p) {
						mx, err := Reduce(ctx, c, root, vecI64(r, n), Max[int64]())
						if err != nil {
							return err
						}
						mat, err := Reduce(ctx, c, root, vecU64(r, n, 2), NewOp(matmul, false))
						if err != nil {
							return err
						}
						if r != root {
							if mx != nil || mat != nil {
								return fmt.Errorf("reduce: non-root got a result")
							}
							continue
						}
						if err := eqSlices(fmt.Sprintf("reduce max n=%d root=%d", n, root), mx, oracle(fmt.Sprint("max", n), p, func(r int) []int64 { return vecI64(r, n) }, func(a, b int64) int64 { return max(a, b) })); err != nil {
							return err
						}
						if err := eqSlices(fmt.Sprintf("reduce matmul n=%d root=%d", n, root), mat, oracle(fmt.Sprint("mat2", n), p, func(r int) []uint64 { return vecU64(r, n, 2) }, matmul)); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
	})
}

// rsCounts splits n elements unevenly over p ranks, with zeros.
func rsCounts(n, p int) []int {
	counts := make([]int, p)
	left := n
	for i := range p - 1 {
		c := 0
		if i%3 != 1 {
			c = min(left, n/p+(i%2)*(n/(2*p)))
		}
		counts[i] = c
		left -= c
	}
	counts[p-1] = left
	return counts
}

func TestOracleReduceScatter(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		p := len(comms)
		withVariants(t, comms, OpReduceScatter, func(t *testing.T, big bool) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				r := c.Rank()
				for _, n := range reduceCounts(p, big) {
					counts := rsCounts(n, p)
					off := 0
					for _, k := range counts[:r] {
						off += k
					}
					sum, err := ReduceScatter(ctx, c, vecI64(r, n), counts, Sum[int64]())
					if err != nil {
						return err
					}
					want := oracle(fmt.Sprint("sum", n), p, func(r int) []int64 { return vecI64(r, n) }, func(a, b int64) int64 { return a + b })
					if err := eqSlices(fmt.Sprintf("reduce-scatter sum n=%d", n), sum, want[off:off+counts[r]]); err != nil {
						return err
					}
					mat, err := ReduceScatter(ctx, c, vecU64(r, n, 3), counts, NewOp(matmul, false))
					if err != nil {
						return err
					}
					wantM := oracle(fmt.Sprint("mat3", n), p, func(r int) []uint64 { return vecU64(r, n, 3) }, matmul)
					if err := eqSlices(fmt.Sprintf("reduce-scatter matmul n=%d", n), mat, wantM[off:off+counts[r]]); err != nil {
						return err
					}
				}
				return nil
			})
		})
	})
}
