package frame

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

var dictIndexTypes = []arrow.DataType{arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Int16,
	arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Uint64}

func fromJSON(t *testing.T, mem memory.Allocator, dt arrow.DataType, js string) arrow.Array {
	t.Helper()
	a, _, err := array.FromJSON(mem, dt, strings.NewReader(js))
	require.NoError(t, err)
	return a
}

// decoded gives every row's value, a null for a null index or a null
// value, for every value type (typed gathers and arrow-go's take kernel
// alike), every index type, and a dictionary array that is a slice.
func TestDecodedValues(t *testing.T) {
	// Four dictionary values, the last one null; the indices are always
	// [2, 0, null, 1, 3, 2, 0].
	const indices = `[2, 0, null, 1, 3, 2, 0]`
	cases := []struct {
		name         string
		dt           arrow.DataType
		values, want string
		typed        bool // decoded by take's typed gathers
	}{
		{"uint8", arrow.PrimitiveTypes.Uint8, `[7, 0, 255, null]`, `[255, 7, null, 0, null, 255, 7]`, true},
		{"int16", arrow.PrimitiveTypes.Int16, `[-7, 0, 300, null]`, `[300, -7, null, 0, null, 300, -7]`, true},
		{"float32", arrow.PrimitiveTypes.Float32, `[1.5, -0.25, 3, null]`, `[3, 1.5, null, -0.25, null, 3, 1.5]`, true},
		{"int64", arrow.PrimitiveTypes.Int64, `[10, -20, 30, null]`, `[30, 10, null, -20, null, 30, 10]`, true},
		{"timestamp", arrow.FixedWidthTypes.Timestamp_ms, `[0, 1000, 2000, null]`, `[2000, 0, null, 1000, null, 2000, 0]`, true},
		{"decimal128", &arrow.Decimal128Type{Precision: 10, Scale: 2}, `["1.23", "4.56", "-7.89", null]`,
			`["-7.89", "1.23", null, "4.56", null, "-7.89", "1.23"]`, true},
		{"decimal256", &arrow.Decimal256Type{Precision: 40, Scale: 1}, `["1.2", "4.5", "-7.8", null]`,
			`["-7.8", "1.2", null, "4.5", null, "-7.8", "1.2"]`, true},
		{"string", arrow.BinaryTypes.String, `["a", "", "ccc", null]`, `["ccc", "a", null, "", null, "ccc", "a"]`, true},
		{"large string", arrow.BinaryTypes.LargeString, `["a", "", "ccc", null]`, `["ccc", "a", null, "", null, "ccc", "a"]`, true},
		{"binary", arrow.BinaryTypes.Binary, `["YQ==", "", "AGI=", null]`, `["AGI=", "YQ==", null, "", null, "AGI=", "YQ=="]`, true},
		{"large binary", arrow.BinaryTypes.LargeBinary, `["YQ==", "", "AGI=", null]`, `["AGI=", "YQ==", null, "", null, "AGI=", "YQ=="]`, true},
		{"bool", arrow.FixedWidthTypes.Boolean, `[true, false, true, null]`, `[true, true, null, false, null, true, true]`, false},
		{"fixed size binary", &arrow.FixedSizeBinaryType{ByteWidth: 2}, `["YWI=", "AAA=", "eHk=", null]`,
			`["eHk=", "YWI=", null, "AAA=", null, "eHk=", "YWI="]`, false},
		{"list", arrow.ListOf(arrow.PrimitiveTypes.Int64), `[[1], [], [2, 3], null]`, `[[2, 3], [1], null, [], null, [2, 3], [1]]`, false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.typed, typedTake(tc.dt), tc.name)
		for _, index := range dictIndexTypes {
			for _, sliced := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/sliced=%v", tc.name, index, sliced), func(t *testing.T) {
					mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					defer mem.AssertSize(t, 0)
					values := fromJSON(t, mem, tc.dt, tc.values)
					defer values.Release()
					idx := fromJSON(t, mem, index, indices)
					defer idx.Release()
					want := fromJSON(t, mem, tc.dt, tc.want)
					defer want.Release()
					var a arrow.Array = array.NewDictionaryArray(&arrow.DictionaryType{IndexType: index, ValueType: tc.dt}, idx, values)
					defer a.Release()
					if sliced {
						a = array.NewSlice(a, 1, 6)
						defer a.Release()
						want = array.NewSlice(want, 1, 6)
						defer want.Release()
					}
					got, err := decoded(context.Background(), mem, a)
					require.NoError(t, err)
					defer got.Release()
					require.True(t, arrow.TypeEqual(tc.dt, got.DataType()), "type %s", got.DataType())
					require.True(t, array.Equal(want, got), "want %v, got %v", want, got)
					require.Equal(t, want.NullN(), got.NullN())
				})
			}
		}
	}
}

