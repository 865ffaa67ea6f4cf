package frame

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// dictOf builds a dictionary array of strings (nil = null) with the given
// index type; the dictionary holds the values in order of first appearance.
func dictOf(mem memory.Allocator, index arrow.DataType, vals ...any) arrow.Array {
	dt := &arrow.DictionaryType{IndexType: index, ValueType: arrow.BinaryTypes.String}
	b := array.NewDictionaryBuilder(mem, dt).(*array.BinaryDictionaryBuilder)
	defer b.Release()
	for _, v := range vals {
		if v == nil {
			b.AppendNull()
		} else if err := b.AppendString(v.(string)); err != nil {
			panic(err)
		}
	}
	return b.NewArray()
}

func dictValues(a arrow.Array) []any {
	d := a.(*array.Dictionary)
	out := make([]any, a.Len())
	for i := range out {
		if a.IsValid(i) {
			out[i] = d.Dictionary().(*array.String).Value(d.GetValueIndex(i))
		}
	}
	return out
}

// Chunks of a dictionary column with different dictionaries and nulls are
// concatenated value for value, whatever the index type (arrow-go's
// Concatenate overwrote valid indices wider than a byte next to nulls).
func TestWholeColumnDictionaryChunks(t *testing.T) {
	first := []any{"a\x00", "", "\x00", "a", "b", "a\x00b", nil, "", "\x00", "a", nil, nil, "b"}
	second := []any{"b", nil, "a\x00b", "a", "", "\x00", nil, "c"}
	for _, index := range []arrow.DataType{arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Int16,
		arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Uint64} {
		for _, tc := range []struct {
			name   string
			lo, hi int64 // the slice of the first chunk
		}{{"whole", 0, int64(len(first))}, {"sliced", 5, 12}, {"no nulls", 0, 6}} {
			t.Run(fmt.Sprintf("%s/%s", index, tc.name), func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				a := dictOf(mem, index, first...)
				defer a.Release()
				as := array.NewSlice(a, tc.lo, tc.hi)
				defer as.Release()
				b := dictOf(mem, index, second...)
				defer b.Release()
				want := append(dictValues(as), dictValues(b)...)
				ch := arrow.NewChunked(a.DataType(), []arrow.Array{as, b})
				defer ch.Release()
				got, err := wholeColumn(mem, ch)
				require.NoError(t, err)
				defer got.Release()
				require.Equal(t, want, dictValues(got))
				require.Equal(t, slices.Index(want, nil) >= 0, got.NullN() > 0)
			})
		}
	}
}

// A dictionary column (int32 indices, as arrow-go's Parquet reader makes)
// keeps its values through the exchanges of distinct and group-by.
func TestDictionaryColumnAfterExchange(t *testing.T) {
	vals := []any{"a", "a\x00", "", "b", nil, "c", "\x00"}
	for _, p := range []int{2, 3, 5} {
		parts := make([][]any, p)
		want := map[string]int64{}
		for r := range p {
			for i := range 40 + 13*r {
				v := vals[(i*7+r*3+i/5)%len(vals)]
				parts[r] = append(parts[r], v)
				want[fmt.Sprintf("%q", v)]++
			}
		}
		t.Run(fmt.Sprint(p), func(t *testing.T) {
			got := map[string]int64{}
			var distinct []string
			runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				a := dictOf(mem, arrow.PrimitiveTypes.Int32, parts[c.Rank()]...)
				defer a.Release()
				s := arrow.NewSchema([]arrow.Field{{Name: "d", Type: a.DataType(), Nullable: true}}, nil)
				rec := array.NewRecordBatch(s, []arrow.Array{a}, int64(a.Len()))
				defer rec.Release()
				f, err := FromRecords(c, s, []arrow.RecordBatch{rec}, WithAllocator(mem))
				if err != nil {
					return err
				}
				defer f.Release()
				g, err := f.GroupBy("d").Agg(ctx, CountRows())
				if err != nil {
					return err
				}
				defer g.Release()
				rs, _, err := gatherRows(ctx, g)
				if err != nil {
					return err
				}
				for _, r := range rs {
					got[fmt.Sprintf("%q", r[0])] += r[1].(int64)
				}
				d, err := f.Distinct(ctx)
				if err != nil {
					return err
				}
				defer d.Release()
				rs, _, err = gatherRows(ctx, d)
				for _, r := range rs {
					distinct = append(distinct, fmt.Sprintf("%q", r[0]))
				}
				return err
			})
			require.Equal(t, want, got)
			slices.Sort(distinct)
			require.Equal(t, slices.Sorted(func(yield func(string) bool) {
				for k := range want {
					if !yield(k) {
						return
					}
				}
			}), distinct)
		})
	}
}
