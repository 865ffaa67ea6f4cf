package arrowio

import (
	"bytes"
	"context"
	"fmt"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/collective"
)

// Type coverage beyond allTypes: every width of decimal with negative values, dictionaries of every
// index type with null indices and null dictionary values, time units and zones, view, list-view,
// union and run-end encoded layouts, nested nulls, extension types, each as 8 values with nulls.

type typeCase struct {
	name string
	dt   arrow.DataType
	json string
}

func moreTypes() []typeCase {
	dict := func(idx arrow.DataType, val arrow.DataType) arrow.DataType {
		return &arrow.DictionaryType{IndexType: idx, ValueType: val}
	}
	st := arrow.StructOf(
		arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int32, Nullable: true, Metadata: arrow.NewMetadata([]string{"fk"}, []string{"fv"})},
		arrow.Field{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true},
	)
	cs := []typeCase{
		{"dec32", &arrow.Decimal32Type{Precision: 9, Scale: 2}, `["1.50","-1.50",null,"0.00","-99.99","12345.67","1.50","-0.01"]`},
		{"dec64", &arrow.Decimal64Type{Precision: 18, Scale: 4}, `["1.5000","-1.5000",null,"0","-99.9999","12345678.1234","1.5","-0.0001"]`},
		{"dec128", &arrow.Decimal128Type{Precision: 38, Scale: 10}, `["1.5","-1.5",null,"0","-99.99","1234567890123456789.5","1.5","-0.0000000001"]`},
		{"dec256", &arrow.Decimal256Type{Precision: 76, Scale: 20}, `["1.5","-1.5",null,"0","-99.99","12345678901234567890123456789.5","1.5","-0.00000000000000000001"]`},
		{"time32s", arrow.FixedWidthTypes.Time32s, `[0, 1, null, 86399, 5, 1, 0, 7]`},
		{"time64us", arrow.FixedWidthTypes.Time64us, `[0, 1, null, 86399000000, 5, 1, 0, 7]`},
		{"ts_ny", &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "America/New_York"}, `["2020-01-01T00:00:00Z","1969-12-31T23:59:59Z",null,"2020-01-01T00:00:00Z","2000-02-29T12:00:00Z","1970-01-01T00:00:00Z","2020-01-01T00:00:00Z","2038-01-19T03:14:08Z"]`},
		{"ts_off", &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "+05:30"}, `[0, -1, null, 5, 5, 1, 0, 7]`},
		{"date32", arrow.FixedWidthTypes.Date32, `[0, -1, null, 19000, 5, 1, 0, 7]`},
		{"date64", arrow.FixedWidthTypes.Date64, `[0, -86400000, null, 864000000, 86400000, 0, 0, 86400000]`},
		{"dur_s", arrow.FixedWidthTypes.Duration_s, `[0, -1, null, 5, 5, 1, 0, 7]`},
		{"dur_ns", arrow.FixedWidthTypes.Duration_ns, `[0, -1, null, 5, 5, 1, 0, 7]`},
		{"months", arrow.FixedWidthTypes.MonthInterval, `[{"months":0},{"months":-1},null,{"months":5},{"months":5},{"months":1},{"months":0},{"months":7}]`},
		{"daytime", arrow.FixedWidthTypes.DayTimeInterval, `[{"days":1,"milliseconds":2},{"days":-1,"milliseconds":0},null,{"days":1,"milliseconds":2},{"days":0,"milliseconds":0},{"days":3,"milliseconds":-4},{"days":0,"milliseconds":0},{"days":9,"milliseconds":9}]`},
		{"mdn", arrow.FixedWidthTypes.MonthDayNanoInterval, `[{"months":1,"days":2,"nanoseconds":3},{"months":-1,"days":0,"nanoseconds":0},null,{"months":1,"days":2,"nanoseconds":3},{"months":0,"days":0,"nanoseconds":0},{"months":3,"days":-4,"nanoseconds":5},{"months":0,"days":0,"nanoseconds":0},{"months":9,"days":9,"nanoseconds":9}]`},
		{"f16", arrow.FixedWidthTypes.Float16, `[0, -1.5, null, 5, 5, 1, -0.0, 7]`},
		{"null", arrow.Null, `[null,null,null,null,null,null,null,null]`},
		{"bool", arrow.FixedWidthTypes.Boolean, `[true,false,null,true,true,false,false,true]`},
		{"lstr", arrow.BinaryTypes.LargeString, `["a","",null,"a","longer than twelve bytes","b","","c"]`},
		{"lbin", arrow.BinaryTypes.LargeBinary, `["YQ==","",null,"YQ==","Yg==","Yg==","","Yw=="]`},
		{"sview", arrow.BinaryTypes.StringView, `["a","",null,"a","longer than twelve bytes","longer than twelve bytes!","","c"]`},
		{"bview", arrow.BinaryTypes.BinaryView, `["YQ==","",null,"YQ==","bG9uZ2VyIHRoYW4gdHdlbHZlIGJ5dGVz","Yg==","","Yw=="]`},
		{"fsb", &arrow.FixedSizeBinaryType{ByteWidth: 3}, `["YWJj","YWJk",null,"YWJj","AAAA","YWJj","AAAA","enp6"]`},
		{"llist", arrow.LargeListOf(arrow.BinaryTypes.String), `[["a"],[],null,["a"],["b",null],["a","b"],[],[null]]`},
		{"lview", arrow.ListViewOf(arrow.PrimitiveTypes.Int32), `[[1],[],null,[1],[2,null],[1,2],[],[null]]`},
		{"llview", arrow.LargeListViewOf(arrow.PrimitiveTypes.Int32), `[[1],[],null,[1],[2,null],[1,2],[],[null]]`},
		{"fsl", arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Int16), `[[1,2],[3,null],null,[1,2],[0,0],[1,2],[null,null],[9,9]]`},
		{"fsl_struct", arrow.FixedSizeListOf(2, st), `[[{"a":1,"b":"x"},null],[null,{"a":null,"b":null}],null,[{"a":1,"b":"x"},null],[{"a":2,"b":"y"},{"a":3,"b":"z"}],[null,null],[{"a":1,"b":"x"},null],[{"a":9,"b":"q"},{"a":9,"b":"q"}]]`},
		{"struct", st, `[{"a":1,"b":"x"},{"a":null,"b":"x"},null,{"a":1,"b":"x"},{"a":null,"b":null},{"a":2,"b":null},{"a":1,"b":"x"},{"a":3,"b":"y"}]`},
		{"map", arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int32), `[[{"key":"a","value":1}],[],null,[{"key":"a","value":1}],[{"key":"b","value":null},{"key":"c","value":2}],[{"key":"a","value":2}],[],[{"key":"z","value":0}]]`},
		{"list_of_list", arrow.ListOf(arrow.ListOf(arrow.PrimitiveTypes.Int8)), `[[[1]],[[]],null,[[1]],[null,[2]],[[1],[2]],[],[[3,4]]]`},
		{"sunion", arrow.SparseUnionOf([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, []arrow.UnionTypeCode{3, 7}), `[[3,1],[7,"a"],[3,null],[3,1],[7,"long string value here"],[7,null],[3,5],[7,"z"]]`},
		{"dunion", arrow.DenseUnionOf([]arrow.Field{{Name: "i", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, []arrow.UnionTypeCode{3, 7}), `[[3,1],[7,"a"],[3,null],[3,1],[7,"long string value here"],[7,null],[3,5],[7,"z"]]`},
		{"ree16", arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int16, arrow.BinaryTypes.String), ``},
		{"ree64", arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Float64), ``},
		{"uuid", extensions.NewUUIDType(), `["00000000-0000-0000-0000-000000000001","00000000-0000-0000-0000-000000000002",null,"00000000-0000-0000-0000-000000000001","00000000-0000-0000-0000-000000000003","00000000-0000-0000-0000-000000000001","00000000-0000-0000-0000-000000000002","00000000-0000-0000-0000-000000000009"]`},
		{"bool8", extensions.NewBool8Type(), `[true,false,null,true,true,false,false,true]`},
		{"json", func() arrow.DataType { d, _ := extensions.NewJSONType(arrow.BinaryTypes.String); return d }(), `["{\"a\":1}","[]",null,"{\"a\":1}","1","2","[]","null"]`},
		{"opaque", extensions.NewOpaqueType(arrow.BinaryTypes.Binary, "geometry", "postgis"), `["YQ==","",null,"YQ==","Yg==","Yg==","","Yw=="]`},
	}
	cs = append(cs,
		typeCase{"struct0", arrow.StructOf(), `[{},{},null,{},{},null,{},{}]`},
		typeCase{"list_null", arrow.ListOf(arrow.Null), `[[null],[],null,[null],[null,null],[],[],[null]]`},
		typeCase{"struct_null", arrow.StructOf(arrow.Field{Name: "n", Type: arrow.Null, Nullable: true}, arrow.Field{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true}), `[{"n":null,"b":true},{"n":null,"b":false},null,{"n":null,"b":true},{"n":null,"b":null},null,{"n":null,"b":true},{"n":null,"b":false}]`},
		typeCase{"list_ree", arrow.ListOf(arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64)), ``},
		typeCase{"map_struct_key", arrow.MapOf(arrow.PrimitiveTypes.Int32, arrow.ListOf(arrow.BinaryTypes.StringView)), `[[{"key":1,"value":["a"]}],[],null,[{"key":1,"value":["a"]}],[{"key":2,"value":null},{"key":3,"value":["very long string view value"]}],[],[],[{"key":4,"value":[]}]]`},
		typeCase{"ext_of_struct", extensions.NewOpaqueType(st, "t", "v"), `[{"a":1,"b":"x"},{"a":null,"b":"x"},null,{"a":1,"b":"x"},{"a":null,"b":null},{"a":2,"b":null},{"a":1,"b":"x"},{"a":3,"b":"y"}]`},
	)
	for _, idx := range []arrow.DataType{arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64,
		arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Uint64} {
		cs = append(cs, typeCase{"dict_" + idx.String(), dict(idx, arrow.BinaryTypes.String), ``})
	}
	cs = append(cs, typeCase{"dict_dec128", dict(arrow.PrimitiveTypes.Int16, &arrow.Decimal128Type{Precision: 20, Scale: 3}), ``})
	cs = append(cs, typeCase{"list_dict", arrow.ListOf(dict(arrow.PrimitiveTypes.Int8, arrow.BinaryTypes.String)), ``})
	return cs
}

