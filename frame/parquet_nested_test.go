package frame

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/arrowio"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exactCell is row i of a as a Go value that tells apart every two values
// of one type: dictionaries decoded, structs, lists and maps as slices of
// their values, temporal values as their integers, nil for null.
func exactCell(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Dictionary:
		return exactCell(a.Dictionary(), a.GetValueIndex(i))
	case *array.Struct:
		out := make([]any, a.NumField())
		for f := range out {
			out[f] = exactCell(a.Field(f), i)
		}
		return out
	case array.ListLike:
		lo, hi := a.ValueOffsets(i)
		out := []any{}
		for j := lo; j < hi; j++ {
			out = append(out, exactCell(a.ListValues(), int(j)))
		}
		return out
	case *array.Timestamp:
		return int64(a.Value(i))
	case *array.Date32:
		return int64(a.Value(i))
	case *array.Date64:
		return int64(a.Value(i))
	case *array.Time32:
		return int64(a.Value(i))
	case *array.Time64:
		return int64(a.Value(i))
	}
	return strings.Clone(a.ValueStr(i))
}

// exactRows formats every row of t with exactCell, in table order.
func exactRows(t arrow.Table) []string {
	out := make([]string, t.NumRows())
	for c := 0; c < int(t.NumCols()); c++ {
		r := 0
		for _, ch := range t.Column(c).Data().Chunks() {
			for i := 0; i < ch.Len(); i++ {
				out[r] += fmt.Sprintf("%#v|", exactCell(ch, i))
				r++
			}
		}
	}
	return out
}

// chunkedSliced is a table of one column c of type dt in two chunks: the
// values js without their first row (a slice, offset 1) and all of them.
func chunkedSliced(t *testing.T, dt arrow.DataType, js string) arrow.Table {
	t.Helper()
	mem := memory.NewGoAllocator()
	// arrow-go builds no dictionary of large strings: build one of strings
	// and give it large strings.
	b := fromJSON(t, mem, stringDicts(dt), js)
	defer b.Release()
	d := largeDicts(t, b.Data(), dt)
	defer d.Release()
	a := array.MakeFromData(d)
	defer a.Release()
	s := array.NewSlice(a, 1, int64(a.Len()))
	defer s.Release()
	ch := arrow.NewChunked(dt, []arrow.Array{s, a})
	defer ch.Release()
	sc := arrow.NewSchema([]arrow.Field{{Name: "c", Type: dt, Nullable: true}}, nil)
	col := arrow.NewColumn(sc.Field(0), ch)
	defer col.Release()
	return array.NewTable(sc, []arrow.Column{*col}, int64(ch.Len()))
}

// stringDicts is dt with its dictionaries of large strings or binaries (at
// any depth) dictionaries of strings or binaries.
func stringDicts(dt arrow.DataType) arrow.DataType {
	switch dt := dt.(type) {
	case *arrow.DictionaryType:
		switch dt.ValueType.ID() {
		case arrow.LARGE_STRING:
			return &arrow.DictionaryType{IndexType: dt.IndexType, ValueType: arrow.BinaryTypes.String}
		case arrow.LARGE_BINARY:
			return &arrow.DictionaryType{IndexType: dt.IndexType, ValueType: arrow.BinaryTypes.Binary}
		}
	case *arrow.StructType:
		fs := dt.Fields()
		for i := range fs {
			fs[i].Type = stringDicts(fs[i].Type)
		}
		return arrow.StructOf(fs...)
	case *arrow.ListType:
		return arrow.ListOfField(arrow.Field{Name: dt.ElemField().Name, Type: stringDicts(dt.Elem()), Nullable: dt.ElemField().Nullable})
	case *arrow.FixedSizeListType:
		return arrow.FixedSizeListOfField(dt.Len(), arrow.Field{Name: dt.ElemField().Name, Type: stringDicts(dt.Elem()), Nullable: dt.ElemField().Nullable})
	case *arrow.MapType:
		return arrow.MapOf(stringDicts(dt.KeyType()), stringDicts(dt.ItemType()))
	}
	return dt
}

