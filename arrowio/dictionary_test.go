package arrowio

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFloatDictionaryChanges: a column whose chunks have dictionaries of floating-point values that
// differ by less than arrow-go's ApproxEqual tolerance (1e-5), or only in the sign of a zero or the
// payload of a NaN, must arrive with every chunk's own values, bit for bit. arrow-go's IPC writer
// takes such a dictionary for the one it sent last and does not send it.
func TestFloatDictionaryChanges(t *testing.T) {
	negZero := math.Copysign(0, -1)
	nan1, nan2 := math.Float64frombits(0x7ff8000000000001), math.Float64frombits(0x7ff8000000000002)
	cases := []struct {
		name   string
		value  arrow.DataType
		chunks [][]float64 // each chunk's dictionary; its rows are 0, 1, ... in order
		nest   bool        // the dictionary column inside a struct
	}{
		{"float64 within 1e-5", arrow.PrimitiveTypes.Float64, [][]float64{{1, 2}, {1.000001, 2}}, false},
		{"float64 signed zero", arrow.PrimitiveTypes.Float64, [][]float64{{0, 5}, {negZero, 5}, {0, 5}}, false},
		{"float64 NaN payloads", arrow.PrimitiveTypes.Float64, [][]float64{{nan1}, {nan2}}, false},
		{"float32 within 1e-5", arrow.PrimitiveTypes.Float32, [][]float64{{0.5, 3}, {0.500001, 3}}, false},
		{"float16 signed zero", arrow.FixedWidthTypes.Float16, [][]float64{{0, 1}, {negZero, 1}}, false},
		{"in a struct", arrow.PrimitiveTypes.Float64, [][]float64{{7, 8}, {7.000002, 8}}, true},
		{"unchanged", arrow.PrimitiveTypes.Float64, [][]float64{{1, 2}, {1, 2}}, false},
	}
	for _, c := range cases {
		for _, batchBytes := range []int64{1, DefaultBatchBytes} { // a chunk per batch, or one chunk
			t.Run(fmt.Sprintf("%s/batch=%d", c.name, batchBytes), func(t *testing.T) {
				mem := checkedMem(t)
				tbl := floatDictTable(t, mem, c.value, c.chunks, c.nest)
				defer tbl.Release()
				var want []string
				for _, dict := range c.chunks {
					for _, v := range dict {
						want = append(want, floatBitsOf(c.value, v))
					}
				}
				stream := bytes.Join(encodeStream(t, tbl, WithAllocator(mem), WithBatchBytes(batchBytes)), nil)

				got, err := DecodeIPC(stream, WithAllocator(mem))
				require.NoError(t, err)
				assert.Equal(t, want, dictFloatBits(t, got), "arrowio's decoder")
				got.Release()

				rdr, err := ipc.NewReader(bytes.NewReader(stream), ipc.WithAllocator(mem))
				require.NoError(t, err)
				var recs []arrow.RecordBatch
				for rdr.Next() {
					rdr.RecordBatch().Retain()
					recs = append(recs, rdr.RecordBatch())
				}
				require.NoError(t, rdr.Err())
				rdr.Release()
				other := array.NewTableFromRecords(tbl.Schema(), recs)
				releaseBatches(recs)
				assert.Equal(t, want, dictFloatBits(t, other), "arrow-go's reader")
				other.Release()
			})
		}
	}
}

// encodeStream returns the chunks tbl travels as.
func encodeStream(t *testing.T, tbl arrow.Table, opts ...Option) [][]byte {
	cfg := newConfig(opts)
	out := newOutStream(tbl, nil, &cfg, cfg.batchBytes, nil)
	defer out.close()
	var chunks [][]byte
	for !out.done {
		chunks = append(chunks, bytes.Clone(out.nextChunk()))
	}
	require.NoError(t, out.localErr)
	return chunks
}

// floatDictTable builds a table of one dictionary<int32, value> column (in a struct with nest), one
// chunk per dictionary, whose rows are the dictionary's values in order.
func floatDictTable(t *testing.T, mem memory.Allocator, value arrow.DataType, dicts [][]float64, nest bool) arrow.Table {
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: value}
	field := arrow.Field{Name: "d", Type: dt, Nullable: true}
	if nest {
		field = arrow.Field{Name: "s", Type: arrow.StructOf(field), Nullable: true}
	}
	var chunks []arrow.Array
	for _, vals := range dicts {
		vb := array.NewBuilder(mem, value)
		for _, v := range vals {
			switch b := vb.(type) {
			case *array.Float64Builder:
				b.Append(v)
			case *array.Float32Builder:
				b.Append(float32(v))
			case *array.Float16Builder:
				b.Append(float16.New(float32(v)))
			}
		}
		dict := vb.NewArray()
		vb.Release()
		ib := array.NewInt32Builder(mem)
		for i := range vals {
			ib.Append(int32(i))
		}
		idx := ib.NewArray()
		ib.Release()
		var a arrow.Array = array.NewDictionaryArray(dt, idx, dict)
		idx.Release()
		dict.Release()
		if nest {
			s, err := array.NewStructArray([]arrow.Array{a}, []string{"d"})
			require.NoError(t, err)
			a.Release()
			a = s
		}
		chunks = append(chunks, a)
	}
	ch := arrow.NewChunked(field.Type, chunks)
	releaseArrays(chunks)
	schema := arrow.NewSchema([]arrow.Field{field}, nil)
	col := arrow.NewColumn(field, ch)
	ch.Release()
	defer col.Release()
	return array.NewTable(schema, []arrow.Column{*col}, -1)
}

func floatBitsOf(dt arrow.DataType, v float64) string {
	switch dt.ID() {
	case arrow.FLOAT32:
		return fmt.Sprintf("%#x", math.Float32bits(float32(v)))
	case arrow.FLOAT16:
		return fmt.Sprintf("%#x", float16.New(float32(v)).Uint16())
	}
	return fmt.Sprintf("%#x", math.Float64bits(v))
}

// dictFloatBits lists the bits of every row's value of floatDictTable's column.
func dictFloatBits(t *testing.T, tbl arrow.Table) []string {
	var out []string
	for _, chunk := range tbl.Column(0).Data().Chunks() {
		if s, ok := chunk.(*array.Struct); ok {
			chunk = s.Field(0)
		}
		d := chunk.(*array.Dictionary)
		for i := range d.Len() {
			j := d.GetValueIndex(i)
			switch v := d.Dictionary().(type) {
			case *array.Float64:
				out = append(out, fmt.Sprintf("%#x", math.Float64bits(v.Value(j))))
			case *array.Float32:
				out = append(out, fmt.Sprintf("%#x", math.Float32bits(v.Value(j))))
			case *array.Float16:
				out = append(out, fmt.Sprintf("%#x", v.Value(j).Uint16()))
			default:
				t.Fatalf("dictionary of %s", v.DataType())
			}
		}
	}
	return out
}
