package frame

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/compute/exec"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/arrowio"
	"github.com/fnmesh/fnmesh/collective"
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
		ps, err := hashJoin(ctx, []arrow.Array{rk}, []arrow.Array{lk}, false, false, 2)
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
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := hashJoin(ctx, []arrow.Array{rk}, []arrow.Array{lk}, false, false, 2); err != nil {
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

// BenchmarkExchangeInProcess times the all-to-all exchange of the Cylon
// benchmark's shuffle (one 9.1 M-row table per rank, hash-partitioned over 2
// ranks) with both ranks in this process over loopback TCP, checksums off:
// the exchange without process scheduling in the way.
//
//	go test -run '^$' -bench ExchangeInProcess ./frame
func BenchmarkExchangeInProcess(b *testing.B) {
	ctx := context.Background()
	comms, err := collective.Local(ctx, 2, collective.WithChecksum(false))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, c := range comms {
			c.Close()
		}
	}()
	mem := memory.NewGoAllocator()
	parts := make([][]arrow.Table, 2)
	schema := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64}, {Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	for r := range 2 {
		k, v := cylonColumns(mem, 9_100_000, 0.9, uint64(r))
		tbl := tableFromColumns(schema, []arrow.Array{k, v}, int64(k.Len()))
		releaseAll([]arrow.Array{k, v})
		ps, err := arrowio.HashPartition(ctx, tbl, []string{"k"}, 2)
		tbl.Release()
		if err != nil {
			b.Fatal(err)
		}
		parts[r] = ps
		defer releaseTables(ps)
	}
	b.SetBytes(tableBytes(parts[0][1]))
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		for r := range 2 {
			wg.Go(func() {
				recv, err := arrowio.AlltoallTables(ctx, comms[r], parts[r])
				if err != nil {
					b.Error(err)
					return
				}
				releaseTables(recv)
			})
		}
		wg.Wait()
	}
}

// benchTable is cylonColumns as a table of columns k and v.
func benchTable(mem memory.Allocator, rows int, seed uint64) arrow.Table {
	k, v := cylonColumns(mem, rows, 0.9, seed)
	defer releaseAll([]arrow.Array{k, v})
	s := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64}, {Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	return tableFromColumns(s, []arrow.Array{k, v}, int64(rows))
}

// BenchmarkLocalSortInt64 is a rank's local sort on one int64 key (the
// typed path).
func BenchmarkLocalSortInt64(b *testing.B) {
	const rows = 1 << 20
	mem := memory.NewGoAllocator()
	t := benchTable(mem, rows, 1)
	defer t.Release()
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		out, err := sortLocal(ctx, mem, t, []int{0}, []SortKey{Asc("k")})
		if err != nil {
			b.Fatal(err)
		}
		out.Release()
	}
}

// BenchmarkLocalSortTwoKeys is a rank's local sort on two keys (the
// row-comparator path).
func BenchmarkLocalSortTwoKeys(b *testing.B) {
	const rows = 1 << 20
	mem := memory.NewGoAllocator()
	t := benchTable(mem, rows, 1)
	defer t.Release()
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		out, err := sortLocal(ctx, mem, t, []int{0, 1}, []SortKey{Asc("k"), Desc("v")})
		if err != nil {
			b.Fatal(err)
		}
		out.Release()
	}
}

// BenchmarkLocalGroupByTwoKeys is a rank's local aggregation on two keys
// (the generic hash index).
func BenchmarkLocalGroupByTwoKeys(b *testing.B) {
	const rows = 1 << 20
	mem := memory.NewGoAllocator()
	k, v := cylonColumns(mem, rows, 0.9, 1)
	defer func() { releaseAll([]arrow.Array{k, v}) }()
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		out, err := aggregateLocal(ctx, mem, []arrow.Array{k, v}, rows, []int{0, 1}, []kernelSpec{{kSum, 1}, {kCountAll, -1}, {kMin, 1}})
		if err != nil {
			b.Fatal(err)
		}
		releaseAll(out)
	}
}

// benchDict is a dictionary column of rows int32 indices (every 50th null
// when nulls) over card values: strings "s000000"... or int64.
func benchDict(mem memory.Allocator, rows, card int, str, nulls bool) arrow.Array {
	var vals arrow.Array
	if str {
		sb := array.NewStringBuilder(mem)
		for i := range card {
			sb.Append(fmt.Sprintf("s%06d", i))
		}
		vals = sb.NewArray()
		sb.Release()
	} else {
		vb := array.NewInt64Builder(mem)
		for i := range card {
			vb.Append(int64(i) * 31)
		}
		vals = vb.NewArray()
		vb.Release()
	}
	defer vals.Release()
	rng := rand.New(rand.NewPCG(7, 7))
	ib := array.NewInt32Builder(mem)
	defer ib.Release()
	ib.Reserve(rows)
	for i := range rows {
		if nulls && i%50 == 0 {
			ib.AppendNull()
		} else {
			ib.UnsafeAppend(rng.Int32N(int32(card)))
		}
	}
	idx := ib.NewArray()
	defer idx.Release()
	return array.NewDictionaryArray(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: vals.DataType()}, idx, vals)
}