// largeDicts is d (of type stringDicts(dt)) as data of type dt: the same
// buffers, its dictionaries of strings (binaries) made ones of large ones.
func largeDicts(t *testing.T, d arrow.ArrayData, dt arrow.DataType) arrow.ArrayData {
	if dict, ok := dt.(*arrow.DictionaryType); ok {
		values := d.Dictionary()
		if id := dict.ValueType.ID(); id == arrow.LARGE_STRING || id == arrow.LARGE_BINARY {
			s := array.NewBinaryData(values)
			defer s.Release()
			b := array.NewBuilder(memory.NewGoAllocator(), dict.ValueType)
			defer b.Release()
			for i := 0; i < s.Len(); i++ {
				switch b := b.(type) {
				case *array.LargeStringBuilder:
					if s.IsNull(i) {
						b.AppendNull()
					} else {
						b.Append(string(s.Value(i)))
					}
				case *array.BinaryBuilder:
					if s.IsNull(i) {
						b.AppendNull()
					} else {
						b.Append(s.Value(i))
					}
				}
			}
			large := b.NewArray()
			defer large.Release()
			values = large.Data()
		}
		return array.NewDataWithDictionary(dt, d.Len(), d.Buffers(), d.NullN(), d.Offset(), values.(*array.Data))
	}
	var kids []arrow.ArrayData
	if n, ok := dt.(arrow.NestedType); ok {
		for i, c := range d.Children() {
			k := largeDicts(t, c, n.Fields()[i].Type)
			defer k.Release()
			kids = append(kids, k)
		}
	}
	return array.NewData(dt, d.Len(), d.Buffers(), kids, d.NullN(), d.Offset())
}

// parquetRoundTrip writes tbl with WriteParquet on each of p ranks (each its
// own file) and reads the files back with ReadParquet: the rows gathered at
// rank 0 (exactRows) and their schema.
func parquetRoundTrip(t *testing.T, p int, tbl arrow.Table) ([]string, *arrow.Schema) {
	t.Helper()
	dir := t.TempDir()
	var got []string
	var gotSchema *arrow.Schema
	runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		in, err := New(c, tbl, WithAllocator(mem))
		if err != nil {
			return err
		}
		defer in.Release()
		if _, err := in.WriteParquet(ctx, filepath.Join(dir, "part-{rank}.parquet")); err != nil {
			return err
		}
		out, err := ReadParquet(ctx, c, []string{filepath.Join(dir, "part-{rank}.parquet")}, WithAllocator(mem))
		if err != nil {
			return err
		}
		defer out.Release()
		g, err := out.Gather(ctx, 0)
		if err != nil {
			return err
		}
		if g != nil {
			got, gotSchema = exactRows(g), g.Schema()
			g.Release()
		}
		return nil
	})
	return got, gotSchema
}

