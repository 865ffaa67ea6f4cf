package collective

import (
	"fmt"
	"unsafe"
)

// Number is the element types the typed reductions work on. Elements travel
// in the host's byte order; every rank must share it (all platforms Go
// targets for serverless functions are little endian).
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr |
		~float32 | ~float64
}

// Op is an associative reduction over T, applied element by element. Every
// algorithm combines contributions so that the result equals
// x[0] ⊕ x[1] ⊕ ... ⊕ x[p-1] in rank order for a non-commutative op; for a
// commutative op algorithms may combine in any order (floating-point sums
// may then differ in the last bits between algorithms, as in MPI). Within
// one Allreduce every rank gets the same bits: each element of the result
// is computed once and sent to the others, or (recursive doubling) the
// same expression, operands in the same order, is computed on every rank.
type Op[T Number] struct {
	name        string
	commutative bool
	nilFn       bool                // made by NewOp with a nil function: refused by every reduction
	fwd         func(acc, in []T)   // acc[i] = acc[i] ⊕ in[i]: acc holds the lower ranks
	rev         func(acc, in []T)   // acc[i] = in[i] ⊕ acc[i]: in holds the lower ranks
	to          func(dst, a, b []T) // dst[i] = a[i] ⊕ b[i], in one pass
}

// String returns the op's name.
func (o Op[T]) String() string { return o.name }

// Commutative reports whether the op may combine operands in any order.
func (o Op[T]) Commutative() bool { return o.commutative }

// Sum adds elements.
func Sum[T Number]() Op[T] {
	to := func(dst, a, b []T) {
		a, b = a[:len(dst)], b[:len(dst)]
		i := 0
		for ; i+4 <= len(dst); i += 4 { // unrolled: Go does not vectorise
			d, x, y := dst[i:i+4:i+4], a[i:i+4:i+4], b[i:i+4:i+4]
			d[0] = x[0] + y[0]
			d[1] = x[1] + y[1]
			d[2] = x[2] + y[2]
			d[3] = x[3] + y[3]
		}
		for ; i < len(dst); i++ {
			dst[i] = a[i] + b[i]
		}
	}
	if vto := fastSum[T](); vto != nil {
		to = vto
	}
	return commutativeOp("sum", to)
}

// Prod multiplies elements.
func Prod[T Number]() Op[T] {
	return commutativeOp("prod", func(dst, a, b []T) {
		a, b = a[:len(dst)], b[:len(dst)]
		for i := range dst {
			dst[i] = a[i] * b[i]
		}
	})
}

// Min keeps the smaller element (for floats, as the built-in min: NaN wins).
func Min[T Number]() Op[T] {
	return commutativeOp("min", func(dst, a, b []T) {
		a, b = a[:len(dst)], b[:len(dst)]
		for i := range dst {
			dst[i] = min(a[i], b[i])
		}
	})
}

// Max keeps the larger element (for floats, as the built-in max: NaN wins).
func Max[T Number]() Op[T] {
	return commutativeOp("max", func(dst, a, b []T) {
		a, b = a[:len(dst)], b[:len(dst)]
		for i := range dst {
			dst[i] = max(a[i], b[i])
		}
	})
}

// commutativeOp makes a commutative op from its two-operand form to
// (dst = a ⊕ b): combining in place is to with the accumulator as both
// destination and first operand, in either rank order.
func commutativeOp[T Number](name string, to func(dst, a, b []T)) Op[T] {
	f := func(acc, in []T) { to(acc, acc, in) }
	return Op[T]{name: name, commutative: true, fwd: f, rev: f, to: to}
}

// NewOp returns a user-defined op computing fn(a, b) = a ⊕ b element by
// element, where a comes from lower ranks than b. fn must be associative.
// Say commutative only if fn(a, b) == fn(b, a): a non-commutative op is
// always combined in rank order. Every rank must pass the same
// commutativity (a rank that disagrees makes the call fail with
// ErrMismatch). A nil fn gives an op that every reduction refuses with
// ErrInvalidArgument. If fn panics, the reduction fails with ErrPanic on
// that rank (and so, through the poisoned communicator, on the others).
func NewOp[T Number](fn func(a, b T) T, commutative bool) Op[T] {
	if fn == nil {
		return Op[T]{name: "user", commutative: commutative, nilFn: true}
	}
	fwd := func(acc, in []T) {
		in = in[:len(acc)]
		for i := range acc {
			acc[i] = fn(acc[i], in[i])
		}
	}
	rev := fwd
	if !commutative {
		rev = func(acc, in []T) {
			in = in[:len(acc)]
			for i := range acc {
				acc[i] = fn(in[i], acc[i])
			}
		}
	}
	to := func(dst, a, b []T) {
		a, b = a[:len(dst)], b[:len(dst)]
		for i := range dst {
			dst[i] = fn(a[i], b[i])
		}
	}
	return Op[T]{name: "user", commutative: commutative, fwd: fwd, rev: rev, to: to}
}

