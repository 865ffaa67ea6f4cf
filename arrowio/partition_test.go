package arrowio

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTakeEveryType(t *testing.T) {
	mem := checkedMem(t)
	schema := arrow.NewSchema(allTypes(), nil)
	tbl := genTable(t, mem, schema, genSpec{rows: 200, chunks: 1, card: 50, nulls: 0.2, seed: 1})
	defer tbl.Release()
	rec := recordOf(t, tbl)
	defer rec.Release()

	cases := []struct {
		name       string
		start, end int64 // take from this slice of the batch (offset != 0 exercises sliced inputs)
		idx        []int
	}{
		{"identity", 0, 200, seq(0, 200)},
		{"reverse", 0, 200, reversed(seq(0, 200))},
		{"every third of a slice", 17, 160, stride(0, 143, 3)},
		{"repeats", 5, 50, []int{0, 0, 3, 44, 3, 3}},
		{"empty", 0, 200, nil},
		{"empty slice", 100, 100, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := rec.NewSlice(tc.start, tc.end)
			defer in.Release()
			for c, col := range in.Columns() {
				got, err := take(mem, col, tc.idx)
				require.NoError(t, err, schema.Field(c).Name)
				require.Equal(t, len(tc.idx), got.Len())
				for j, i := range tc.idx {
					assert.Equal(t, col.ValueStr(i), got.ValueStr(j), "%s row %d", schema.Field(c).Name, j)
					assert.Equal(t, col.IsNull(i), got.IsNull(j))
				}
				got.Release()
			}
		})
	}
}