// Parquet is read back with the schema it was written with (docs/frame.md)
// at any depth: a struct, list, fixed-size list or map holding a type that
// pqarrow reads as another (an int8- or int16-indexed dictionary, one of
// values other than strings, one of large strings, timestamp[s], date64)
// comes back as written, with the same values and nulls, from sliced and
// chunked columns, at 1 and 2 ranks; types pqarrow reads right come back
// as they are. (A fixed-size list has no nulls: arrow-go's Parquet writer
// cannot write them.)
func TestParquetNestedValueTypesRoundTrip(t *testing.T) {
	dict8 := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	dictInt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.PrimitiveTypes.Int64}
	dictLarge := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.LargeString}
	dict32 := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	tsS := &arrow.TimestampType{Unit: arrow.Second} // no time zone
	tsSUTC := &arrow.TimestampType{Unit: arrow.Second, TimeZone: "UTC"}
	d64 := arrow.FixedWidthTypes.Date64
	f := func(name string, dt arrow.DataType) arrow.Field {
		return arrow.Field{Name: name, Type: dt, Nullable: true}
	}
	all := arrow.StructOf(f("d", dict8), f("n", dictInt), f("l", dictLarge), f("t", tsS), f("u", tsSUTC), f("e", d64), f("i", arrow.PrimitiveTypes.Int32))
	allJS := `[{"d": "x", "n": 7, "l": "big", "t": 1, "u": 2, "e": 86400000, "i": 1},
		{"d": null, "n": null, "l": null, "t": null, "u": null, "e": null, "i": null},
		null,
		{"d": "y", "n": -3, "l": "", "t": -5, "u": 1700000000, "e": -86400000, "i": 2},
		{"d": "x", "n": 7, "l": "big", "t": 0, "u": 0, "e": 0, "i": 3}]`
	cases := []struct {
		name string
		dt   arrow.DataType
		js   string
	}{
		{"struct of converted types", all, allJS},
		{"list of int8 dictionaries", arrow.ListOf(dict8), `[["a", null, "b"], null, [], ["b", "b"], ["c"]]`},
		{"list of timestamp[s]", arrow.ListOf(tsS), `[[1, null, 3], null, [], [-4], [5, 6]]`},
		{"list of date64", arrow.ListOf(d64), `[[86400000, null], null, [], [0], [-172800000]]`},
		{"list of large-string dictionaries", arrow.ListOf(dictLarge), `[["a", null], null, [], ["ab", "a"], [""]]`},
		{"list of structs of converted types", arrow.ListOf(all), `[[` + strings.Trim(allJS, "[]") + `], null, [], [null]]`},
		{"fixed-size list of timestamp[s]", arrow.FixedSizeListOf(2, tsS), `[[1, 2], [null, 0], [3, 4], [5, 6], [-7, 8]]`},
		{"fixed-size list of int16 dictionaries of integers", arrow.FixedSizeListOf(2, dictInt), `[[1, 2], [null, 2], [3, 1], [1, 1], [2, 9]]`},
		{"map to int8 dictionaries", arrow.MapOf(arrow.BinaryTypes.String, dict8),
			`[[{"key": "k", "value": "v"}, {"key": "j", "value": null}], null, [], [{"key": "k", "value": "w"}], [{"key": "z", "value": "v"}]]`},
		{"map to timestamp[s] in Paris", arrow.MapOf(arrow.BinaryTypes.String, &arrow.TimestampType{Unit: arrow.Second, TimeZone: "Europe/Paris"}),
			`[[{"key": "k", "value": 1}], null, [], [{"key": "k", "value": null}, {"key": "m", "value": 9}], [{"key": "z", "value": -1}]]`},
		{"map of date64 keys", arrow.MapOf(d64, arrow.PrimitiveTypes.Int32),
			`[[{"key": 86400000, "value": 1}], null, [], [{"key": 0, "value": null}], [{"key": -86400000, "value": 2}]]`},
		{"struct of struct of list", arrow.StructOf(f("s", arrow.StructOf(f("l", arrow.ListOf(dictLarge)), f("t", tsS)))),
			`[{"s": {"l": ["a", null], "t": 1}}, null, {"s": null}, {"s": {"l": null, "t": null}}, {"s": {"l": [], "t": 2}}]`},
		{"time32[s]", arrow.FixedWidthTypes.Time32s, `[1, null, 86399, 0, 7]`},
		{"struct of time32[s] and a dictionary of timestamp[ms]", arrow.StructOf(f("t", arrow.FixedWidthTypes.Time32s),
			f("d", &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: &arrow.TimestampType{Unit: arrow.Millisecond}})),
			`[{"t": 1, "d": 5}, null, {"t": null, "d": null}, {"t": 86399, "d": -5}, {"t": 0, "d": 5}]`},
		{"list of dictionaries of large binaries", arrow.ListOf(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Uint8, ValueType: arrow.BinaryTypes.LargeBinary}),
			`[["YQ==", null], null, [], ["", "YQ=="], ["Yg=="]]`},
		{"struct of required fields", arrow.StructOf(arrow.Field{Name: "t", Type: tsS}, arrow.Field{Name: "d", Type: dict8}),
			`[{"t": 1, "d": "a"}, null, {"t": 2, "d": "b"}, {"t": 3, "d": "a"}, {"t": -4, "d": "c"}]`},
		{"list of required int8 dictionaries", arrow.ListOfNonNullable(dict8), `[["a", "b"], null, [], ["b"], ["c", "a"]]`},
		// Read right by pqarrow already: come back untouched.
		{"struct of right types", arrow.StructOf(f("d", dict32), f("t", arrow.FixedWidthTypes.Timestamp_ms), f("e", arrow.FixedWidthTypes.Date32), f("s", arrow.BinaryTypes.LargeString)),
			`[{"d": "x", "t": 1, "e": 1, "s": "a"}, null, {"d": null, "t": null, "e": null, "s": null}, {"d": "y", "t": 2, "e": 3, "s": ""}, {"d": "x", "t": 3, "e": 4, "s": "b"}]`},
		{"list of timestamp[us] with a zone", arrow.ListOf(&arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "Europe/Paris"}),
			`[[1, null], null, [], [2], [3]]`},
		{"list of fixed-size lists of date64", arrow.ListOf(arrow.FixedSizeListOf(2, d64)), `[[[0, 86400000]], null, [], [[0, 0], [-86400000, 0]], [[0, 172800000]]]`},
		{"struct of a fixed-size list of int8 dictionaries", arrow.StructOf(f("l", arrow.FixedSizeListOf(2, dict8))), `[{"l": ["a", "b"]}, {"l": ["c", null]}, {"l": ["a", "a"]}, {"l": ["b", "b"]}, {"l": ["c", "c"]}]`},
		{"fixed-size list of int64", arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Int64), `[[1, 2], [null, 0], [3, 4], [5, 6], [-7, 8]]`},
		{"list of int32 dictionaries", arrow.ListOf(dict32), `[["a", null], null, [], ["b"], ["a"]]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []int{1, 2} {
				tbl := chunkedSliced(t, tc.dt, tc.js)
				defer tbl.Release()
				got, gotSchema := parquetRoundTrip(t, p, tbl)
				require.NotNil(t, gotSchema)
				assert.True(t, tbl.Schema().Equal(gotSchema), "%d ranks: want %s\ngot  %s", p, tbl.Schema(), gotSchema)
				var want []string
				for range p {
					want = append(want, exactRows(tbl)...)
				}
				slices.Sort(want)
				slices.Sort(got)
				assert.Equal(t, want, got, "%d ranks", p)
			}
		})
	}
}

// chunkedOf is a column of type dt in two chunks, like chunkedSliced's.
func chunkedOf(t *testing.T, mem memory.Allocator, dt arrow.DataType, js string) *arrow.Chunked {
	t.Helper()
	b := fromJSON(t, mem, stringDicts(dt), js)
	defer b.Release()
	d := largeDicts(t, b.Data(), dt)
	defer d.Release()
	a := array.MakeFromData(d)
	defer a.Release()
	s := array.NewSlice(a, 1, int64(a.Len()))
	defer s.Release()
	return arrow.NewChunked(dt, []arrow.Array{s, a})
}

func chunkedRows(ch *arrow.Chunked) []string {
	var out []string
	for _, a := range ch.Chunks() {
		for i := 0; i < a.Len(); i++ {
			out = append(out, fmt.Sprintf("%#v", exactCell(a, i)))
		}
	}
	return out
}

// restoreType converts what pqarrow reads to the stored type at any depth,
// from sliced chunks (a struct's or list's children converted whole, its
// own buffers and offset kept), with the same values and nulls; a type
// already right is the same arrays; what it cannot restore exactly is an
// error that says where; nothing is left allocated either way.
func TestRestoreTypeNested(t *testing.T) {
	dict8 := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	dict32 := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	dictLarge := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.LargeString}
	tsMS, tsS := arrow.FixedWidthTypes.Timestamp_ms, arrow.FixedWidthTypes.Timestamp_s // tz=UTC
	d32, d64 := arrow.FixedWidthTypes.Date32, arrow.FixedWidthTypes.Date64
	f := func(name string, dt arrow.DataType) arrow.Field {
		return arrow.Field{Name: name, Type: dt, Nullable: true}
	}
	cases := []struct {
		name         string
		from, to     arrow.DataType
		fromJS, toJS string
		wantErr      string // "": converts
	}{
		{"struct", arrow.StructOf(f("d", dict32), f("t", tsMS), f("e", d32), f("l", dict32), f("n", arrow.PrimitiveTypes.Int64)),
			arrow.StructOf(f("d", dict8), f("t", tsS), f("e", d64), f("l", dictLarge), f("n", &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Uint8, ValueType: arrow.PrimitiveTypes.Int64})),
			`[{"d": "a", "t": 1000, "e": 1, "l": "x", "n": 1}, null, {"d": null, "t": null, "e": null, "l": null, "n": null}, {"d": "b", "t": -2000, "e": -1, "l": "", "n": 5}]`,
			`[{"d": "a", "t": 1, "e": 86400000, "l": "x", "n": 1}, null, {"d": null, "t": null, "e": null, "l": null, "n": null}, {"d": "b", "t": -2, "e": -86400000, "l": "", "n": 5}]`, ""},
		{"list", arrow.ListOf(tsMS), arrow.ListOf(tsS), `[[1000, null], null, [], [3000, 4000]]`, `[[1, null], null, [], [3, 4]]`, ""},
		{"large list", arrow.LargeListOf(dict32), arrow.LargeListOf(dict8), `[["a", null], null, [], ["b", "a"]]`, `[["a", null], null, [], ["b", "a"]]`, ""},
		{"fixed-size list", arrow.FixedSizeListOf(2, d32), arrow.FixedSizeListOf(2, d64), `[[1, null], null, [0, 2], [3, 4]]`,
			`[[86400000, null], null, [0, 172800000], [259200000, 345600000]]`, ""},
		{"map", arrow.MapOf(arrow.BinaryTypes.String, tsMS), arrow.MapOf(arrow.BinaryTypes.String, tsS),
			`[[{"key": "k", "value": 1000}], null, [], [{"key": "j", "value": null}, {"key": "k", "value": 0}]]`,
			`[[{"key": "k", "value": 1}], null, [], [{"key": "j", "value": null}, {"key": "k", "value": 0}]]`, ""},
		{"not a whole second", arrow.StructOf(f("s", arrow.StructOf(f("t", tsMS)))), arrow.StructOf(f("s", arrow.StructOf(f("t", tsS)))),
			`[null, {"s": {"t": 1000}}, {"s": {"t": 1500}}]`, ``, `field "s": field "t": timestamp[ms, tz=UTC] value 1500 is not a whole timestamp[s, tz=UTC]`},
		{"time32 not a whole second", arrow.ListOf(arrow.FixedWidthTypes.Time32ms), arrow.ListOf(arrow.FixedWidthTypes.Time32s),
			`[[1000], [1001]]`, ``, `field "item": time32[ms] value 1001 is not a whole time32[s]`},
		{"too many values for int8 indices in a row", arrow.ListOf(arrow.BinaryTypes.String), arrow.ListOf(dict8),
			`[["x"], ["y"], [` + manyStrings(200) + `]]`, ``, `field "item": 200 distinct values do not fit a dictionary of int8 indices`},
		{"another type", arrow.StructOf(f("a", arrow.PrimitiveTypes.Int32)), arrow.StructOf(f("a", arrow.BinaryTypes.String)),
			`[{"a": 1}, {"a": 2}]`, ``, `field "a": read back as int32 where the file's schema has utf8`},
		{"another time zone", arrow.ListOf(tsMS), arrow.ListOf(&arrow.TimestampType{Unit: arrow.Second, TimeZone: "Europe/Paris"}),
			`[[0], null, [1000, -2000]]`, `[[0], null, [1, -2]]`, ""},
		{"no time zone", arrow.ListOf(tsMS), arrow.ListOf(&arrow.TimestampType{Unit: arrow.Second}),
			`[[0], [1000]]`, ``, `field "item": read back as timestamp[ms, tz=UTC] where the file's schema has timestamp[s]`},
		{"other fields", arrow.StructOf(f("a", arrow.PrimitiveTypes.Int32)), arrow.StructOf(f("a", arrow.PrimitiveTypes.Int32), f("b", d64)),
			`[{"a": 1}, {"a": 2}]`, ``, `which frame cannot restore`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			in := chunkedOf(t, mem, tc.from, tc.fromJS)
			defer in.Release()
			out, err := restoreType(context.Background(), mem, in, tc.to)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Nil(t, out)
				return
			}
			require.NoError(t, err)
			defer out.Release()
			require.True(t, arrow.TypeEqual(tc.to, out.DataType(), arrow.CheckMetadata()), "%s", out.DataType())
			sc := arrow.NewSchema([]arrow.Field{f("c", tc.to)}, nil)
			col := arrow.NewColumn(sc.Field(0), out)
			tbl := array.NewTable(sc, []arrow.Column{*col}, int64(out.Len()))
			col.Release()
			require.NoError(t, arrowio.ValidateTable(tbl))
			tbl.Release()
			want := chunkedOf(t, mem, tc.to, tc.toJS)
			defer want.Release()
			assert.Equal(t, chunkedRows(want), chunkedRows(out))
		})
	}
	// Types read right are kept as they are: the same arrays.
	for _, dt := range []arrow.DataType{
		arrow.StructOf(f("d", dict32), f("t", tsMS), f("e", d32)),
		arrow.ListOf(dict8),
		arrow.MapOf(arrow.BinaryTypes.String, tsS),
	} {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		in := chunkedOf(t, mem, dt, `[null, null]`)
		out, err := restoreType(context.Background(), mem, in, dt)
		require.NoError(t, err)
		for i, a := range out.Chunks() {
			assert.Same(t, in.Chunks()[i].Data(), a.Data(), "%s", dt)
		}
		out.Release()
		in.Release()
		mem.AssertSize(t, 0)
	}
}

