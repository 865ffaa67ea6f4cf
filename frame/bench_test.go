package frame

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// cylonColumns returns Cylon's join benchmark data: a key and a value
// column of random int64, keys uniform over [0, uniqueness*rows).
func cylonColumns(mem memory.Allocator, rows int, uniqueness float64, seed uint64) (k, v arrow.Array) {
	rng := rand.New(rand.NewPCG(seed, seed))
	kb := array.NewInt64Builder(mem)
	vb := array.NewInt64Builder(mem)
	defer kb.Release()
	defer vb.Release()
	kb.Reserve(rows)
	vb.Reserve(rows)
	span := max(int64(float64(rows)*uniqueness), 1)
	for range rows {
		kb.UnsafeAppend(rng.Int64N(span))
		vb.UnsafeAppend(rng.Int64())
	}
	return kb.NewArray(), vb.NewArray()
}

func BenchmarkLocalHashJoinInt64(b *testing.B) {
	const rows = 1 << 20
	mem := memory.NewGoAllocator()
	lk, lv := cylonColumns(mem, rows, 0.9, 1)
	rk, rv := cylonColumns(mem, rows, 0.9, 2)
	defer func() { releaseAll([]arrow.Array{lk, lv, rk, rv}) }()
	ctx := context.Background()
	b.SetBytes(2 * rows * 16)
	b.ResetTimer()
	for range b.N {
		ps, err := hashJoin([]arrow.Array{rk}, []arrow.Array{lk}, false, false, 2)
		if err != nil {
			b.Fatal(err)
		}
		cols, err := takeColumns(ctx, mem, []arrow.Array{lk, lv}, ps.p)
		if err != nil {
			b.Fatal(err)
		}
		rcols, err := takeColumns(ctx, mem, []arrow.Array{rv}, ps.b)
		if err != nil {
			b.Fatal(err)
		}
		releaseAll(cols)
		releaseAll(rcols)
	}
}

func BenchmarkLocalHashJoinIndicesInt64(b *testing.B) {
	const rows = 1 << 20
	mem := memory.NewGoAllocator()
	lk, lv := cylonColumns(mem, rows, 0.9, 1)
	rk, rv := cylonColumns(mem, rows, 0.9, 2)
	defer func() { releaseAll([]arrow.Array{lk, lv, rk, rv}) }()
	b.ResetTimer()
	for range b.N {
		if _, err := hashJoin([]arrow.Array{rk}, []arrow.Array{lk}, false, false, 2); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLocalGroupByInt64(b *testing.B) {
	const rows = 1 << 20
	mem := memory.NewGoAllocator()
	k, v := cylonColumns(mem, rows, 0.9, 1)
	defer func() { releaseAll([]arrow.Array{k, v}) }()
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		out, err := aggregateLocal(ctx, mem, []arrow.Array{k, v}, rows, []int{0}, []kernelSpec{{kSum, 1}, {kCountAll, -1}})
		if err != nil {
			b.Fatal(err)
		}
		releaseAll(out)
	}
}