// typeCaseArray builds c's array of 8 values.
func typeCaseArray(t testing.TB, mem memory.Allocator, c typeCase) arrow.Array {
	switch dt := c.dt.(type) {
	case *arrow.DictionaryType:
		// indices with null keys, and a dictionary with a null value and a duplicate value.
		var dictJSON string
		switch dt.ValueType.ID() {
		case arrow.STRING:
			dictJSON = `["x", null, "y", "x", "zz"]`
		default:
			dictJSON = `["1.5", null, "-2.25", "1.5", "0"]`
		}
		d, _, err := array.FromJSON(mem, dt.ValueType, strings.NewReader(dictJSON))
		require.NoError(t, err)
		defer d.Release()
		idx, _, err := array.FromJSON(mem, dt.IndexType, strings.NewReader(`[0, 1, null, 3, 2, 4, 1, 0]`))
		require.NoError(t, err)
		defer idx.Release()
		return array.NewDictionaryArray(dt, idx, d)
	case *arrow.RunEndEncodedType:
		ends, _, err := array.FromJSON(mem, dt.RunEnds(), strings.NewReader(`[2, 3, 5, 8]`))
		require.NoError(t, err)
		defer ends.Release()
		js := `["a", null, "b", "a"]`
		if dt.Encoded().ID() == arrow.FLOAT64 {
			js = `[1.5, null, -0.0, 1.5]`
		}
		vals, _, err := array.FromJSON(mem, dt.Encoded(), strings.NewReader(js))
		require.NoError(t, err)
		defer vals.Release()
		return array.NewRunEndEncodedArray(ends, vals, 8, 0)
	case *arrow.ListType:
		if ree, ok := dt.Elem().(*arrow.RunEndEncodedType); ok {
			ends, _, err := array.FromJSON(mem, ree.RunEnds(), strings.NewReader(`[2, 3, 5, 8, 9]`))
			require.NoError(t, err)
			defer ends.Release()
			vals, _, err := array.FromJSON(mem, ree.Encoded(), strings.NewReader(`[7, null, 8, 7, 9]`))
			require.NoError(t, err)
			defer vals.Release()
			ch := array.NewRunEndEncodedArray(ends, vals, 8, 1)
			defer ch.Release()
			offs := memory.NewBufferBytes(arrow.Int32Traits.CastToBytes([]int32{0, 1, 1, 3, 4, 6, 7, 7, 8}))
			valid := memory.NewBufferBytes([]byte{0b11111011})
			d := array.NewData(dt, 8, []*memory.Buffer{valid, offs}, []arrow.ArrayData{ch.Data()}, 1, 0)
			defer d.Release()
			return array.MakeFromData(d)
		}
		if _, ok := dt.Elem().(*arrow.DictionaryType); ok {
			ch := typeCaseArray(t, mem, typeCase{dt: dt.Elem()})
			defer ch.Release()
			offs := memory.NewBufferBytes(arrow.Int32Traits.CastToBytes([]int32{0, 1, 1, 3, 4, 6, 7, 7, 8}))
			valid := memory.NewBufferBytes([]byte{0b11111011})
			d := array.NewData(dt, 8, []*memory.Buffer{valid, offs}, []arrow.ArrayData{ch.Data()}, 1, 0)
			defer d.Release()
			return array.MakeFromData(d)
		}
	}
	a, _, err := array.FromJSON(mem, c.dt, strings.NewReader(c.json))
	require.NoError(t, err, c.name)
	return a
}