func TestHashRowsIgnoresLayout(t *testing.T) {
	mem := checkedMem(t)
	build := func(dt arrow.DataType, vals ...any) arrow.Array {
		b := array.NewBuilder(mem, dt)
		defer b.Release()
		for _, v := range vals {
			if v == nil {
				b.AppendNull()
				continue
			}
			require.NoError(t, b.AppendValueFromString(fmt.Sprint(v)))
		}
		return b.NewArray()
	}
	hash := func(cols ...arrow.Array) []uint64 {
		out := make([]uint64, cols[0].Len())
		require.NoError(t, HashRows(cols, out))
		return out
	}
	release := func(as ...arrow.Array) {
		for _, a := range as {
			a.Release()
		}
	}

	t.Run("integer widths", func(t *testing.T) {
		a := build(arrow.PrimitiveTypes.Int8, -3, 0, 5, nil, 127)
		b := build(arrow.PrimitiveTypes.Int64, -3, 0, 5, nil, 127)
		c := build(arrow.PrimitiveTypes.Uint16, 0, 0, 5, nil, 127)
		defer release(a, b, c)
		assert.Equal(t, hash(a), hash(b))
		assert.Equal(t, hash(a)[1:], hash(c)[1:])
		assert.NotEqual(t, hash(a)[0], hash(c)[0])
	})
	t.Run("string kinds and dictionaries", func(t *testing.T) {
		vals := []any{"apple", "", nil, "a much longer string than twelve bytes", "apple"}
		s := build(arrow.BinaryTypes.String, vals...)
		l := build(arrow.BinaryTypes.LargeString, vals...)
		v := build(arrow.BinaryTypes.StringView, vals...)
		d := build(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}, vals...)
		defer release(s, l, v, d)
		h := hash(s)
		assert.Equal(t, h, hash(l))
		assert.Equal(t, h, hash(v))
		assert.Equal(t, h, hash(d))
		assert.Equal(t, h[0], h[4])
		assert.NotEqual(t, h[0], h[1])
	})
	t.Run("slices", func(t *testing.T) {
		s := build(arrow.BinaryTypes.String, "a", "b", nil, "c", "d")
		l := build(arrow.ListOf(arrow.PrimitiveTypes.Int32), "[1,2]", "[]", nil, "[3]", "[1,2]")
		defer release(s, l)
		full := hash(s, l)
		ss, ls := array.NewSlice(s, 2, 5), array.NewSlice(l, 2, 5)
		defer release(ss, ls)
		assert.Equal(t, full[2:], hash(ss, ls))
		assert.NotEqual(t, full[0], full[4], "rows 0 and 4 differ only in the string")
	})
	t.Run("floats by value", func(t *testing.T) {
		f64 := build(arrow.PrimitiveTypes.Float64, 0.0, 1.5, math.NaN(), nil)
		f32 := build(arrow.PrimitiveTypes.Float32, 0.0, 1.5, math.NaN(), nil)
		fb := array.NewFloat64Builder(mem)
		fb.AppendValues([]float64{math.Copysign(0, -1), 1.5, math.Float64frombits(0x7ff8dead00000000)}, nil)
		fb.AppendNull()
		neg := fb.NewArray()
		fb.Release()
		defer release(f64, f32, neg)
		assert.Equal(t, hash(f64), hash(f32))
		assert.Equal(t, hash(f64), hash(neg))
	})
	t.Run("nulls alike across types", func(t *testing.T) {
		a := build(arrow.PrimitiveTypes.Int32, nil, 1)
		b := build(arrow.BinaryTypes.String, nil, "1")
		n := array.NewNull(2)
		defer release(a, b, n)
		assert.Equal(t, hash(a)[0], hash(b)[0])
		assert.Equal(t, hash(a)[0], hash(n)[0])
	})
	t.Run("column order matters", func(t *testing.T) {
		a := build(arrow.PrimitiveTypes.Int64, 1, 2)
		b := build(arrow.PrimitiveTypes.Int64, 2, 1)
		defer release(a, b)
		ab, ba := hash(a, b), hash(b, a)
		assert.NotEqual(t, ab[0], ba[0])
		assert.Equal(t, ab[0], ba[1])
	})
	t.Run("structs and lists nest", func(t *testing.T) {
		st := arrow.StructOf(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
			arrow.Field{Name: "y", Type: arrow.BinaryTypes.String, Nullable: true})
		a := build(st, `{"x":1,"y":"a"}`, `{"x":1,"y":"b"}`, nil, `{"x":1,"y":"a"}`, `{"x":null,"y":null}`)
		l := build(arrow.ListOf(arrow.PrimitiveTypes.Int32), "[1,2]", "[2,1]", "[1,2,null]", "[]", nil)
		defer release(a, l)
		ha, hl := hash(a), hash(l)
		assert.Equal(t, ha[0], ha[3])
		assert.NotEqual(t, ha[0], ha[1])
		assert.NotEqual(t, ha[2], ha[4], "a null struct differs from a struct of nulls")
		assert.NotEqual(t, hl[0], hl[1])
		assert.NotEqual(t, hl[0], hl[2])
		assert.NotEqual(t, hl[3], hl[4], "an empty list differs from a null list")
	})
	t.Run("decimals by value", func(t *testing.T) {
		// Each row holds one value, written out at every width and scale: the strings are the oracle.
		rows := [][]any{
			{"1.5", "1.50", "1.5000", "1.50"},
			{"-1.5", "-1.50", "-1.5000", "-1.50"},
			{"0", "0.00", "-0.0000", "0"},
			{nil, nil, nil, nil},
			{"5", "5.00", "5.0000", "5"},
			{"-6", "-6.00", "-6.0000", "-6"},
			{"-0.01", "-0.01", "-0.0100", "-0.01"},
			{"1234567.8", "1234567.80", "1234567.8000", "1234567.80"},
		}
		types := []arrow.DataType{
			&arrow.Decimal32Type{Precision: 9, Scale: 1}, &arrow.Decimal64Type{Precision: 18, Scale: 2},
			&arrow.Decimal128Type{Precision: 38, Scale: 4}, &arrow.Decimal256Type{Precision: 76, Scale: 2},
		}
		rows[6][0] = "-0.0" // decimal32(9, 1) cannot hold -0.01: its own distinct value
		var hs [][]uint64
		for w, dt := range types {
			var vals []any
			for _, r := range rows {
				vals = append(vals, r[w])
			}
			a := build(dt, vals...)
			hs = append(hs, hash(a))
			a.Release()
		}
		for w := 1; w < len(types); w++ {
			for i := range rows {
				if i == 6 && w > 0 {
					assert.Equal(t, hs[1][i], hs[w][i], "%s row %d", types[w], i)
					continue
				}
				assert.Equal(t, hs[0][i], hs[w][i], "%s row %d (%v)", types[w], i, rows[i][w])
			}
		}
		for w := range types {
			for i := range rows {
				for j := range i {
					if (i == 6 && j == 2 && w == 0) || rows[i][w] == rows[j][w] && i == j {
						continue
					}
					assert.NotEqual(t, hs[w][i], hs[w][j], "%s rows %d and %d", types[w], i, j)
				}
			}
		}
		// A decimal of scale 0 hashes as the integer it holds.
		d := build(&arrow.Decimal128Type{Precision: 20, Scale: 0}, "5", "-6", "0", nil, "120")
		n := build(arrow.PrimitiveTypes.Int16, 5, -6, 0, nil, 120)
		defer release(d, n)
		assert.Equal(t, hash(n), hash(d))
		// Values wider than 64 bits: equal across 128 and 256 bits and scales, -1 unlike 0, x unlike -x-1.
		wide128 := build(&arrow.Decimal128Type{Precision: 38, Scale: 2}, "123456789012345678901234.50", "-123456789012345678901234.50", "-0.01", "0", "0.05", "-0.06")
		wide256 := build(&arrow.Decimal256Type{Precision: 76, Scale: 5}, "123456789012345678901234.5", "-123456789012345678901234.50000", "-0.01", "0", "0.05", "-0.06")
		defer release(wide128, wide256)
		h128, h256 := hash(wide128), hash(wide256)
		assert.Equal(t, h128, h256)
		assert.NotEqual(t, h128[0], h128[1])
		assert.NotEqual(t, h128[2], h128[3], "-0.01 and 0 (unscaled -1 and 0) collided")
		assert.NotEqual(t, h128[4], h128[5], "0.05 and -0.06 (unscaled 5 and -6) collided")
	})
	t.Run("intervals do not collide", func(t *testing.T) {
		a := build(arrow.FixedWidthTypes.MonthDayNanoInterval, `{"months":0,"days":0,"nanoseconds":5}`, `{"months":5,"days":0,"nanoseconds":0}`,
			`{"months":-1,"days":-1,"nanoseconds":-1}`, `{"months":0,"days":0,"nanoseconds":0}`)
		defer release(a)
		h := hash(a)
		assert.NotEqual(t, h[0], h[1])
		assert.NotEqual(t, h[2], h[3])
	})
}