// manyStrings is n distinct JSON strings, comma-separated.
func manyStrings(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%q", fmt.Sprint(i))
	}
	return strings.Join(s, ", ")
}

// A dictionary of timestamp[s] or time32[s] values cannot be written to
// Parquet, at any depth: arrow-go's writer would write its values as
// milliseconds unconverted (read back, -5 s came back as -5 ms).
func TestParquetDictionaryOfSecondsIsAnError(t *testing.T) {
	f := func(name string, dt arrow.DataType) arrow.Field {
		return arrow.Field{Name: name, Type: dt, Nullable: true}
	}
	cases := []struct {
		name, js, want string
		dt             arrow.DataType
	}{
		{"timestamp[s]", `[5, null, -5]`, `column "c": a dictionary of timestamp[s]`,
			&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: &arrow.TimestampType{Unit: arrow.Second}}},
		{"time32[s] in a struct", `[{"d": 5}, null, {"d": 7}]`, `column "c": field "d": a dictionary of time32[s]`,
			arrow.StructOf(f("d", &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.FixedWidthTypes.Time32s}))},
		{"timestamp[s, tz] in a list", `[[5], null, []]`, `column "c": field "item": a dictionary of timestamp[s, tz=UTC]`,
			arrow.ListOf(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.FixedWidthTypes.Timestamp_s})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl := chunkedSliced(t, tc.dt, tc.js)
			defer tbl.Release()
			dir := t.TempDir()
			runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				in, err := New(c, tbl, WithAllocator(mem))
				if err != nil {
					return err
				}
				defer in.Release()
				_, err = in.WriteParquet(ctx, filepath.Join(dir, "p.parquet"))
				assert.ErrorContains(t, err, tc.want)
				return nil
			})
		})
	}
}

