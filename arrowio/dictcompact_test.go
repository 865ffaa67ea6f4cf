package arrowio

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sameRow reports whether row i of a and row j of b hold the same value. Rows of dictionary arrays
// are compared by the entries their indices select (HashPartition gives parts their own compacted
// dictionaries), everything else as array.SliceEqual compares it.
func sameRow(a arrow.Array, i int, b arrow.Array, j int) bool {
	da, ok := a.(*array.Dictionary)
	db, ok2 := b.(*array.Dictionary)
	if !ok || !ok2 {
		return array.SliceEqual(a, int64(i), int64(i+1), b, int64(j), int64(j+1))
	}
	if da.IsNull(i) || db.IsNull(j) {
		return da.IsNull(i) && db.IsNull(j)
	}
	x, y := int64(da.GetValueIndex(i)), int64(db.GetValueIndex(j))
	return array.SliceEqual(da.Dictionary(), x, x+1, db.Dictionary(), y, y+1)
}

var dictIndexTypes = []arrow.DataType{
	arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64,
	arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Uint64,
}

// indexArray builds an array of index type dt from idx; a negative index is a null slot (holding
// the index -idx-1, not 0, so that a slot the remap leaves alone would show).
func indexArray(t testing.TB, mem memory.Allocator, dt arrow.DataType, idx []int) arrow.Array {
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	for _, v := range idx {
		x := v
		if v < 0 {
			x = -v - 1
		}
		switch b := b.(type) {
		case *array.Int8Builder:
			b.Append(int8(x))
		case *array.Int16Builder:
			b.Append(int16(x))
		case *array.Int32Builder:
			b.Append(int32(x))
		case *array.Int64Builder:
			b.Append(int64(x))
		case *array.Uint8Builder:
			b.Append(uint8(x))
		case *array.Uint16Builder:
			b.Append(uint16(x))
		case *array.Uint32Builder:
			b.Append(uint32(x))
		case *array.Uint64Builder:
			b.Append(uint64(x))
		default:
			t.Fatalf("index type %s", dt)
		}
	}
	a := b.NewArray()
	if !slices.ContainsFunc(idx, func(v int) bool { return v < 0 }) {
		return a
	}
	defer a.Release()
	valid := memory.NewResizableBuffer(mem)
	valid.Resize((len(idx) + 7) / 8)
	bits := valid.Bytes()
	clear(bits)
	nulls := 0
	for i, v := range idx {
		if v >= 0 {
			bits[i/8] |= 1 << (i % 8)
		} else {
			nulls++
		}
	}
	d := array.NewData(dt, len(idx), []*memory.Buffer{valid, a.Data().Buffers()[1]}, nil, nulls, 0)
	valid.Release()
	defer d.Release()
	return array.MakeFromData(d)
}

// dictPartTable builds a table of a key column "k" (0, 1, 2, ...: the row's number) and a column "d"
// of dictionary<it, values> with indices idx (negative: null), in chunks of chunk rows that share
// dict; with lo > 0 every chunk is a slice starting lo rows into a longer array.
func dictPartTable(t testing.TB, mem memory.Allocator, it arrow.DataType, dict arrow.Array, idx []int, chunk, lo int) arrow.Table {
	dt := &arrow.DictionaryType{IndexType: it, ValueType: dict.DataType()}
	schema := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64}, {Name: "d", Type: dt, Nullable: true}}, nil)
	var ks, ds []arrow.Array
	for start := 0; start < len(idx); start += chunk {
		end := min(start+chunk, len(idx))
		kb := array.NewInt64Builder(mem)
		pad := slices.Repeat([]int{0}, lo)
		for i := range pad {
			kb.Append(int64(-1 - i))
		}
		for i := start; i < end; i++ {
			kb.Append(int64(i))
		}
		k := kb.NewArray()
		kb.Release()
		ia := indexArray(t, mem, it, append(pad, idx[start:end]...))
		d := array.NewDictionaryArray(dt, ia, dict)
		ia.Release()
		ks = append(ks, array.NewSlice(k, int64(lo), int64(k.Len())))
		ds = append(ds, array.NewSlice(d, int64(lo), int64(d.Len())))
		k.Release()
		d.Release()
	}
	rec := func(c []arrow.Array, f int) arrow.Column {
		ch := arrow.NewChunked(schema.Field(f).Type, c)
		defer ch.Release()
		releaseArrays(c)
		return *arrow.NewColumn(schema.Field(f), ch)
	}
	cols := []arrow.Column{rec(ks, 0), rec(ds, 1)}
	defer cols[0].Release()
	defer cols[1].Release()
	return array.NewTable(schema, cols, int64(len(idx)))
}

