package collective

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"unsafe"
)

// Tests of MPI semantics at the edges: bit-identical allreduce results on
// every rank, non-commutative ops that are true string concatenations,
// Split's ordering and undefined color, and zero-length and uneven
// contributions.

// allSame checks that every rank of c holds the same bytes b.
func allSame(ctx context.Context, c *Comm, what string, b []byte) error {
	all, err := c.Allgather(ctx, b)
	if err != nil {
		return err
	}
	for r, x := range all {
		if !bytes.Equal(x, all[0]) {
			return fmt.Errorf("%s: rank %d's result differs from rank 0's (first difference at byte %d)", what, r, firstDiff(x, all[0]))
		}
	}
	return nil
}

func firstDiff(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// nanVec is a float vector whose elements are NaNs with a payload that
// differs per rank (every other element), and ordinary values of very
// different magnitudes.
func nanVec(rank, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		switch i % 3 {
		case 0:
			v[i] = math.Float64frombits(0x7ff8000000000000 | uint64(rank+1)<<20 | uint64(i))
		case 1:
			v[i] = math.Ldexp(float64(rank*7+i)+0.1, (rank*13+i)%60-30)
		default:
			v[i] = -math.Ldexp(1/float64(rank+i+1), (rank*5+i)%40)
		}
	}
	return v
}

func f64Bytes(v []float64) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 8*len(v))
}