// int32Indices builds int32 dictionary indices from vals with the rows in
// nulls null, keeping the value under each null (a garbage index there is
// allowed).
func int32Indices(mem memory.Allocator, vals []int32, nulls ...int) arrow.Array {
	data := memory.NewResizableBuffer(mem)
	defer data.Release()
	data.Resize(len(vals) * 4)
	copy(arrow.Int32Traits.CastFromBytes(data.Bytes()), vals)
	var valid *memory.Buffer
	if len(nulls) > 0 {
		valid = memory.NewResizableBuffer(mem)
		defer valid.Release()
		valid.Resize(int(bitutil.BytesForBits(int64(len(vals)))))
		bitutil.SetBitsTo(valid.Bytes(), 0, int64(len(vals)), true)
		for _, r := range nulls {
			bitutil.ClearBit(valid.Bytes(), r)
		}
	}
	d := array.NewData(arrow.PrimitiveTypes.Int32, len(vals), []*memory.Buffer{valid, data}, nil, len(nulls), 0)
	defer d.Release()
	return array.MakeFromData(d)
}

// A valid index outside the dictionary is an error that says which, not a
// panic or a value read from outside it; whatever lies under a null index
// is ignored.
func TestDecodedBadIndices(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dt      arrow.DataType
		values  string
		indices func(mem memory.Allocator) arrow.Array
		want    string // the decoded values, or "" for an error
		err     string
	}{
		{"past the end", arrow.BinaryTypes.String, `["a", "b"]`, func(mem memory.Allocator) arrow.Array {
			return int32Indices(mem, []int32{0, 1, 2})
		}, "", "index 2 at row 2 is out of range of the dictionary of 2 values"},
		{"negative", arrow.PrimitiveTypes.Int64, `[5, 6]`, func(mem memory.Allocator) arrow.Array {
			return int32Indices(mem, []int32{1, -1, 0}, 0)
		}, "", "index -1 at row 1 is out of range of the dictionary of 2 values"},
		{"negative int8", arrow.PrimitiveTypes.Int64, `[5, 6]`, func(mem memory.Allocator) arrow.Array {
			return fromJSON(t, mem, arrow.PrimitiveTypes.Int8, `[1, null, -128]`)
		}, "", "index -128 at row 2 is out of range of the dictionary of 2 values"},
		{"huge uint64", arrow.BinaryTypes.String, `["a", "b"]`, func(mem memory.Allocator) arrow.Array {
			return fromJSON(t, mem, arrow.PrimitiveTypes.Uint64, `[1, 1099511627776]`)
		}, "", "index 1099511627776 at row 1 is out of range of the dictionary of 2 values"},
		{"garbage under nulls", arrow.BinaryTypes.String, `["a", "b"]`, func(mem memory.Allocator) arrow.Array {
			return int32Indices(mem, []int32{1, math.MaxInt32, -5, 0}, 1, 2)
		}, `["b", null, null, "a"]`, ""},
		{"bool past the end", arrow.FixedWidthTypes.Boolean, `[true, false]`, func(mem memory.Allocator) arrow.Array {
			return int32Indices(mem, []int32{0, 7})
		}, "", "decode dictionary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			values := fromJSON(t, mem, tc.dt, tc.values)
			defer values.Release()
			idx := tc.indices(mem)
			defer idx.Release()
			a := array.NewDictionaryArray(&arrow.DictionaryType{IndexType: idx.DataType(), ValueType: tc.dt}, idx, values)
			defer a.Release()
			got, err := decoded(context.Background(), mem, a)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			defer got.Release()
			want := fromJSON(t, mem, tc.dt, tc.want)
			defer want.Release()
			require.True(t, array.Equal(want, got), "want %v, got %v", want, got)
		})
	}
}