// wantRow is the oracle for one row: row i of array a.
type wantRow struct {
	a arrow.Array
	i int
}

type wantRows []wantRow

func (r wantRows) Release() {
	if len(r) > 0 {
		r[0].a.Release()
	}
}

// typeCaseTable builds a table of c's array in chunks [1, 8), [3, 3) and [0, 5) of it (slices, one
// empty), with schema and field metadata, and a key column k of 1..12; want holds its rows (the caller
// releases both).
func typeCaseTable(t testing.TB, mem memory.Allocator, c typeCase) (arrow.Table, wantRows) {
	a := typeCaseArray(t, mem, c)
	defer a.Release()
	require.NoError(t, array.ValidateFull(a), c.name)
	s1 := array.NewSlice(a, 1, 8)
	s2 := array.NewSlice(a, 3, 3)
	s3 := array.NewSlice(a, 0, 5)
	defer s1.Release()
	defer s2.Release()
	defer s3.Release()
	kb := array.NewInt64Builder(mem)
	kb.AppendValues([]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, nil)
	k := kb.NewArray()
	kb.Release()
	defer k.Release()
	md := arrow.NewMetadata([]string{"schema-k"}, []string{"schema-v"})
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "v", Type: c.dt, Nullable: true, Metadata: arrow.NewMetadata([]string{"field-k"}, []string{"field-v"})},
		{Name: "k", Type: arrow.PrimitiveTypes.Int64},
	}, &md)
	ch := arrow.NewChunked(c.dt, []arrow.Array{s1, s2, s3})
	defer ch.Release()
	kc := arrow.NewChunked(arrow.PrimitiveTypes.Int64, []arrow.Array{k})
	defer kc.Release()
	c1 := arrow.NewColumn(schema.Field(0), ch)
	c2 := arrow.NewColumn(schema.Field(1), kc)
	defer c1.Release()
	defer c2.Release()
	tbl := array.NewTable(schema, []arrow.Column{*c1, *c2}, 12)
	var want wantRows
	for _, i := range []int{1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4} {
		want = append(want, wantRow{a, i})
	}
	a.Retain() // want's
	return tbl, want
}