// BenchmarkDecodeDictionary decodes a dictionary column of 4 Mi rows with
// frame's typed gather (decoded, which looks at ctx every pollRows rows)
// and with arrow-go's take kernel in one call (what decoded did before,
// and still does for other value types).
func BenchmarkDecodeDictionary(b *testing.B) {
	const rows = 4 << 20
	mem := memory.NewGoAllocator()
	ctx := context.Background()
	for _, c := range []struct {
		name       string
		card       int
		str, nulls bool
	}{
		{"string-1Ki", 1 << 10, true, false},
		{"string-1Mi", 1 << 20, true, false},
		{"string-1Ki-nulls", 1 << 10, true, true},
		{"int64-1Ki", 1 << 10, false, false},
		{"int64-1Ki-nulls", 1 << 10, false, true},
	} {
		a := benchDict(mem, rows, c.card, c.str, c.nulls)
		d := a.(*array.Dictionary)
		for _, impl := range []struct {
			name   string
			decode func() (arrow.Array, error)
		}{
			{"frame", func() (arrow.Array, error) { return decoded(ctx, mem, a) }},
			{"arrow-take", func() (arrow.Array, error) {
				return compute.TakeArray(exec.WithAllocator(ctx, mem), d.Dictionary(), d.Indices())
			}},
		} {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				for b.Loop() {
					out, err := impl.decode()
					if err != nil {
						b.Fatal(err)
					}
					out.Release()
				}
			})
		}
		a.Release()
	}
}

// peakAllocator counts the bytes an allocator has outstanding and the most
// it ever had.
type peakAllocator struct {
	memory.Allocator
	mu        sync.Mutex
	cur, peak int64
}

func (p *peakAllocator) add(n int) {
	p.mu.Lock()
	p.cur += int64(n)
	p.peak = max(p.peak, p.cur)
	p.mu.Unlock()
}

func (p *peakAllocator) Allocate(n int) []byte {
	p.add(n)
	return p.Allocator.Allocate(n)
}

func (p *peakAllocator) Reallocate(n int, b []byte) []byte {
	p.add(n - len(b))
	return p.Allocator.Reallocate(n, b)
}

func (p *peakAllocator) Free(b []byte) {
	p.add(-len(b))
	p.Allocator.Free(b)
}

// BenchmarkChunkedFrame reads a Parquet file of 4 Mi rows (an int64 key of
// 64 Ki values, a short string, a float64; ReadParquet makes one chunk per
// 64 Ki rows) on one rank and runs GroupBy, Sort, or GroupBy then Sort on
// the frame read, reporting the allocator's peak (read included).
func BenchmarkChunkedFrame(b *testing.B) {
	const rows = 4 << 20
	ctx := context.Background()
	comms, err := collective.Local(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer comms[0].Close()
	c := comms[0]
	mem := memory.NewGoAllocator()
	kb, sb, vb := array.NewInt64Builder(mem), array.NewStringBuilder(mem), array.NewFloat64Builder(mem)
	rng := rand.New(rand.NewPCG(1, 2))
	for range rows {
		kb.Append(rng.Int64N(1 << 16))
		sb.Append(fmt.Sprintf("s%05d", rng.IntN(100000)))
		vb.Append(rng.Float64())
	}
	arrs := []arrow.Array{kb.NewArray(), sb.NewArray(), vb.NewArray()}
	s := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64}, {Name: "s", Type: arrow.BinaryTypes.String}, {Name: "v", Type: arrow.PrimitiveTypes.Float64}}, nil)
	t := tableFromColumns(s, arrs, rows)
	releaseAll(arrs)
	src, err := New(c, t)
	t.Release()
	if err != nil {
		b.Fatal(err)
	}
	path, err := src.WriteParquet(ctx, b.TempDir()+"/data.parquet")
	src.Release()
	if err != nil {
		b.Fatal(err)
	}
	groupBy := func(f *Frame) (*Frame, error) { return f.GroupBy("k").Agg(ctx, Sum("v"), CountRows()) }
	sortBy := func(f *Frame) (*Frame, error) { return f.Sort(ctx, Asc("k")) }
	for _, bc := range []struct {
		name string
		ops  []func(*Frame) (*Frame, error)
	}{
		{"groupby", []func(*Frame) (*Frame, error){groupBy}},
		{"sort", []func(*Frame) (*Frame, error){sortBy}},
		{"groupby-sort", []func(*Frame) (*Frame, error){groupBy, sortBy}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var peak int64
			for range b.N {
				pa := &peakAllocator{Allocator: memory.NewGoAllocator()}
				f, err := ReadParquet(ctx, c, []string{path}, WithAllocator(pa))
				if err != nil {
					b.Fatal(err)
				}
				for _, op := range bc.ops {
					out, err := op(f)
					if err != nil {
						b.Fatal(err)
					}
					out.Release()
				}
				f.Release()
				peak = max(peak, pa.peak)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
		})
	}
}