// A large list cannot be written to Parquet at any depth (arrow-go's writer
// cannot): an error, not a file read back as another type.
func TestParquetNestedLargeListIsAnError(t *testing.T) {
	dt := arrow.StructOf(arrow.Field{Name: "l", Type: arrow.LargeListOf(&arrow.TimestampType{Unit: arrow.Second}), Nullable: true})
	tbl := chunkedSliced(t, dt, `[{"l": [1]}, null, {"l": []}, {"l": null}]`)
	defer tbl.Release()
	dir := t.TempDir()
	runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		in, err := New(c, tbl, WithAllocator(mem))
		if err != nil {
			return err
		}
		defer in.Release()
		_, err = in.WriteParquet(ctx, filepath.Join(dir, "p.parquet"))
		assert.ErrorContains(t, err, "large_list")
		return nil
	})
}

// A dictionary column written in chunks with dictionaries of their own
// comes back in one Parquet batch with all their values: more than int8
// indices address (200 here). It is split into chunks that fit, top-level
// or nested, with the same values (a single row with more is an error:
// TestRestoreTypeNested).
func TestParquetDictionaryChunksPastIndexRange(t *testing.T) {
	dict8 := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	f := func(name string, dt arrow.DataType) arrow.Field {
		return arrow.Field{Name: name, Type: dt, Nullable: true}
	}
	cases := []struct {
		name string
		dt   arrow.DataType
		row  func(v string) string
	}{
		{"dictionary", dict8, func(v string) string { return v }},
		{"struct of a dictionary", arrow.StructOf(f("d", dict8)), func(v string) string { return `{"d": ` + v + `}` }},
		{"list of dictionaries", arrow.ListOf(dict8), func(v string) string { return `[` + v + `, null]` }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewGoAllocator()
			var chunks []arrow.Array
			for c := range 2 {
				rows := []string{"null"}
				for i := range 100 {
					rows = append(rows, tc.row(fmt.Sprintf(`"%d"`, c*1000+i)))
				}
				a := fromJSON(t, mem, tc.dt, "["+strings.Join(rows, ", ")+"]")
				defer a.Release()
				chunks = append(chunks, a)
			}
			s := array.NewSlice(chunks[1], 1, int64(chunks[1].Len()))
			defer s.Release()
			ch := arrow.NewChunked(tc.dt, []arrow.Array{chunks[0], s})
			defer ch.Release()
			sc := arrow.NewSchema([]arrow.Field{f("c", tc.dt)}, nil)
			col := arrow.NewColumn(sc.Field(0), ch)
			defer col.Release()
			tbl := array.NewTable(sc, []arrow.Column{*col}, int64(ch.Len()))
			defer tbl.Release()
			for _, p := range []int{1, 2} {
				got, gotSchema := parquetRoundTrip(t, p, tbl)
				require.NotNil(t, gotSchema)
				assert.True(t, tbl.Schema().Equal(gotSchema), "%d ranks: want %s\ngot  %s", p, tbl.Schema(), gotSchema)
				var want []string
				for range p {
					want = append(want, exactRows(tbl)...)
				}
				slices.Sort(want)
				slices.Sort(got)
				assert.Equal(t, want, got, "%d ranks", p)
			}
		})
	}
}
