package arrowio

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/assert"
)

// malformedColumns are arrays arrow-go builds without complaint whose offsets point past their
// values: a list whose last offset is past its child's end, and a list view whose second view is.
func malformedColumns() map[string]func() arrow.ArrayData {
	child := func() arrow.ArrayData {
		return array.NewData(arrow.PrimitiveTypes.Int32, 5, []*memory.Buffer{nil, memory.NewBufferBytes(make([]byte, 20))}, nil, 0, 0)
	}
	i32 := func(v ...int32) *memory.Buffer { return memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(v)) }
	return map[string]func() arrow.ArrayData{
		"list offsets past the values": func() arrow.ArrayData {
			c := child()
			defer c.Release()
			return array.NewData(arrow.ListOf(arrow.PrimitiveTypes.Int32), 2, []*memory.Buffer{nil, i32(0, 5, 100)}, []arrow.ArrayData{c}, 0, 0)
		},
		"list view past the values": func() arrow.ArrayData {
			c := child()
			defer c.Release()
			return array.NewData(arrow.ListViewOf(arrow.PrimitiveTypes.Int32), 2, []*memory.Buffer{nil, i32(0, 50), i32(5, 5)}, []arrow.ArrayData{c}, 0, 0)
		},
	}
}

// TestMalformedInputRefusedBySender: a table or batch whose arrays are malformed (offsets past the
// values, which arrow-go's array constructors do not check for lists) is refused by the sender with
// an error, through SendTable and a StreamWriter alike, and the receiver fails with it; nothing
// panics. Before, a StreamWriter's Write panicked on a list whose offsets pass its values (SendTable
// recovered), and both panicked encoding a list view whose views do.
func TestMalformedInputRefusedBySender(t *testing.T) {
	comms := newWorld(t, pipeLinks, 2)
	for name, build := range malformedColumns() {
		for _, writer := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/writer=%v", name, writer), func(t *testing.T) {
				mem := checkedMem(t)
				d := build()
				col := array.MakeFromData(d)
				d.Release()
				schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: col.DataType(), Nullable: true}}, nil)
				rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
				col.Release()
				defer rec.Release()
				tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
				defer tbl.Release()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				sent := make(chan error, 1)
				go func() {
					defer func() {
						if r := recover(); r != nil {
							sent <- fmt.Errorf("the sender panicked: %v", r)
						}
					}()
					if !writer {
						sent <- SendTable(ctx, comms[0], 1, 3, tbl, WithAllocator(mem))
						return
					}
					w, err := NewStreamWriter(ctx, comms[0], 1, 3, schema, WithAllocator(mem))
					if err == nil {
						if err = w.Write(rec); err == nil {
							err = w.Close()
						}
					}
					sent <- err
				}()
				got, err := RecvTable(ctx, comms[1], 0, 3, WithAllocator(mem))
				if got != nil {
					got.Release()
				}
				serr := <-sent
				assert.ErrorContains(t, serr, "malformed array data")
				assert.NotContains(t, fmt.Sprint(serr), "panicked")
				assert.ErrorContains(t, err, "the sender aborted the stream")
				assert.ErrorContains(t, err, "malformed array data")
			})
		}
	}
}