// TestHashRowsFixed pins a few hashes: they must never change between versions or processes, since ranks
// running different builds would otherwise disagree on where rows live.
func TestHashRowsFixed(t *testing.T) {
	ints := array.NewInt64Builder(memory.DefaultAllocator)
	ints.AppendValues([]int64{0, 1, -1}, nil)
	ints.AppendNull()
	a := ints.NewArray()
	ints.Release()
	defer a.Release()
	strs := array.NewStringBuilder(memory.DefaultAllocator)
	strs.AppendValues([]string{"", "fnmesh", "x", "y"}, nil)
	s := strs.NewArray()
	strs.Release()
	defer s.Release()

	out := make([]uint64, 4)
	require.NoError(t, HashRows([]arrow.Array{a}, out))
	assert.Equal(t, []uint64{mix(rowSeed), mix(rowSeed ^ 1), mix(rowSeed ^ math.MaxUint64), mix(rowSeed ^ nullHash)}, out)
	require.NoError(t, HashRows([]arrow.Array{a, s}, out))
	assert.Equal(t, uint64(0x691f06eb23e49988), out[1], "hash of (1, \"fnmesh\"): %#x", out[1])
	assert.Equal(t, 0, PartitionOf(0, 7))
	assert.Equal(t, 6, PartitionOf(math.MaxUint64, 7))
	assert.Equal(t, 3, PartitionOf(1<<63, 7))
}

func TestHashRowsErrors(t *testing.T) {
	mem := checkedMem(t)
	ib := array.NewInt32Builder(mem)
	ib.AppendValues([]int32{1, 2, 3}, nil)
	a := ib.NewArray()
	ib.Release()
	defer a.Release()

	err := HashRows([]arrow.Array{a}, make([]uint64, 2))
	require.ErrorContains(t, err, "key column 0 has 3 rows, want 2")

	ub := array.NewSparseUnionBuilder(mem, arrow.SparseUnionOf([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int32}}, []arrow.UnionTypeCode{0}))
	ub.Append(0)
	ub.Child(0).(*array.Int32Builder).Append(1)
	u := ub.NewArray()
	ub.Release()
	defer u.Release()
	one := array.NewSlice(a, 0, 1)
	defer one.Release()
	err = HashRows([]arrow.Array{one, u}, make([]uint64, 1))
	require.ErrorContains(t, err, "key column 1: cannot hash values of type sparse_union")
}

