package frame

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// genSpec describes a random test table: an int64 key k (skewed: a few hot
// values hold most rows), a string key s, an int32 value w and a float64
// value v, with nulls in all of them.
type genSpec struct {
	rows     int
	keys     int     // distinct values of k and s
	skew     float64 // share of rows whose k is one of 3 hot values
	nullFrac float64 // share of nulls in every column
}

var genSchema = arrow.NewSchema([]arrow.Field{
	{Name: "k", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "w", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "v", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
}, nil)

// genRecord builds one random batch of genSchema.
func genRecord(t testing.TB, mem memory.Allocator, rng *rand.Rand, g genSpec) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, genSchema)
	defer b.Release()
	kb := b.Field(0).(*array.Int64Builder)
	sb := b.Field(1).(*array.StringBuilder)
	wb := b.Field(2).(*array.Int32Builder)
	vb := b.Field(3).(*array.Float64Builder)
	keys := max(g.keys, 1)
	for range g.rows {
		null := func() bool { return rng.Float64() < g.nullFrac }
		switch {
		case null():
			kb.AppendNull()
		case rng.Float64() < g.skew:
			kb.Append(int64(rng.IntN(3)) * 1000)
		default:
			kb.Append(int64(rng.IntN(keys)) - int64(keys/4))
		}
		if null() {
			sb.AppendNull()
		} else {
			sb.Append(fmt.Sprintf("s%03d", rng.IntN(keys)))
		}
		if null() {
			wb.AppendNull()
		} else {
			wb.Append(int32(rng.IntN(2000) - 1000))
		}
		if null() {
			vb.AppendNull()
		} else {
			vb.Append(math.Round(rng.NormFloat64()*1000) / 8) // exact in binary: sums do not depend on order
		}
	}
	return b.NewRecordBatch()
}

// cell returns the Go value of row i of a (nil for null): int64, uint64,
// float64, bool, string.
func cell(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return uint64(a.Value(i))
	case *array.Uint16:
		return uint64(a.Value(i))
	case *array.Uint32:
		return uint64(a.Value(i))
	case *array.Uint64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.String: // Value aliases the array's memory, which is reused once released
		return strings.Clone(a.Value(i))
	case *array.LargeString:
		return strings.Clone(a.Value(i))
	case *array.Binary:
		return string(a.Value(i))
	case *array.Timestamp:
		return int64(a.Value(i))
	case *array.Date32:
		return int64(a.Value(i))
	}
	return strings.Clone(a.ValueStr(i))
}

// row is one table row as Go values.
type row []any

// rowsOf reads a table into rows (in table order).
func rowsOf(t arrow.Table) []row {
	var out []row
	tr := array.NewTableReader(t, -1)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			r := make(row, rec.NumCols())
			for c := range r {
				r[c] = cell(rec.Column(c), i)
			}
			out = append(out, r)
		}
	}
	return out
}

func recordRows(rec arrow.RecordBatch) []row {
	t := array.NewTableFromRecords(rec.Schema(), []arrow.RecordBatch{rec})
	defer t.Release()
	return rowsOf(t)
}

// rowKey formats a row so that equal rows (nulls and NaNs included) format alike.
func rowKey(r row) string {
	b := make([]byte, 0, 16*len(r))
	for i, v := range r {
		if i > 0 {
			b = append(b, '|')
		}
		switch v := v.(type) {
		case nil:
			b = append(b, "<null>"...)
		case int64:
			b = append(b, 'i')
			b = strconv.AppendInt(b, v, 10)
		case uint64:
			b = append(b, 'u')
			b = strconv.AppendUint(b, v, 10)
		case float64:
			if v == 0 {
				v = 0 // -0 as 0
			}
			b = append(b, 'f')
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		case string:
			b = append(b, 's')
			b = strconv.AppendQuote(b, v)
		default:
			b = fmt.Appendf(b, "%T:%v", v, v)
		}
	}
	return string(b)
}

// sortedKeys returns the formatted rows in sorted order: a multiset that two
// results can be compared by.
func sortedKeys(rs []row) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = rowKey(r)
	}
	slices.Sort(out)
	return out
}

func requireSameRows(t *testing.T, want, got []row, msgs ...any) {
	t.Helper()
	require.Equal(t, len(want), len(got), msgs...)
	require.Equal(t, sortedKeys(want), sortedKeys(got), msgs...)
}