// bigDict is a dictionary column of rows rows over card values of type dt
// (int64 or string) with index type index, every 50th index null.
func bigDict(t *testing.T, mem memory.Allocator, dt, index arrow.DataType, rows, card int) arrow.Array {
	vals := make([]string, card)
	for i := range vals {
		vals[i] = fmt.Sprintf("%d", i*31)
		if dt.ID() == arrow.STRING {
			vals[i] = `"v` + vals[i] + `"`
		}
	}
	values := fromJSON(t, mem, dt, "["+strings.Join(vals, ",")+"]")
	defer values.Release()
	ib := array.NewBuilder(mem, index)
	defer ib.Release()
	x := uint64(99)
	for i := range rows {
		x = x*6364136223846793005 + 1442695040888963407
		if i%50 == 0 {
			ib.AppendNull()
			continue
		}
		require.NoError(t, ib.AppendValueFromString(fmt.Sprint((x>>33)%uint64(card))))
	}
	idx := ib.NewArray()
	defer idx.Release()
	return array.NewDictionaryArray(&arrow.DictionaryType{IndexType: index, ValueType: dt}, idx, values)
}

// Decoding a long dictionary column looks at its context every pollRows
// rows (checking the indices, then gathering), where arrow-go's take kernel
// ran to the end without a look: cancelled after any number of looks, it
// fails with an error that wraps context.Canceled within a look, having
// released what it built.
func TestCancelDecodeDictionary(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dt, index arrow.DataType
	}{
		{"string int32", arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int32},
		{"string int16", arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int16},
		{"int64 uint8", arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Uint8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			a := bigDict(t, mem, tc.dt, tc.index, cancelRows, 200)
			defer a.Release()
			held := mem.CurrentAlloc()
			never := newPollCtx(math.MaxInt64)
			out, err := decoded(never, mem, a)
			require.NoError(t, err)
			out.Release()
			total := never.polls.Load()
			require.GreaterOrEqual(t, total, int64(2*cancelRows/pollRows), "looks at ctx every %d rows of each pass", pollRows)
			for live := range total {
				ctx := newPollCtx(live)
				out, err := decoded(ctx, mem, a)
				require.ErrorIs(t, err, context.Canceled, "cancelled after %d of %d looks", live, total)
				require.ErrorContains(t, err, "decode dictionary")
				require.Nil(t, out)
				require.Equal(t, int64(1), ctx.late(), "went on after ctx ended (cancelled after %d of %d looks)", live, total)
				require.Equal(t, held, mem.CurrentAlloc(), "leaked")
			}
		})
	}
}

// An operator whose first kernel decodes a dictionary key (group-by, sort,
// a join on a dictionary key) stops inside the decoding when its context
// ends there: the allocator cancels as the first of the decoded values'
// buffers is handed out, and the operator allocates no more than the rest
// of those buffers (allocated before the gather's first look) after it.
func TestCancelOperatorMidDecode(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := bigDict(t, mem, arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int32, 8*pollRows, 1000)
	defer d.Release()
	s := arrow.NewSchema([]arrow.Field{{Name: "d", Type: d.DataType(), Nullable: true}}, nil)
	rec := array.NewRecordBatch(s, []arrow.Array{d}, int64(d.Len()))
	tbl := array.NewTableFromRecords(s, []arrow.RecordBatch{rec})
	rec.Release()
	defer tbl.Release()
	values, err := decoded(context.Background(), mem, d)
	require.NoError(t, err)
	column := int64(values.Data().SizeInBytes())
	values.Release()
	held := mem.CurrentAlloc()
	for _, op := range []struct {
		name string
		run  func(ctx context.Context, f *Frame) error
	}{
		{"groupby", func(ctx context.Context, f *Frame) error { return releaseFrame(f.GroupBy("d").Agg(ctx, CountRows())) }},
		{"sort", func(ctx context.Context, f *Frame) error { return releaseFrame(f.Sort(ctx, Asc("d"))) }},
		{"join", func(ctx context.Context, f *Frame) error { return releaseFrame(f.Join(ctx, f, Inner, On("d"))) }},
	} {
		t.Run(op.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a := &cancelAlloc{Allocator: mem, at: 0, cancel: cancel} // cancels at the first allocation
			f, done := soloFrame(t, tbl, WithAllocator(a))
			defer done()
			err := op.run(ctx, f)
			require.ErrorIs(t, err, context.Canceled)
			require.NoError(t, checkWhere(err, 0, op.name))
			require.ErrorContains(t, err, "decode dictionary: context canceled")
			require.Less(t, a.after.Load(), column, "allocated after ctx ended: %v", err)
			require.Equal(t, held, mem.CurrentAlloc(), "leaked")
		})
	}
}
