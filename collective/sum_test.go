package collective

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFastSum checks the vector sum kernels against the scalar loop, bit for
// bit, at every length around their block sizes and at unaligned offsets,
// into a separate buffer and in place.
func TestFastSum(t *testing.T) {
	t.Run("float32", func(t *testing.T) { testFastSum[float32](t) })
	t.Run("float64", func(t *testing.T) { testFastSum[float64](t) })
}

func testFastSum[T float32 | float64](t *testing.T) {
	to := fastSum[T]()
	if to == nil {
		t.Skip("no vector sum kernel on this CPU or architecture")
	}
	fwd := Sum[T]().fwd // in place: the same kernel with the accumulator as an operand
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 150 {
		for _, off := range []int{0, 1, 3} {
			a := make([]T, n+off)
			b := make([]T, n+off)
			for i := range a {
				a[i] = T(rng.NormFloat64() * 1e3)
				b[i] = T(rng.NormFloat64())
			}
			a, b = a[off:], b[off:]
			want := make([]T, n)
			for i := range want {
				want[i] = a[i] + b[i]
			}
			dst := make([]T, n)
			to(dst, a, b)
			require.Equal(t, want, dst, fmt.Sprintf("to n=%d off=%d", n, off))
			acc := make([]T, n)
			copy(acc, a)
			fwd(acc, b)
			require.Equal(t, want, acc, fmt.Sprintf("fwd n=%d off=%d", n, off))
		}
	}
}

// BenchmarkSum is the reduction kernel of a float sum over 1 MiB vectors
// (the vector kernel where the CPU has one), against the plain Go loop.
func BenchmarkSum(b *testing.B) {
	const n = 1 << 18 // float32s: 1 MiB
	acc, in := make([]float32, n), make([]float32, n)
	b.Run("kernel", func(b *testing.B) {
		f := Sum[float32]().fwd
		b.SetBytes(4 * n)
		for b.Loop() {
			f(acc, in)
		}
	})
	b.Run("loop", func(b *testing.B) {
		b.SetBytes(4 * n)
		for b.Loop() {
			for i := range acc {
				acc[i] += in[i]
			}
		}
	})
}