// checkRows checks that got has schema (with its metadata) and, in column 0, want's rows in order.
func checkRows(got arrow.Table, schema *arrow.Schema, want wantRows) error {
	if got == nil {
		return fmt.Errorf("nil")
	}
	if !got.Schema().Equal(schema) {
		return fmt.Errorf("schema %s want %s", got.Schema(), schema)
	}
	if !got.Schema().Metadata().Equal(schema.Metadata()) {
		return fmt.Errorf("schema metadata %v want %v", got.Schema().Metadata(), schema.Metadata())
	}
	var k int
	for _, ch := range got.Column(0).Data().Chunks() {
		if err := array.ValidateFull(ch); err != nil {
			return fmt.Errorf("received invalid: %w", err)
		}
		for j := range ch.Len() {
			if k >= len(want) {
				return fmt.Errorf("too many rows")
			}
			if !sameRow(ch, j, want[k].a, want[k].i) {
				return fmt.Errorf("row %d differs: got %v want %v", k, ch, want[k].a)
			}
			k++
		}
	}
	if k != len(want) {
		return fmt.Errorf("%d rows, want %d", k, len(want))
	}
	return nil
}

// checkKeyed checks that got holds copies rows of every row of want, in any order, each next to its
// key k (want[k-1]).
func checkKeyed(got arrow.Table, schema *arrow.Schema, want wantRows, copies int) error {
	if !got.Schema().Equal(schema) {
		return fmt.Errorf("schema %s want %s", got.Schema(), schema)
	}
	seen := make([]int, len(want))
	tr := array.NewTableReader(got, -1)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		v, k := rec.Column(0), rec.Column(1).(*array.Int64)
		if err := array.ValidateFull(v); err != nil {
			return fmt.Errorf("invalid: %w", err)
		}
		for j := range int(rec.NumRows()) {
			w := want[k.Value(j)-1]
			if !array.SliceEqual(v, int64(j), int64(j+1), w.a, int64(w.i), int64(w.i+1)) {
				return fmt.Errorf("key %d: got %v want row %d of %v", k.Value(j), v, w.i, w.a)
			}
			seen[k.Value(j)-1]++
		}
	}
	for i, n := range seen {
		if n != copies {
			return fmt.Errorf("key %d: %d rows, want %d", i+1, n, copies)
		}
	}
	return nil
}