// TestAllreduceBitIdenticalOnEveryRank: every rank of an Allreduce gets
// the same bits, whatever the algorithm, for the built-in float ops and a
// commutative user op, even with NaNs whose payloads differ per rank
// (x86's addition keeps the first operand's NaN, so a ⊕ b and b ⊕ a differ
// in their bits).
func TestAllreduceBitIdenticalOnEveryRank(t *testing.T) {
	ops := []Op[float64]{Sum[float64](), Prod[float64](), Min[float64](), Max[float64](),
		NewOp(func(a, b float64) float64 { return a + b }, true)}
	forEachP(t, func(t *testing.T, comms []*Comm) {
		withVariants(t, comms, OpAllreduce, func(t *testing.T, big bool) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				for _, n := range []int{1, 3, 17, 301} {
					for _, op := range ops {
						got, err := Allreduce(ctx, c, nanVec(c.Rank(), n), op)
						if err != nil {
							return err
						}
						if err := allSame(ctx, c, fmt.Sprintf("allreduce %v n=%d", op, n), f64Bytes(got)); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
	})
}

// concatOp is string concatenation over 32-byte elements: byte 0 is the
// length, bytes 1.. the string. It is associative and as non-commutative
// as an op gets: the result spells the order the ranks were combined in.
var concatOp = NewBytesOp(32, func(acc, in []byte) {
	for i := 0; i+32 <= len(acc); i += 32 {
		a, b := acc[i:i+32], in[i:i+32]
		la, lb := int(a[0]), int(b[0])
		if la+lb > 31 {
			panic("concat: too long")
		}
		copy(a[1+la:], b[1:1+lb])
		a[0] = byte(la + lb)
	}
}, false)

// concatVec holds n elements, each the one-letter string of this rank
// (shifted by the element's index, so that blocks differ).
func concatVec(rank, n int) []byte {
	b := make([]byte, 32*n)
	for i := range n {
		b[32*i] = 1
		b[32*i+1] = byte('A' + (rank+i)%26)
	}
	return b
}

func concatWant(p, n int) []byte {
	b := make([]byte, 32*n)
	for i := range n {
		b[32*i] = byte(p)
		for r := range p {
			b[32*i+1+r] = byte('A' + (r+i)%26)
		}
	}
	return b
}

// TestConcatInRankOrder: string concatenation, the op where every
// misordering shows, under every algorithm of every reduction (and Auto),
// at p = 1..17, element counts below, at and above p and not multiples of
// it; reduce-scatter with uneven counts including zeros.
func TestConcatInRankOrder(t *testing.T) {
	for _, op := range []Collective{OpReduce, OpAllreduce, OpReduceScatter} {
		t.Run(op.String(), func(t *testing.T) {
			forEachP(t, func(t *testing.T, comms []*Comm) {
				p := len(comms)
				withVariants(t, comms, op, func(t *testing.T, big bool) {
					requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
						r := c.Rank()
						for _, n := range []int{0, 1, p - 1, p, p + 1, 2*p + 3, 3*p - 1, 97} {
							if n < 0 {
								continue
							}
							data, want := concatVec(r, n), concatWant(p, n)
							switch op {
							case OpReduce:
								for _, root := range roots(p) {
									got, err := ReduceBytes(ctx, c, root, data, concatOp)
									if err != nil {
										return err
									}
									if r == root {
										if err := mismatch(fmt.Sprintf("reduce n=%d root=%d", n, root), got, want); err != nil {
											return err
										}
									}
								}
							case OpAllreduce:
								got, err := AllreduceBytes(ctx, c, data, concatOp)
								if err != nil {
									return err
								}
								if err := mismatch(fmt.Sprintf("allreduce n=%d", n), got, want); err != nil {
									return err
								}
							case OpReduceScatter:
								for _, counts := range edgeCounts(n, p) {
									got, err := ReduceScatterBytes(ctx, c, data, counts, concatOp)
									if err != nil {
										return err
									}
									off := 0
									for _, k := range counts[:r] {
										off += k
									}
									if err := mismatch(fmt.Sprintf("reduce-scatter n=%d counts=%v", n, counts), got, want[32*off:32*(off+counts[r])]); err != nil {
										return err
									}
								}
							}
						}
						return nil
					})
				})
			})
		})
	}
}

// edgeCounts are ways to split n elements over p ranks: everything on the
// first rank, everything on the last, one element each on the odd ranks
// with the rest on rank 0, and as even as possible.
func edgeCounts(n, p int) [][]int {
	var out [][]int
	first := make([]int, p)
	first[0] = n
	last := make([]int, p)
	last[p-1] = n
	out = append(out, first, last)
	odd := make([]int, p)
	left := n
	for i := 1; i < p && left > 0; i += 2 {
		odd[i] = 1
		left--
	}
	odd[0] = left
	even, _ := split(n, p)
	return append(out, odd, even)
}

// TestReduceScatterEdgeCountsTyped: typed reduce-scatter with the edge
// counts, a commutative and a non-commutative op, every algorithm.
func TestReduceScatterEdgeCountsTyped(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		p := len(comms)
		withVariants(t, comms, OpReduceScatter, func(t *testing.T, big bool) {
			requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
				r := c.Rank()
				for _, n := range []int{0, 1, p + 1, 1001} {
					wantS := oracle(fmt.Sprint("sum", n), p, func(r int) []int64 { return vecI64(r, n) }, func(a, b int64) int64 { return a + b })
					wantM := oracle(fmt.Sprint("mat3", n), p, func(r int) []uint64 { return vecU64(r, n, 3) }, matmul)
					for _, counts := range edgeCounts(n, p) {
						off := 0
						for _, k := range counts[:r] {
							off += k
						}
						sum, err := ReduceScatter(ctx, c, vecI64(r, n), counts, Sum[int64]())
						if err != nil {
							return err
						}
						if err := eqSlices(fmt.Sprintf("sum n=%d counts=%v", n, counts), sum, wantS[off:off+counts[r]]); err != nil {
							return err
						}
						mat, err := ReduceScatter(ctx, c, vecU64(r, n, 3), counts, NewOp(matmul, false))
						if err != nil {
							return err
						}
						if err := eqSlices(fmt.Sprintf("matmul n=%d counts=%v", n, counts), mat, wantM[off:off+counts[r]]); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
	})
}

// TestZeroLengthContributions: allgather and alltoallv where most ranks
// contribute nothing, and where all do, under every algorithm.
func TestZeroLengthContributions(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		p := len(comms)
		t.Run("allgather", func(t *testing.T) {
			withVariants(t, comms, OpAllgather, func(t *testing.T, big bool) {
				requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
					for _, who := range []int{-1, 0, p - 1, p / 2} {
						size := func(r int) int {
							if r == who {
								return 5000
							}
							return 0
						}
						out, err := c.Allgather(ctx, payload(c.Rank(), size(c.Rank()), 7))
						if err != nil {
							return err
						}
						if len(out) != p {
							return fmt.Errorf("allgather: %d blocks", len(out))
						}
						for j, b := range out {
							if err := mismatch(fmt.Sprintf("allgather who=%d block %d", who, j), b, payload(j, size(j), 7)); err != nil {
								return err
							}
						}
					}
					return nil
				})
			})
		})
		t.Run("alltoallv", func(t *testing.T) {
			withVariants(t, comms, OpAlltoallv, func(t *testing.T, big bool) {
				requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
					r := c.Rank()
					// Only rank i -> rank (i+1)%p sends, and only for even i.
					size := func(from, to int) int {
						if from%2 == 0 && to == (from+1)%p {
							return 1000 + from
						}
						return 0
					}
					parts := make([][]byte, p)
					for j := range parts {
						parts[j] = payload(r*100+j, size(r, j), 8)
					}
					out, err := c.Alltoallv(ctx, parts)
					if err != nil {
						return err
					}
					into := make([][]byte, p)
					for j := range into {
						into[j] = make([]byte, size(j, r))
					}
					if err := c.AlltoallvInto(ctx, parts, into); err != nil {
						return err
					}
					for j := range p {
						want := payload(j*100+r, size(j, r), 8)
						if err := mismatch(fmt.Sprintf("alltoallv from %d", j), out[j], want); err != nil {
							return err
						}
						if err := mismatch(fmt.Sprintf("alltoallv-into from %d", j), into[j], want); err != nil {
							return err
						}
					}
					return nil
				})
			})
		})
	})
}