// decoded returns the value of every row of the dictionary column c of tbl, through its dictionary
// ("∅" for a null slot).
func decoded(tbl arrow.Table, c int) []string {
	var out []string
	for _, ch := range tbl.Column(c).Data().Chunks() {
		d := ch.(*array.Dictionary)
		for i := range d.Len() {
			if d.IsNull(i) {
				out = append(out, "∅")
			} else {
				out = append(out, d.Dictionary().ValueStr(d.GetValueIndex(i)))
			}
		}
	}
	return out
}

func int64Values(tbl arrow.Table, c int) []int64 {
	var out []int64
	for _, ch := range tbl.Column(c).Data().Chunks() {
		out = append(out, ch.(*array.Int64).Int64Values()...)
	}
	return out
}

func TestHashPartitionCompactsDictionaries(t *testing.T) {
	strs := func(mem memory.Allocator, n int) arrow.Array {
		b := array.NewStringBuilder(mem)
		defer b.Release()
		for i := range n {
			if i == 3 {
				b.AppendNull() // a null entry in the dictionary itself
			} else {
				b.Append(fmt.Sprintf("id-%05d", i))
			}
		}
		return b.NewArray()
	}
	lists := func(mem memory.Allocator, n int) arrow.Array { // list<int64> values: a nested take
		b := array.NewListBuilder(mem, arrow.PrimitiveTypes.Int64)
		defer b.Release()
		vb := b.ValueBuilder().(*array.Int64Builder)
		for i := range n {
			b.Append(true)
			for j := range i % 3 {
				vb.Append(int64(i*10 + j))
			}
		}
		return b.NewArray()
	}
	floats := func(mem memory.Allocator, n int) arrow.Array {
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		for i := range n {
			b.Append(float64(i) + 0.5)
		}
		return b.NewArray()
	}
	perm := func(n, entries int, nulls float64, seed uint64) []int {
		r := rand.New(rand.NewPCG(seed, 1))
		idx := make([]int, n)
		for i := range idx {
			idx[i] = r.IntN(entries)
			if r.Float64() < nulls {
				idx[i] = -1 - r.IntN(entries)
			}
		}
		return idx
	}
	cases := []struct {
		name    string
		values  func(memory.Allocator, int) arrow.Array
		entries int
		idx     []int
		chunk   int
		lo      int
		p       int
		compact bool
	}{
		{name: "high-card", values: strs, entries: 120, idx: perm(120, 120, 0, 1), chunk: 1000, p: 8, compact: true},
		{name: "high-card-nulls", values: strs, entries: 120, idx: perm(120, 120, 0.3, 2), chunk: 1000, p: 8, compact: true},
		{name: "high-card-chunks-sliced", values: strs, entries: 120, idx: perm(110, 120, 0.1, 3), chunk: 25, lo: 7, p: 5, compact: true},
		{name: "list-values", values: lists, entries: 100, idx: perm(90, 100, 0.1, 4), chunk: 40, lo: 3, p: 4, compact: true},
		{name: "float-values", values: floats, entries: 100, idx: perm(90, 100, 0.1, 5), chunk: 30, p: 4, compact: true},
		{name: "all-null", values: strs, entries: 100, idx: slices.Repeat([]int{-5}, 40), chunk: 15, p: 3, compact: true},
		{name: "one-row-chunks-sliced", values: strs, entries: 100, idx: perm(40, 100, 0.3, 9), chunk: 1, lo: 3, p: 3, compact: true},
		{name: "empty-parts", values: strs, entries: 100, idx: perm(5, 100, 0.2, 6), chunk: 2, lo: 1, p: 16, compact: true},
		// 8+ rows an entry: the dictionary is left shared though a part uses 2 of its 10 entries.
		{name: "skewed-many-rows", values: strs, entries: 10, idx: perm(400, 2, 0.1, 10), chunk: 100, p: 2},
		{name: "low-card", values: strs, entries: 10, idx: perm(120, 10, 0.1, 7), chunk: 50, p: 4},
		{name: "low-card-few-rows", values: strs, entries: 40, idx: perm(100, 40, 0, 8), chunk: 100, p: 2},
	}
	for _, it := range dictIndexTypes {
		for _, c := range cases {
			t.Run(it.String()+"/"+c.name, func(t *testing.T) {
				mem := checkedMem(t)
				dict := c.values(mem, c.entries)
				defer dict.Release()
				tbl := dictPartTable(t, mem, it, dict, c.idx, c.chunk, c.lo)
				defer tbl.Release()
				want := decoded(tbl, 1)
				parts, err := HashPartition(context.Background(), tbl, []string{"k"}, c.p, WithAllocator(mem))
				require.NoError(t, err)
				defer releaseTables(parts)
				seen := 0
				for k, part := range parts {
					keys, vals := int64Values(part, 0), decoded(part, 1)
					require.Len(t, vals, len(keys))
					seen += len(keys)
					h := make([]uint64, 1)
					for j, key := range keys {
						if j > 0 {
							require.Greater(t, key, keys[j-1], "part %d keeps the input's order", k)
						}
						ka := array.NewInt64Builder(mem)
						ka.Append(key)
						a := ka.NewArray()
						require.NoError(t, HashRows([]arrow.Array{a}, h))
						a.Release()
						ka.Release()
						require.Equal(t, k, PartitionOf(h[0], c.p), "row %d's part", key)
						require.Equal(t, want[key], vals[j], "part %d: row %d's value", k, key)
					}
					var shared arrow.ArrayData
					distinct := map[int]bool{}
					for _, ch := range part.Column(1).Data().Chunks() {
						require.NoError(t, array.ValidateFull(ch))
						d := ch.(*array.Dictionary)
						for i := range d.Len() {
							if d.IsValid(i) {
								distinct[d.GetValueIndex(i)] = true
							} else if c.compact {
								require.Zero(t, d.GetValueIndex(i), "a null slot's index")
							}
						}
						if !c.compact {
							assert.Same(t, dict.Data(), d.Dictionary().Data(), "part %d keeps the shared dictionary", k)
							continue
						}
						if shared == nil {
							shared = d.Dictionary().Data()
						}
						assert.Same(t, shared, d.Dictionary().Data(), "part %d's chunks share one dictionary", k)
					}
					if c.compact && part.NumRows() > 0 {
						assert.Equal(t, max(1, len(distinct)), shared.Len(), "part %d's dictionary: its used entries", k)
					}
				}
				require.Equal(t, len(c.idx), seen)
			})
		}
	}
}