// TestEveryTypeTravels sends a table of every type in moreTypes, as chunks that are slices (non-zero
// offsets) with an empty chunk between them and with schema and field metadata, through send/recv
// (one batch per message), broadcast, shuffle and allgather, and compares what arrives with
// arrow-go's own array comparison against the rows the table was built from.
func TestEveryTypeTravels(t *testing.T) {
	for _, c := range moreTypes() {
		t.Run(c.name, func(t *testing.T) {
			comms := newWorld(t, pipeLinks, 2)
			errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, cm *collective.Comm, mem memory.Allocator) error {
				tbl, want := typeCaseTable(t, mem, c)
				defer tbl.Release()
				defer want.Release()
				if cm.Rank() == 0 {
					if err := SendTable(ctx, cm, 1, 3, tbl, WithAllocator(mem), WithBatchBytes(64)); err != nil {
						return err
					}
				} else {
					got, err := RecvTable(ctx, cm, 0, 3, WithAllocator(mem))
					if err != nil {
						return err
					}
					err = checkRows(got, tbl.Schema(), want)
					got.Release()
					if err != nil {
						return fmt.Errorf("send/recv: %w", err)
					}
				}
				got, err := BcastTable(ctx, cm, 0, tbl, WithAllocator(mem))
				if err != nil {
					return err
				}
				err = checkRows(got, tbl.Schema(), want)
				got.Release()
				if err != nil {
					return fmt.Errorf("bcast: %w", err)
				}
				// Shuffle by k, then allgather: every rank has every rank's rows, each row still
				// holding the value its key k (1..12, row k-1 of want) was sent with.
				sh, err := Shuffle(ctx, cm, tbl, []string{"k"}, WithAllocator(mem))
				if err != nil {
					return fmt.Errorf("shuffle: %w", err)
				}
				defer sh.Release()
				g, err := AllgatherTable(ctx, cm, sh, WithAllocator(mem))
				if err != nil {
					return fmt.Errorf("allgather: %w", err)
				}
				defer g.Release()
				return checkKeyed(g, tbl.Schema(), want, 2)
			})
			requireNoErrors(t, errs)
		})
	}
}