func TestHashPartitionOracle(t *testing.T) {
	fields := allTypes()
	schema := arrow.NewSchema(fields, nil)
	type tc struct {
		name string
		keys []string
		p    int
		spec genSpec
	}
	var cases []tc
	var unhashable []string
	for i, f := range fields {
		switch f.Type.ID() {
		case arrow.SPARSE_UNION, arrow.DENSE_UNION, arrow.RUN_END_ENCODED, arrow.LIST_VIEW, arrow.LARGE_LIST_VIEW:
			unhashable = append(unhashable, f.Name)
			continue
		}
		cases = append(cases, tc{"key " + f.Name, []string{f.Name}, 2 + i%6, genSpec{rows: 120, chunks: 3, card: 9, nulls: 0.15, seed: uint64(i)}})
	}
	require.Len(t, unhashable, 5)
	t.Run("unhashable keys", func(t *testing.T) {
		mem := checkedMem(t)
		tbl := genTable(t, mem, schema, genSpec{rows: 10, chunks: 1, card: 9, nulls: 0.1, seed: 1})
		defer tbl.Release()
		for _, name := range unhashable {
			_, err := HashPartition(context.Background(), tbl, []string{name}, 3, WithAllocator(mem))
			require.ErrorContains(t, err, "cannot hash values of type", name)
		}
	})
	cases = append(cases,
		tc{"three keys", []string{fields[13].Name, fields[5].Name, fields[32].Name}, 5, genSpec{rows: 400, chunks: 4, card: 4, nulls: 0.1, seed: 99}},
		tc{"one part", []string{fields[5].Name}, 1, genSpec{rows: 50, chunks: 2, card: 5, nulls: 0.1, seed: 3}},
		tc{"more parts than rows", []string{fields[5].Name}, 40, genSpec{rows: 7, chunks: 2, card: 100, nulls: 0.1, seed: 4}},
		tc{"empty table", []string{fields[13].Name}, 4, genSpec{rows: 0, chunks: 1, card: 1, seed: 5}},
		tc{"every key equal (skew)", []string{fields[4].Name}, 6, genSpec{rows: 90, chunks: 3, card: 1, seed: 6}},
		tc{"all keys null", []string{fields[4].Name, fields[13].Name}, 3, genSpec{rows: 30, chunks: 2, card: 5, nulls: 1, seed: 7}},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkedMem(t)
			tbl := genTable(t, mem, schema, tc.spec)
			defer tbl.Release()
			keyIdx, err := KeyIndices(schema, tc.keys)
			require.NoError(t, err)

			parts, err := HashPartition(context.Background(), tbl, tc.keys, tc.p, WithAllocator(mem))
			require.NoError(t, err)
			defer releaseTables(parts)
			require.Len(t, parts, tc.p)

			// Oracle: hash every row on its own (a one-row slice of each key column) and list, per part,
			// the rows that belong there in input order.
			want := make([][]string, tc.p)
			rows := rowStrings(tbl)
			i := 0
			tr := array.NewTableReader(tbl, -1)
			defer tr.Release()
			for tr.Next() {
				rec := tr.RecordBatch()
				for r := range rec.NumRows() {
					cols := make([]arrow.Array, len(keyIdx))
					for j, c := range keyIdx {
						cols[j] = array.NewSlice(rec.Column(c), r, r+1)
					}
					h := make([]uint64, 1)
					require.NoError(t, HashRows(cols, h))
					for _, c := range cols {
						c.Release()
					}
					k := PartitionOf(h[0], tc.p)
					want[k] = append(want[k], rows[i])
					i++
				}
			}
			require.Equal(t, len(rows), i)

			keyPart := map[string]int{}
			total := 0
			for k, part := range parts {
				assert.True(t, part.Schema().Equal(schema))
				got := rowStrings(part)
				assert.Equal(t, want[k], got, "part %d", k)
				total += len(got)
				for _, key := range rowStrings(part, keyIdx...) {
					if prev, ok := keyPart[key]; ok {
						assert.Equal(t, prev, k, "key %s in two parts", key)
					}
					keyPart[key] = k
				}
			}
			assert.Equal(t, tc.spec.rows, total)
		})
	}
}

