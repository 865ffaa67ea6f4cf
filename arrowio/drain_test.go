package arrowio

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/collective"
)

// eosLookalikeTable is a table a receiver refuses (a decimal of scale 39) in three batches of two
// rows, whose every message body ends with the eight bytes of the end-of-stream marker: its last
// column is an int64 whose last value in each batch is 0xffffffff (ff ff ff ff 00 00 00 00, little
// endian), and arrow-go's writer sends a buffer of less than 64 bytes whole, even for a slice.
func eosLookalikeTable(t *testing.T, mem memory.Allocator) arrow.Table {
	t.Helper()
	dt := &arrow.Decimal128Type{Precision: 38, Scale: 39}
	schema := arrow.NewSchema([]arrow.Field{{Name: "d", Type: dt}, {Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	var recs []arrow.RecordBatch
	for b := range 3 {
		db := array.NewDecimal128Builder(mem, dt)
		db.AppendValues([]decimal128.Num{decimal128.FromI64(int64(b)), decimal128.FromI64(7)}, nil)
		xb := array.NewInt64Builder(mem)
		xb.AppendValues([]int64{int64(b), 0xffffffff}, nil)
		d, x := db.NewArray(), xb.NewArray()
		db.Release()
		xb.Release()
		recs = append(recs, array.NewRecordBatch(schema, []arrow.Array{d, x}, 2))
		d.Release()
		x.Release()
	}
	defer releaseBatches(recs)
	return array.NewTableFromRecords(schema, recs)
}

// A receiver that refuses a stream part-way still reads it to its real end-of-stream marker, found by
// the messages' framing, not by the last eight bytes of a message that happen to look like one: a
// chunk whose last record batch body ended with ff ff ff ff 00 00 00 00 was taken for the end, the
// rest of the stream was left queued on its tag, and the next stream received on that tag read it
// (or, in an exchange, it stayed queued on the private communicator for good).
func TestRefusedStreamDrainedToItsEnd(t *testing.T) {
	t.Run("decoder", func(t *testing.T) {
		mem := checkedMem(t)
		bad := eosLookalikeTable(t, mem)
		defer bad.Release()
		cfg := newConfig([]Option{WithAllocator(mem), WithBatchBytes(1)})
		out := newOutStream(bad, nil, &cfg, cfg.batchBytes, nil)
		defer out.close()
		dec := newDecoder(mem, defaultRecvLimits)
		defer dec.close()
		var eos []bool
		for !out.done {
			chunk := out.nextChunk()
			err := dec.feed(memory.NewBufferBytes(append([]byte(nil), chunk...)))
			require.ErrorContains(t, err, "scale 39")
			eos = append(eos, dec.eos)
		}
		require.Greater(t, len(eos), 2, "chunks")
		want := make([]bool, len(eos))
		want[len(want)-1] = true // every chunk ends with the marker's bytes; only the last with the marker
		require.Equal(t, want, eos, "end of stream seen after each chunk")
	})

	t.Run("RecvTable", func(t *testing.T) {
		comms := newWorld(t, tcpLinks, 2)
		errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			good := rankTable(t, mem, 5, 0, 0)
			defer good.Release()
			if c.Rank() == 0 {
				bad := eosLookalikeTable(t, mem)
				defer bad.Release()
				if err := SendTable(ctx, c, 1, 9, bad, WithAllocator(mem), WithBatchBytes(1)); err != nil {
					return err
				}
				return SendTable(ctx, c, 1, 9, good, WithAllocator(mem))
			}
			got, err := RecvTable(ctx, c, 0, 9, WithAllocator(mem))
			if err == nil {
				got.Release()
				return fmt.Errorf("the refused stream was accepted")
			}
			if want := "scale 39"; !strings.Contains(err.Error(), want) {
				return fmt.Errorf("refused stream: %v, want an error containing %q", err, want)
			}
			got, err = RecvTable(ctx, c, 0, 9, WithAllocator(mem))
			if err != nil {
				return fmt.Errorf("the next stream on the tag: %w", err)
			}
			defer got.Release()
			return hasRows(got, allSchema, rankRows(t, 5, 0, 0))
		})
		requireNoErrors(t, errs)
	})

	t.Run("BcastTable", func(t *testing.T) {
		comms := newWorld(t, tcpLinks, 3)
		errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			var bad, good arrow.Table
			if c.Rank() == 0 {
				bad = eosLookalikeTable(t, mem)
				defer bad.Release()
				good = rankTable(t, mem, 5, 0, 0)
				defer good.Release()
			}
			got, err := BcastTable(ctx, c, 0, bad, WithAllocator(mem), WithBatchBytes(1))
			if c.Rank() == 0 { // the root sends what it has: its own table back
				if err != nil {
					return err
				}
				got.Release()
			} else {
				if err == nil {
					got.Release()
					return fmt.Errorf("the refused stream was accepted")
				}
				if want := "scale 39"; !strings.Contains(err.Error(), want) {
					return fmt.Errorf("refused stream: %v, want an error containing %q", err, want)
				}
			}
			got, err = BcastTable(ctx, c, 0, good, WithAllocator(mem))
			if err != nil {
				return fmt.Errorf("the next broadcast: %w", err)
			}
			defer got.Release()
			return hasRows(got, allSchema, rankRows(t, 5, 0, 0))
		})
		requireNoErrors(t, errs)
	})
}