// TestCompactDictionaryRejectsBadIndex: an index outside its dictionary in a payload column is an
// error that says where, not a crash.
func TestCompactDictionaryRejectsBadIndex(t *testing.T) {
	mem := checkedMem(t)
	b := array.NewStringBuilder(mem)
	for i := range 100 {
		b.Append(fmt.Sprint(i))
	}
	dict := b.NewArray()
	b.Release()
	defer dict.Release()
	idx := make([]int, 40)
	for i := range idx {
		idx[i] = i
	}
	idx[17] = 100
	tbl := dictPartTable(t, mem, arrow.PrimitiveTypes.Int32, dict, idx, 40, 0)
	defer tbl.Release()
	parts, err := HashPartition(context.Background(), tbl, []string{"k"}, 4, WithAllocator(mem))
	require.ErrorContains(t, err, `arrowio: hash partition: column "d": part `)
	require.ErrorContains(t, err, "index 100 at row")
	require.ErrorContains(t, err, "outside the dictionary of 100 values")
	require.Nil(t, parts)
}

// highCardTable is a table of n rows: a key "k" and a column "d" of n distinct strings of 11 bytes,
// dictionary-encoded (row i is entry i).
func highCardTable(t testing.TB, mem memory.Allocator, n int) arrow.Table {
	b := array.NewStringBuilder(mem)
	for i := range n {
		b.Append(fmt.Sprintf("id-%08d", i))
	}
	dict := b.NewArray()
	b.Release()
	defer dict.Release()
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return dictPartTable(t, mem, arrow.PrimitiveTypes.Int32, dict, idx, n, 0)
}

