package collective

import (
	"reflect"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// The float sums, the reduction most work spends its time in, in AVX2 (8
// float32 or 4 float64 per instruction; Go does not vectorise loops). They
// add element by element, as the scalar loop does, so results are
// bit-identical to it.

//go:noescape
func addF32AVX2(dst, a, b unsafe.Pointer, n int)

//go:noescape
func addF64AVX2(dst, a, b unsafe.Pointer, n int)

// fastSum returns vector kernels for Sum over T (acc += in, and
// dst = a + b), or nils where there are none.
func fastSum[T Number]() (fwd func(acc, in []T), to func(dst, a, b []T)) {
	if !cpu.X86.HasAVX2 {
		return nil, nil
	}
	var add func(dst, a, b unsafe.Pointer, n int)
	switch reflect.TypeFor[T]().Kind() {
	case reflect.Float32:
		add = addF32AVX2
	case reflect.Float64:
		add = addF64AVX2
	default:
		return nil, nil
	}
	to = func(dst, a, b []T) {
		n := len(dst)
		if n == 0 {
			return
		}
		a, b = a[:n], b[:n]
		add(unsafe.Pointer(&dst[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&b[0]), n)
	}
	fwd = func(acc, in []T) { to(acc, acc, in) }
	return fwd, to
}
