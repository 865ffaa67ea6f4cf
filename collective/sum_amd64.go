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

// fastSum returns the vector kernel for Sum over T (dst = a + b), or nil
// where there is none.
func fastSum[T Number]() func(dst, a, b []T) {
	if !cpu.X86.HasAVX2 {
		return nil
	}
	var add func(dst, a, b unsafe.Pointer, n int)
	switch reflect.TypeFor[T]().Kind() {
	case reflect.Float32:
		add = addF32AVX2
	case reflect.Float64:
		add = addF64AVX2
	default:
		return nil
	}
	return func(dst, a, b []T) {
		n := len(dst)
		if n == 0 {
			return
		}
		a, b = a[:n], b[:n]
		add(unsafe.Pointer(&dst[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&b[0]), n)
	}
}