// TestPartitionDictionaryBytesOnWire: the 8 parts of 100k rows of 100k distinct strings, encoded as
// they are sent, carry about one dictionary in all, not 8.
func TestPartitionDictionaryBytesOnWire(t *testing.T) {
	mem := checkedMem(t)
	const rows, p = 100_000, 8
	tbl := highCardTable(t, mem, rows)
	defer tbl.Release()
	sent := func(tbl arrow.Table) int64 {
		n := int64(0)
		for _, c := range encodeStream(t, tbl, WithAllocator(mem)) {
			n += int64(len(c))
		}
		return n
	}
	// Before: the parts as scatter makes them, every one with the whole dictionary.
	rec := recordOf(t, tbl)
	defer rec.Release()
	h := make([]uint64, rows)
	require.NoError(t, HashRows([]arrow.Array{rec.Column(0)}, h))
	part, counts := make([]uint32, rows), make([]int, p)
	for i := range h {
		part[i] = uint32(PartitionOf(h[i], p))
		counts[part[i]]++
	}
	chunks := make([][][]arrow.Array, p)
	for k := range chunks {
		chunks[k] = make([][]arrow.Array, 2)
	}
	for c, col := range rec.Columns() {
		arrs, ok, err := scatter(mem, col, part, counts)
		require.NoError(t, err)
		require.True(t, ok)
		for k, a := range arrs {
			chunks[k][c] = []arrow.Array{a}
		}
	}
	before := int64(0)
	for k := range chunks {
		pt := newTable(tbl.Schema(), chunks[k])
		before += sent(pt)
		pt.Release()
		releaseArrays(chunks[k][0])
		releaseArrays(chunks[k][1])
	}
	parts, err := HashPartition(context.Background(), tbl, []string{"k"}, p, WithAllocator(mem))
	require.NoError(t, err)
	defer releaseTables(parts)
	after := int64(0)
	for _, pt := range parts {
		after += sent(pt)
	}
	whole := sent(tbl)
	t.Logf("%d rows, %d distinct strings, %d parts: the table alone %d bytes; parts sharing the dictionary %d bytes; compacted %d bytes", rows, rows, p, whole, before, after)
	// Rows: 8 (key) + 4 (index) + 4 (offset) + 11 (characters) bytes each.
	require.Less(t, after, whole*11/10, "the compacted parts cost about the table")
	require.Greater(t, before, 4*after, "sharing the dictionary costs p copies of it")
}