// TestSplitOracle: Split at p = 1..17 with colors that leave ranks out
// (negative colors, not only -1), keys with ties (broken by the parent
// rank) and keys in any order, checked against a sequential computation;
// then a nested split of every part, and collectives on the parent, the
// part and the nested part at the same time.
func TestSplitOracle(t *testing.T) {
	forEachP(t, func(t *testing.T, comms []*Comm) {
		p := len(comms)
		color := func(r int) int {
			switch {
			case r%5 == 4:
				return -32766 // MPI_UNDEFINED in MPICH
			case r%7 == 6:
				return -1
			}
			return (r * 3) % 4 * 1000
		}
		key := func(r int) int { return (r * 7) % 3 } // ties everywhere
		requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
			r := c.Rank()
			sub, err := c.Split(ctx, color(r), key(r))
			if err != nil {
				return err
			}
			if color(r) < 0 {
				if sub != nil {
					return fmt.Errorf("rank %d: negative color got a communicator", r)
				}
				return concatRounds(ctx, r, []*Comm{c}, [][]int{seq(p)})
			}
			var members []int
			for q := range p {
				if color(q) == color(r) {
					members = append(members, q)
				}
			}
			slices.SortStableFunc(members, func(a, b int) int { return key(a) - key(b) }) // stable: ties stay in rank order
			if sub.Size() != len(members) {
				return fmt.Errorf("rank %d: part of %d ranks, want %d", r, sub.Size(), len(members))
			}
			for i, m := range members {
				if sub.WorldRank(i) != m {
					return fmt.Errorf("rank %d: part rank %d is world rank %d, want %d (members %v)", r, i, sub.WorldRank(i), m, members)
				}
			}
			if sub.WorldRank(sub.Rank()) != r {
				return fmt.Errorf("rank %d: own part rank %d is world rank %d", r, sub.Rank(), sub.WorldRank(sub.Rank()))
			}
			// Nested: reverse order, and every third part rank left out.
			nc := 0
			if sub.Rank()%3 == 2 {
				nc = -1
			}
			nested, err := sub.Split(ctx, nc, -sub.Rank())
			if err != nil {
				return err
			}
			var nmembers []int
			for i := len(members) - 1; i >= 0; i-- {
				if i%3 != 2 {
					nmembers = append(nmembers, members[i])
				}
			}
			if nc < 0 {
				if nested != nil {
					return fmt.Errorf("rank %d: nested negative color got a communicator", r)
				}
			} else {
				for i, m := range nmembers {
					if nested.WorldRank(i) != m {
						return fmt.Errorf("rank %d: nested rank %d is world rank %d, want %d", r, i, nested.WorldRank(i), m)
					}
				}
			}
			// Collectives on all three at once.
			return concatRounds(ctx, r, []*Comm{c, sub, nested}, [][]int{seq(p), members, nmembers})
		})
	})
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// concatRounds runs allreduces of concatOp on every communicator in all
// (nil ones skipped) at the same time, each checked against its members
// (world ranks in rank order).
func concatRounds(ctx context.Context, r int, all []*Comm, want [][]int) error {
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, s := range all {
		if s == nil {
			continue
		}
		wg.Go(func() {
			for k := range 5 {
				got, err := AllreduceBytes(ctx, s, concatOne(s.WorldRank(s.Rank())+k), concatOp)
				if err != nil {
					errs[i] = err
					return
				}
				w := []byte{byte(len(want[i]))}
				for _, m := range want[i] {
					w = append(w, byte('A'+(m+k)%26))
				}
				if !bytes.Equal(got[:1+len(want[i])], w) {
					errs[i] = fmt.Errorf("rank %d: communicator %d: got %q, want %q", r, i, got[1:1+got[0]], w[1:])
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// concatOne is one concatOp element holding one letter.
func concatOne(v int) []byte {
	b := make([]byte, 32)
	b[0] = 1
	b[1] = byte('A' + v%26)
	return b
}

// TestDocumentedAliasing checks what docs/collectives.md promises about
// buffers: Allgather, Gather and Alltoallv put the caller's own data in its
// slot without copying, Bcast returns data itself on the root, and no
// reduction modifies data, under every algorithm.
func TestDocumentedAliasing(t *testing.T) {
	for _, p := range []int{1, 2, 3, 4, 5, 8} {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			comms := newComms(t, tcpMesh, p)
			for _, op := range []Collective{OpAllgather, OpGather, OpAlltoallv, OpBcast, OpAllreduce, OpReduce, OpReduceScatter} {
				t.Run(op.String(), func(t *testing.T) {
					withVariants(t, comms, op, func(t *testing.T, big bool) {
						requireAllOK(t, comms, func(ctx context.Context, c *Comm) error {
							r := c.Rank()
							for _, n := range []int{1, 300, 70_000} {
								data := append([]byte(nil), payload(r, n, 9)...)
								same := func(what string, b []byte) error {
									if len(b) != len(data) || &b[0] != &data[0] {
										return fmt.Errorf("%s n=%d: own slot is not data itself", what, n)
									}
									return nil
								}
								switch op {
								case OpAllgather:
									out, err := c.Allgather(ctx, data)
									if err != nil {
										return err
									}
									if err := same("allgather", out[r]); err != nil {
										return err
									}
								case OpGather:
									out, err := c.Gather(ctx, 0, data)
									if err != nil {
										return err
									}
									if r == 0 {
										if err := same("gather", out[0]); err != nil {
											return err
										}
									}
								case OpAlltoallv:
									parts := make([][]byte, p)
									for j := range parts {
										parts[j] = data
									}
									out, err := c.Alltoallv(ctx, parts)
									if err != nil {
										return err
									}
									if err := same("alltoallv", out[r]); err != nil {
										return err
									}
								case OpBcast:
									out, err := c.Bcast(ctx, 0, data)
									if err != nil {
										return err
									}
									if r == 0 {
										if err := same("bcast", out); err != nil {
											return err
										}
									}
								default:
									v := asElems[float64](data[:n/8*8])
									orig := append([]float64(nil), v...)
									var err error
									switch op {
									case OpAllreduce:
										_, err = Allreduce(ctx, c, v, Sum[float64]())
										if err == nil {
											_, err = Allreduce(ctx, c, v, NewOp(func(a, b float64) float64 { return a - b }, false))
										}
									case OpReduce:
										_, err = Reduce(ctx, c, p-1, v, Sum[float64]())
									default:
										counts, _ := split(len(v), p)
										_, err = ReduceScatter(ctx, c, v, counts, Sum[float64]())
									}
									if err != nil {
										return err
									}
									if !bytes.Equal(f64Bytes(v), f64Bytes(orig)) {
										return fmt.Errorf("%v n=%d modified data", op, n)
									}
								}
							}
							return nil
						})
					})
				})
			}
		})
	}
}