// TestHashEveryType checks HashRows on every type in moreTypes: every slice hashes as the same rows of
// the whole array, equal values hash alike, a copy hashes as the original, and HashPartition puts
// every row of a sliced, chunked table where its hash says with its value intact; a type HashRows
// cannot hash is an error, and still travels as a payload.
func TestHashEveryType(t *testing.T) {
	mem := checkedMem(t)
	for _, c := range moreTypes() {
		t.Run(c.name, func(t *testing.T) {
			a := typeCaseArray(t, mem, c)
			defer a.Release()
			h := make([]uint64, a.Len())
			err := HashRows([]arrow.Array{a}, h)
			if unhashable[c.name] {
				require.ErrorContains(t, err, "cannot hash values of type")
				tbl, want := typeCaseTable(t, mem, c)
				defer tbl.Release()
				defer want.Release()
				_, err := HashPartition(context.Background(), tbl, []string{"k", "v"}, 3, WithAllocator(mem))
				require.ErrorContains(t, err, fmt.Sprintf(`key column "v" (%s)`, c.dt))
				parts, err := HashPartition(context.Background(), tbl, []string{"k"}, 3, WithAllocator(mem))
				require.NoError(t, err, "as a payload")
				releaseTables(parts)
				return
			}
			require.NoError(t, err)
			// Every slice hashes as those rows of the whole.
			for lo := 0; lo < a.Len(); lo++ {
				for hi := lo; hi <= a.Len(); hi++ {
					s := array.NewSlice(a, int64(lo), int64(hi))
					hs := make([]uint64, hi-lo)
					require.NoError(t, HashRows([]arrow.Array{s}, hs))
					assert.Equal(t, h[lo:hi], hs, "slice %d:%d", lo, hi)
					s.Release()
				}
			}
			// Equal values (and nulls) hash alike.
			for i := range a.Len() {
				for j := range a.Len() {
					si, sj := "∅", "∅"
					if a.IsValid(i) {
						si = storageStr(a, i)
					}
					if a.IsValid(j) {
						sj = storageStr(a, j)
					}
					if si == sj {
						assert.Equal(t, h[i], h[j], "rows %d %d (%s)", i, j, si)
					}
				}
			}
			// So does a copy at offset 0 (arrow-go's Concatenate).
			cp, err := array.Concatenate([]arrow.Array{a}, mem)
			require.NoError(t, err)
			hc := make([]uint64, a.Len())
			require.NoError(t, HashRows([]arrow.Array{cp}, hc))
			assert.Equal(t, h, hc)
			cp.Release()

			// HashPartition of the sliced, chunked table: part k holds, in order, the rows whose
			// hash (of the whole array's row they came from) maps to k.
			tbl, want := typeCaseTable(t, mem, c)
			defer tbl.Release()
			defer want.Release()
			wh := make([]uint64, len(want))
			for k, r := range want {
				wh[k] = h[r.i]
			}
			parts, err := HashPartition(context.Background(), tbl, []string{"v"}, 3, WithAllocator(mem))
			require.NoError(t, err)
			defer releaseTables(parts)
			for k, p := range parts {
				var exp wantRows
				for i, r := range want {
					if PartitionOf(wh[i], 3) == k {
						exp = append(exp, r)
					}
				}
				require.NoError(t, checkRows(p, tbl.Schema(), exp), "part %d", k)
			}
			// And as a payload.
			parts2, err := HashPartition(context.Background(), tbl, []string{"k"}, 3, WithAllocator(mem))
			require.NoError(t, err)
			releaseTables(parts2)
		})
	}
}

// unhashable lists the cases of moreTypes whose values HashRows rejects.
var unhashable = map[string]bool{"lview": true, "llview": true, "sunion": true, "dunion": true, "ree16": true, "ree64": true, "list_ree": true}

// storageStr renders element i (of an extension array's storage: not every extension has ValueStr).
func storageStr(a arrow.Array, i int) string {
	if e, ok := a.(array.ExtensionArray); ok {
		return storageStr(e.Storage(), i)
	}
	return a.ValueStr(i)
}

// TestValidateDecodeEveryType: ValidateTable accepts every valid table of moreTypes, and DecodeIPC
// reads them back from arrow-go's IPC stream and file writers.
func TestValidateDecodeEveryType(t *testing.T) {
	for _, c := range moreTypes() {
		t.Run(c.name, func(t *testing.T) {
			mem := checkedMem(t)
			tbl, want := typeCaseTable(t, mem, c)
			defer tbl.Release()
			defer want.Release()
			require.NoError(t, ValidateTable(tbl))
			if holdsFragileType(c.dt) {
				return // arrow-go's writer fails on these sliced
			}
			for _, file := range []bool{false, true} {
				var buf bytes.Buffer
				var w interface {
					Write(arrow.RecordBatch) error
					Close() error
				}
				src := tbl
				if file {
					// arrow-go's file writer (v18.6.0) keeps a reference to every dictionary it
					// wrote after Close: it writes a table of its own, from an unchecked allocator.
					var fileWant wantRows
					src, fileWant = typeCaseTable(t, memory.NewGoAllocator(), c)
					defer src.Release()
					defer fileWant.Release()
					fw, err := ipc.NewFileWriter(&buf, ipc.WithSchema(src.Schema()))
					require.NoError(t, err)
					w = fw
				} else {
					w = ipc.NewWriter(&buf, ipc.WithSchema(src.Schema()))
				}
				tr := array.NewTableReader(src, -1)
				for tr.Next() {
					require.NoError(t, w.Write(tr.RecordBatch()))
				}
				tr.Release()
				require.NoError(t, w.Close())
				got, err := DecodeIPC(buf.Bytes(), WithAllocator(mem))
				require.NoError(t, err, "file=%v", file)
				require.NoError(t, checkRows(got, tbl.Schema(), want), "file=%v", file) // src has tbl's rows
				got.Release()
			}
		})
	}
}