// TestShuffleCompactedDictionaries: a high-cardinality dictionary column comes out of a real
// shuffle with every row's value right, from chunks whose dictionaries differ by rank and part.
func TestShuffleCompactedDictionaries(t *testing.T) {
	const p, rows = 3, 3000
	comms := newWorld(t, tcpLinks, p)
	input := func(mem memory.Allocator, r int) arrow.Table {
		b := array.NewStringBuilder(mem)
		for i := range rows {
			b.Append(fmt.Sprintf("r%d-%d", r, i))
		}
		dict := b.NewArray()
		b.Release()
		defer dict.Release()
		idx := perm2(rows, uint64(r))
		return dictPartTable(t, mem, arrow.PrimitiveTypes.Uint16, dict, idx, 700, 5)
	}
	want := make([][]string, p)
	for r := range p {
		in := input(memory.DefaultAllocator, r)
		keys, vals := int64Values(in, 0), decoded(in, 1)
		h := make([]uint64, 1)
		for i, k := range keys {
			b := array.NewInt64Builder(memory.DefaultAllocator)
			b.Append(k)
			a := b.NewArray()
			require.NoError(t, HashRows([]arrow.Array{a}, h))
			a.Release()
			b.Release()
			to := PartitionOf(h[0], p)
			want[to] = append(want[to], fmt.Sprintf("%d|%s", k, vals[i]))
		}
		in.Release()
	}
	errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		mine := input(mem, c.Rank())
		defer mine.Release()
		got, err := Shuffle(ctx, c, mine, []string{"k"}, WithAllocator(mem))
		if err != nil {
			return err
		}
		defer got.Release()
		keys, vals := int64Values(got, 0), decoded(got, 1)
		var g []string
		for i, k := range keys {
			g = append(g, fmt.Sprintf("%d|%s", k, vals[i]))
		}
		if !slices.Equal(sorted(g), sorted(want[c.Rank()])) {
			return fmt.Errorf("rank %d: %d rows, want %d, or other values", c.Rank(), len(g), len(want[c.Rank()]))
		}
		// Each sender's part came with the entries its rows use: a few dictionaries, whose entries
		// are no more than the rows (not p*rows).
		dicts := map[arrow.ArrayData]bool{}
		entries := 0
		for _, ch := range got.Column(1).Data().Chunks() {
			if d := ch.(*array.Dictionary).Dictionary().Data(); !dicts[d] {
				dicts[d] = true
				entries += d.Len()
			}
		}
		if entries > len(keys) {
			return fmt.Errorf("rank %d received dictionaries of %d entries in all for %d rows", c.Rank(), entries, len(keys))
		}
		return nil
	})
	requireNoErrors(t, errs)
}

// perm2 returns a permutation of 0..n-1 in which every tenth slot is null.
func perm2(n int, seed uint64) []int {
	idx := rand.New(rand.NewPCG(seed, 2)).Perm(n)
	for i := range idx {
		if i%10 == 9 {
			idx[i] = -1 - idx[i]
		}
	}
	return idx
}

func BenchmarkHashPartitionDictionary(b *testing.B) {
	for _, card := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", card), func(b *testing.B) {
			const rows = 1_000_000
			bs := array.NewStringBuilder(memory.DefaultAllocator)
			for i := range card {
				bs.Append(fmt.Sprintf("id-%08d", i))
			}
			dict := bs.NewArray()
			bs.Release()
			defer dict.Release()
			r := rand.New(rand.NewPCG(1, 1))
			idx := make([]int, rows)
			for i := range idx {
				idx[i] = r.IntN(card)
			}
			tbl := dictPartTable(b, memory.DefaultAllocator, arrow.PrimitiveTypes.Int32, dict, idx, 64<<10, 0)
			defer tbl.Release()
			for _, key := range []string{"k", "d"} {
				b.Run("key="+key, func(b *testing.B) {
					for b.Loop() {
						parts, err := HashPartition(context.Background(), tbl, []string{key}, 8)
						if err != nil {
							b.Fatal(err)
						}
						releaseTables(parts)
					}
				})
			}
		})
	}
}