func TestHashPartitionErrors(t *testing.T) {
	mem := checkedMem(t)
	schema := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64}, {Name: "a", Type: arrow.BinaryTypes.String}, {Name: "b", Type: arrow.PrimitiveTypes.Int64}}, nil)
	tbl := genTable(t, mem, schema, genSpec{rows: 10, card: 3})
	defer tbl.Release()
	for _, tc := range []struct {
		keys []string
		p    int
		want string
	}{
		{[]string{"b"}, 0, "0 partitions, want 1.."},
		{[]string{"b"}, 1<<20 + 1, "1048577 partitions, want 1..1048576"},
		{[]string{"b"}, math.MaxInt32, "2147483647 partitions, want 1..1048576"}, // used to allocate ~100 GiB
		{nil, 2, "no key columns"},
		{[]string{"zz"}, 2, `no column "zz"`},
		{[]string{"a"}, 2, `column name "a" is ambiguous`},
	} {
		_, err := HashPartition(context.Background(), tbl, tc.keys, tc.p, WithAllocator(mem))
		require.ErrorContains(t, err, tc.want)
	}
	_, err := HashPartition(context.Background(), nil, []string{"b"}, 2)
	require.ErrorContains(t, err, "nil table")

	// A key of a type HashRows cannot hash: the error names the column and its type.
	for _, dt := range []arrow.DataType{
		arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String),
		arrow.ListViewOf(arrow.PrimitiveTypes.Int32),
		arrow.DenseUnionOf([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, []arrow.UnionTypeCode{2, 4}),
	} {
		schema := arrow.NewSchema([]arrow.Field{{Name: "b", Type: arrow.PrimitiveTypes.Int64}, {Name: "odd", Type: dt, Nullable: true}}, nil)
		tbl := genTable(t, mem, schema, genSpec{rows: 10, card: 3})
		_, err := HashPartition(context.Background(), tbl, []string{"b", "odd"}, 2, WithAllocator(mem))
		tbl.Release()
		require.ErrorContains(t, err, fmt.Sprintf(`key column "odd" (%s): cannot hash`, dt))
	}
}

func seq(lo, hi int) []int {
	s := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		s = append(s, i)
	}
	return s
}

func stride(lo, hi, step int) []int {
	var s []int
	for i := lo; i < hi; i += step {
		s = append(s, i)
	}
	return s
}

func reversed(s []int) []int {
	r := make([]int, len(s))
	for i, v := range s {
		r[len(s)-1-i] = v
	}
	return r
}

// recordOf concatenates a one-chunk table's columns into a record batch.
func recordOf(t *testing.T, tbl arrow.Table) arrow.RecordBatch {
	tr := array.NewTableReader(tbl, -1)
	defer tr.Release()
	require.True(t, tr.Next())
	rec := tr.RecordBatch()
	require.Equal(t, tbl.NumRows(), rec.NumRows(), "table must have one chunk")
	rec.Retain()
	return rec
}

// TestScatterEveryType: scatter (the one-pass partition kernel) against element-wise expectations, on
// sliced inputs, for every type it handles; nested types must report that they are not handled.
func TestScatterEveryType(t *testing.T) {
	mem := checkedMem(t)
	schema := arrow.NewSchema(allTypes(), nil)
	tbl := genTable(t, mem, schema, genSpec{rows: 300, chunks: 1, card: 50, nulls: 0.2, seed: 2})
	defer tbl.Release()
	rec := recordOf(t, tbl)
	defer rec.Release()
	in := rec.NewSlice(13, 290)
	defer in.Release()
	const p = 5
	n := int(in.NumRows())
	part := make([]uint32, n)
	counts := make([]int, p)
	for i := range part {
		k := uint32((i*i + 3*i) % (p - 1)) // part 4 stays empty
		part[i] = k
		counts[k]++
	}
	handled := 0
	for c, col := range in.Columns() {
		out, ok, err := scatter(mem, col, part, counts)
		require.NoError(t, err)
		if !ok {
			require.Contains(t, []arrow.Type{arrow.NULL, arrow.LIST, arrow.LARGE_LIST, arrow.FIXED_SIZE_LIST, arrow.MAP, arrow.STRUCT, arrow.STRING_VIEW, arrow.BINARY_VIEW,
				arrow.SPARSE_UNION, arrow.DENSE_UNION, arrow.RUN_END_ENCODED, arrow.LIST_VIEW, arrow.LARGE_LIST_VIEW, arrow.EXTENSION}, col.DataType().ID(), schema.Field(c).Name)
			continue
		}
		handled++
		require.Len(t, out, p)
		assert.Nil(t, out[p-1])
		cur := make([]int, p)
		for i, k := range part {
			got := out[k]
			assert.Equal(t, col.IsNull(i), got.IsNull(cur[k]), "%s row %d", schema.Field(c).Name, i)
			assert.Equal(t, col.ValueStr(i), got.ValueStr(cur[k]), "%s row %d", schema.Field(c).Name, i)
			cur[k]++
		}
		for k, a := range out {
			if a != nil {
				assert.Equal(t, counts[k], a.Len())
				a.Release()
			}
		}
	}
	assert.GreaterOrEqual(t, handled, 30)
}