// BytesOp is a reduction over fixed-size elements held in byte slices, for
// element types that are not a Number (structs, pairs, encoded values).
type BytesOp struct {
	elem        int
	commutative bool
	fn          func(acc, in []byte)
}

// NewBytesOp returns a byte-slice reduction over elements of elemSize
// bytes. fn(acc, in) must set acc = acc ⊕ in element by element, acc
// holding the lower ranks' contribution; it is called with equal-length
// slices holding whole elements. fn must be associative; say commutative
// only if it is. A nil fn or an elemSize below 1 gives an op that every
// reduction refuses with ErrInvalidArgument; a panic in fn fails the
// reduction with ErrPanic, as for NewOp.
func NewBytesOp(elemSize int, fn func(acc, in []byte), commutative bool) BytesOp {
	return BytesOp{elem: elemSize, commutative: commutative, fn: fn}
}

// reducer is an op over bytes, as the algorithms use it. Its methods run
// the op's functions and turn a panic in them (user code) into an ErrPanic
// error, so that the algorithm ends like any failed call: its pending
// receives withdrawn, its scratch buffers returned only then, the
// communicator poisoned.
type reducer struct {
	elem        int
	commutative bool
	fwdFn       func(acc, in []byte)   // acc = acc ⊕ in
	revFn       func(acc, in []byte)   // acc = in ⊕ acc
	toFn        func(dst, a, b []byte) // dst = a ⊕ b (dst overlaps neither)
}

// recoverUser turns a panic of a user function into *err; it must be
// deferred directly.
func recoverUser(err *error, what string) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: %s: %v", ErrPanic, what, p)
	}
}

func (rd *reducer) fwd(acc, in []byte) (err error) {
	defer recoverUser(&err, "reduction op")
	rd.fwdFn(acc, in)
	return nil
}

func (rd *reducer) rev(acc, in []byte) (err error) {
	defer recoverUser(&err, "reduction op")
	rd.revFn(acc, in)
	return nil
}

func (rd *reducer) to(dst, a, b []byte) (err error) {
	defer recoverUser(&err, "reduction op")
	rd.toFn(dst, a, b)
	return nil
}

// ident is the part of a reduction's identity the op gives: whether it is
// commutative (the algorithms build other trees for a non-commutative op,
// so the ranks must agree).
func (rd *reducer) ident() ident {
	if rd.commutative {
		return identCommutative
	}
	return 0
}

// checkLen checks that n bytes are a whole number of elements.
func (rd *reducer) checkLen(n int) error {
	if n%rd.elem != 0 {
		return fmt.Errorf("%w: %d bytes is not a whole number of %d-byte elements", ErrInvalidArgument, n, rd.elem)
	}
	return nil
}

func (o Op[T]) reducer() (reducer, error) {
	if o.nilFn {
		return reducer{}, fmt.Errorf("%w: NewOp with a nil function", ErrInvalidArgument)
	}
	if o.fwd == nil {
		return reducer{}, fmt.Errorf("%w: zero Op: use Sum, Prod, Min, Max or NewOp", ErrInvalidArgument)
	}
	var z T
	return reducer{
		elem:        int(unsafe.Sizeof(z)),
		commutative: o.commutative,
		fwdFn:       func(acc, in []byte) { o.fwd(asElems[T](acc), asElems[T](in)) },
		revFn:       func(acc, in []byte) { o.rev(asElems[T](acc), asElems[T](in)) },
		toFn:        func(dst, a, b []byte) { o.to(asElems[T](dst), asElems[T](a), asElems[T](b)) },
	}, nil
}

func (o BytesOp) reducer() (reducer, error) {
	if o.fn == nil || o.elem < 1 {
		return reducer{}, fmt.Errorf("%w: BytesOp: use NewBytesOp with an element size >= 1 and a function", ErrInvalidArgument)
	}
	rd := reducer{elem: o.elem, commutative: o.commutative, fwdFn: o.fn, revFn: o.fn}
	rd.toFn = func(dst, a, b []byte) {
		copy(dst, a)
		o.fn(dst, b)
	}
	if !o.commutative {
		fn := o.fn
		rd.revFn = func(acc, in []byte) {
			// acc = in ⊕ acc through a scratch copy of in. (If fn
			// panics, the scratch buffer is left to the collector.)
			tmp, pb := getBuf(len(in))
			copy(tmp, in)
			fn(tmp, acc)
			copy(acc, tmp)
			putBuf(pb)
		}
	}
	return rd, nil
}

// asElems views b as elements of T. b must be aligned for T (every buffer
// the algorithms reduce into or from is: it is either the caller's []T or a
// fresh or pooled allocation, at element-multiple offsets).
func asElems[T Number](b []byte) []T {
	var z T
	n := len(b) / int(unsafe.Sizeof(z))
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// asBytes views s as bytes.
func asBytes[T Number](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(z)))
}
