package arrowio

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/collective"
)

// skewedTable is a one-column table (of a key column "k" and a column "v" of type dt) whose row i
// holds a value of size(i) bytes (a string or binary of that length; for a list, that many bytes in
// strings of at most 100). A row's values are the letter of its row, so that the rows differ.
func skewedTable(t *testing.T, mem memory.Allocator, dt arrow.DataType, rows int, size func(i int) int) arrow.Table {
	schema := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64}, {Name: "v", Type: dt, Nullable: true}}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := range rows {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		s := strings.Repeat(string(rune('a'+i%26)), size(i))
		switch vb := b.Field(1).(type) {
		case *array.StringBuilder:
			vb.Append(s)
		case *array.LargeStringBuilder:
			vb.Append(s)
		case *array.BinaryBuilder: // binary and large binary
			vb.Append([]byte(s))
		case *array.StringViewBuilder:
			vb.Append(s)
		case *array.ListBuilder:
			vb.Append(true)
			sb := vb.ValueBuilder().(*array.StringBuilder)
			for len(s) > 0 {
				k := min(len(s), 100)
				sb.Append(s[:k])
				s = s[k:]
			}
		default:
			t.Fatalf("no builder for %s", dt)
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// sentMessages sends tbl from rank 0 to rank 1 (with SendTable, or a StreamWriter writing its one
// batch) in messages of target bytes, receives the messages as they are, and returns each message's
// size and the rows it carried, and the table they decode to.
func sentMessages(t *testing.T, comms []*collective.Comm, mem memory.Allocator, tbl arrow.Table, writer bool, target int64) (sizes, rows []int64, got arrow.Table) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts := []Option{WithAllocator(mem), WithBatchBytes(target)}
	sent := make(chan error, 1)
	go func() {
		if !writer {
			sent <- SendTable(ctx, comms[0], 1, 6, tbl, opts...)
			return
		}
		w, err := NewStreamWriter(ctx, comms[0], 1, 6, tbl.Schema(), opts...)
		if err != nil {
			sent <- err
			return
		}
		tr := array.NewTableReader(tbl, -1)
		defer tr.Release()
		for tr.Next() {
			if err := w.Write(tr.RecordBatch()); err != nil {
				sent <- err
				return
			}
		}
		sent <- w.Close()
	}()
	dec := newDecoder(mem, defaultRecvLimits)
	defer dec.close()
	var recs []arrow.RecordBatch
	defer func() { releaseBatches(recs) }()
	for !dec.done() {
		msg, err := comms[1].Recv(ctx, 0, 6)
		require.NoError(t, err)
		require.NoError(t, dec.feed(memory.NewBufferBytes(msg)))
		got := dec.take()
		n := int64(0)
		for _, r := range got {
			n += r.NumRows()
		}
		recs = append(recs, got...)
		sizes, rows = append(sizes, int64(len(msg))), append(rows, n)
	}
	require.NoError(t, <-sent)
	require.NoError(t, dec.err)
	return sizes, rows, array.NewTableFromRecords(tbl.Schema(), recs)
}

// TestMessagesFollowRowSizes: a batch is cut into messages by the sizes of its rows, not by its
// bytes spread evenly over them, so that every message sent holds at most WithBatchBytes (and its
// IPC metadata) unless it carries a single row larger than that. Before, with skewed rows (one
// string of 8 MiB among 10,000 of 10 bytes; 100 of 100 KiB after 10,000 small ones), a message
// carried the large rows with thousands of others, or 100 large rows together: 10 times
// WithBatchBytes. Both senders are checked: SendTable (the collectives' path) and a StreamWriter.
// The rows arrive as they were.
func TestMessagesFollowRowSizes(t *testing.T) {
	const slack = 4 << 10 // IPC metadata, padding, the schema message before the first batch
	comms := newWorld(t, pipeLinks, 2)
	cases := []struct {
		name   string
		dt     arrow.DataType
		rows   int
		size   func(i int) int
		target int64
	}{
		{"one string of 8 MiB among 10,000 of 10 bytes", arrow.BinaryTypes.String, 10001, func(i int) int {
			if i == 5000 {
				return 8 << 20
			}
			return 10
		}, 1 << 20},
		{"100 binaries of 100 KiB after 10,000 of 10 bytes", arrow.BinaryTypes.Binary, 10100, func(i int) int {
			if i >= 10000 {
				return 100 << 10
			}
			return 10
		}, 1 << 20},
		{"large string, 50 rows of 40 KiB among small ones", arrow.BinaryTypes.LargeString, 20000, func(i int) int {
			if i%400 == 399 && i > 10000 {
				return 40 << 10
			}
			return 5
		}, 256 << 10},
		{"large binary, rows growing", arrow.BinaryTypes.LargeBinary, 2000, func(i int) int { return i * i / 400 }, 512 << 10},
		{"list of strings, 20 rows of 100 KB at the front", arrow.ListOf(arrow.BinaryTypes.String), 5020, func(i int) int {
			if i < 20 {
				return 100_000
			}
			return 30
		}, 256 << 10},
		{"string view, 100 rows of 50 KiB at the end", arrow.BinaryTypes.StringView, 10100, func(i int) int {
			if i >= 10000 {
				return 50 << 10
			}
			return 20
		}, 512 << 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkedMem(t)
			tbl := skewedTable(t, mem, tc.dt, tc.rows, tc.size)
			defer tbl.Release()
			for _, writer := range []bool{false, true} {
				sizes, rows, got := sentMessages(t, comms, mem, tbl, writer, tc.target)
				for m, size := range sizes {
					if size > tc.target+slack {
						assert.Equal(t, int64(1), rows[m], "writer %v: message %d of %d: %d bytes, over WithBatchBytes(%d), holds more than one row (sizes %v, rows %v)",
							writer, m, len(sizes), size, tc.target, sizes, rows)
					}
				}
				assert.True(t, array.TableEqual(tbl, got), "writer %v: the rows arrive as they were", writer)
				got.Release()
			}
		})
	}
}
