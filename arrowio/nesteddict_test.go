package arrowio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/collective"
)

// dictOfDictTable is a table whose column "x" is a dictionary whose values are a dictionary (found by
// TestPropertyEveryPath): arrow-go's IPC writer writes it without complaint into a stream its
// reader fails on ("slice bounds out of range [:4294967300]"), so such a table used to leave the
// sender content and the receiver with an error that did not say why.
func dictOfDictTable(mem memory.Allocator) arrow.Table {
	sb := array.NewStringBuilder(mem)
	sb.AppendValues([]string{"a", "b", "c"}, nil)
	strs := sb.NewArray()
	sb.Release()
	ib := array.NewInt8Builder(mem)
	ib.AppendValues([]int8{0, 2, 1}, nil)
	inner := ib.NewArray()
	ib.AppendValues([]int8{1, 0, 2, 2}, []bool{true, true, false, true})
	outer := ib.NewArray()
	ib.Release()
	innerT := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	outerT := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: innerT}
	mid := array.NewDictionaryArray(innerT, inner, strs)
	col := array.NewDictionaryArray(outerT, outer, mid)
	for _, a := range []arrow.Array{strs, inner, outer, mid} {
		a.Release()
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: outerT, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 4)
	col.Release()
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// TestUnsendableDictionariesRefusedBySender: dictionaries that arrow-go's IPC cannot read back (see
// sendableSchema) are refused by the sender, with an error naming the column and why, on every rank,
// and the communicator stays usable.
func TestUnsendableDictionariesRefusedBySender(t *testing.T) {
	i32 := arrow.PrimitiveTypes.Int32
	f := []arrow.Field{{Name: "f0", Type: i32, Nullable: true}}
	tables := []struct {
		name, why string
		build     func(mem memory.Allocator) arrow.Table
	}{
		{"dictionary of dictionary", "a dictionary whose values are a dictionary cannot travel", dictOfDictTable},
		{"dictionary of sparse union", "hold a union or a run-end encoded array", func(mem memory.Allocator) arrow.Table {
			return dictOfNested(mem, arrow.SparseUnionOf(f, []arrow.UnionTypeCode{0}), 1)
		}},
		{"dictionary of list of dense union", "hold a union or a run-end encoded array", func(mem memory.Allocator) arrow.Table {
			return dictOfNested(mem, arrow.ListOf(arrow.DenseUnionOf(f, []arrow.UnionTypeCode{4})), 2)
		}},
		{"dictionary of struct of run-end encoded", "hold a union or a run-end encoded array", func(mem memory.Allocator) arrow.Table {
			return dictOfNested(mem, arrow.StructOf(arrow.Field{Name: "r", Type: arrow.RunEndEncodedOf(i32, arrow.BinaryTypes.String), Nullable: true}), 3)
		}},
		{"dictionary of uuid", "extension type", func(mem memory.Allocator) arrow.Table {
			return dictOfNested(mem, extensions.NewUUIDType(), 4)
		}},
	}
	for _, tt := range tables {
		t.Run(tt.name, func(t *testing.T) { refusedBySender(t, tt.build, tt.why) })
	}
}

func refusedBySender(t *testing.T, build func(mem memory.Allocator) arrow.Table, why string) {
	cases := []struct {
		name string
		run  func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) error
	}{
		{"send/recv", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) error {
			if c.Rank() == 0 {
				return SendTable(ctx, c, 1, 9, tbl, opts...)
			}
			got, err := RecvTable(ctx, c, 0, 9, opts...)
			if got != nil {
				got.Release()
			}
			return err
		}},
		{"shuffle", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) error {
			got, err := Shuffle(ctx, c, tbl, []string{tbl.Schema().Field(0).Name}, opts...)
			if got != nil {
				got.Release()
			}
			return err
		}},
		{"allgather", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) error {
			got, err := AllgatherTable(ctx, c, tbl, opts...)
			if got != nil {
				got.Release()
			}
			return err
		}},
		{"bcast", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) error {
			got, err := BcastTable(ctx, c, 0, tbl, opts...)
			if got != nil {
				got.Release()
			}
			return err
		}},
	}
	comms := newWorld(t, tcpLinks, 2)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := runRanks(t, comms, 20*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				tbl := build(mem)
				defer tbl.Release()
				err := tc.run(ctx, c, tbl, []Option{WithAllocator(mem)})
				if err == nil {
					return fmt.Errorf("rank %d: no error", c.Rank())
				}
				want := why
				if tc.name == "shuffle" && !strings.Contains(err.Error(), why) {
					want = "cannot hash" // keys of a union or run-end encoded type fail before anything is sent
				}
				if !assert.ErrorContains(t, err, want, "rank %d", c.Rank()) {
					return nil
				}
				// The communicator still works.
				ok := rankTable(t, mem, 5, 0, 0)
				defer ok.Release()
				got, err := AllgatherTable(ctx, c, ok, WithAllocator(mem))
				if err != nil {
					return err
				}
				got.Release()
				return nil
			})
			requireNoErrors(t, errs)
		})
	}
	t.Run("stream writer", func(t *testing.T) {
		tbl := build(memory.DefaultAllocator)
		defer tbl.Release()
		_, err := NewStreamWriter(context.Background(), comms[0], 1, 9, tbl.Schema())
		require.ErrorContains(t, err, why)
		require.ErrorContains(t, err, `column 0 (`)
	})
}

// dictOfNested is a one-column table of a dictionary whose values are vt (nested), its dictionary
// a slice (offset 1) of rows generated from seed.
func dictOfNested(mem memory.Allocator, vt arrow.DataType, seed uint64) arrow.Table {
	g := newPgen(mem, seed)
	whole := g.raw(vt, 5, 0.2)
	dict := array.NewSlice(whole, 1, 5)
	whole.Release()
	ib := array.NewInt16Builder(mem)
	ib.AppendValues([]int16{3, 0, 1, 1, 2, 0}, []bool{true, true, false, true, true, true})
	idx := ib.NewArray()
	ib.Release()
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: vt}
	col := array.NewDictionaryArray(dt, idx, dict)
	idx.Release()
	dict.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "d", Type: dt, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
	col.Release()
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// TestNestedDictionaryValuesTravel: dictionaries of nested values, sliced, at each rank count.
// A sliced list view in a dictionary made arrow-go's IPC writer fail (ipcSafe compacted list views
// in columns, not in the dictionaries it shares), and the abort that followed panicked building an
// empty batch (arrow-go has no builder for a dictionary of nested values).
func TestNestedDictionaryValuesTravel(t *testing.T) {
	i32 := arrow.PrimitiveTypes.Int32
	types := []arrow.DataType{
		arrow.ListViewOf(i32),
		arrow.LargeListViewOf(arrow.BinaryTypes.String),
		arrow.StructOf(arrow.Field{Name: "v", Type: arrow.ListViewOf(i32), Nullable: true}),
		arrow.ListOf(i32),
		arrow.StructOf(arrow.Field{Name: "a", Type: i32, Nullable: true}, arrow.Field{Name: "s", Type: arrow.BinaryTypes.StringView, Nullable: true}),
		arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float64),
		arrow.MapOf(arrow.BinaryTypes.String, i32),
	}
	comms := newWorld(t, tcpLinks, 2)
	for k, vt := range types {
		t.Run(vt.String(), func(t *testing.T) {
			errs := runRanks(t, comms, 20*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				tbl := dictOfNested(mem, vt, uint64(k))
				defer tbl.Release()
				if c.Rank() == 0 {
					return SendTable(ctx, c, 1, 4, tbl, WithAllocator(mem), WithCompression(LZ4))
				}
				got, err := RecvTable(ctx, c, 0, 4, WithAllocator(mem))
				if err != nil {
					return err
				}
				defer got.Release()
				idx, ids := map[int64]rowRef{}, []int64(nil)
				return sameDecoded(got, tbl, idx, ids)
			})
			requireNoErrors(t, errs)
		})
	}
}

// sameDecoded compares two one-column tables row by row, dictionaries by their values.
func sameDecoded(got, want arrow.Table, _ map[int64]rowRef, _ []int64) error {
	if err := sameSchema(got.Schema(), want.Schema()); err != nil {
		return err
	}
	if got.NumRows() != want.NumRows() {
		return fmt.Errorf("%d rows, want %d", got.NumRows(), want.NumRows())
	}
	flat := func(t arrow.Table) (cols []arrow.Array, idx []int) {
		for _, ch := range t.Column(0).Data().Chunks() {
			for i := range ch.Len() {
				cols, idx = append(cols, ch), append(idx, i)
			}
		}
		return cols, idx
	}
	gc, gi := flat(got)
	wc, wi := flat(want)
	for r := range gc {
		if d := valueDiff(wc[r], wi[r], gc[r], gi[r]); d != "" {
			return fmt.Errorf("row %d: %s", r, d)
		}
	}
	return nil
}

// TestAbortWithNestedDictionaryColumn: a rank whose call fails (a key column that does not exist)
// sends an abort batch of its table's schema; with a dictionary of nested values in it, building that
// empty batch panicked (arrow-go's NewRecordBuilder: "unsupported value type for dictionary
// builder"). Every rank must get an error naming the cause instead.
func TestAbortWithNestedDictionaryColumn(t *testing.T) {
	comms := newWorld(t, tcpLinks, 2)
	errs := runRanks(t, comms, 20*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		tbl := dictOfNested(mem, arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int32, Nullable: true}), 3)
		defer tbl.Release()
		got, err := Shuffle(ctx, c, tbl, []string{"no such column"}, WithAllocator(mem))
		if got != nil {
			got.Release()
			return errors.New("no error")
		}
		if err == nil || !strings.Contains(err.Error(), "no such column") {
			return fmt.Errorf("want an error naming the missing key, got %v", err)
		}
		return nil
	})
	requireNoErrors(t, errs)
	// A stream writer aborted before it sent anything.
	errs = runRanks(t, comms, 20*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		tbl := dictOfNested(mem, arrow.ListOf(arrow.BinaryTypes.String), 4)
		defer tbl.Release()
		if c.Rank() == 0 {
			w, err := NewStreamWriter(ctx, c, 1, 6, tbl.Schema(), WithAllocator(mem))
			if err != nil {
				return err
			}
			return w.Abort(errors.New("gave up"))
		}
		got, err := RecvTable(ctx, c, 0, 6, WithAllocator(mem))
		if got != nil {
			got.Release()
		}
		if err == nil || !strings.Contains(err.Error(), "gave up") {
			return fmt.Errorf("want the sender's cause, got %v", err)
		}
		return nil
	})
	requireNoErrors(t, errs)
}

// TestCompactedDictionarySentOnce: a dictionary that ipcSafe compacts (it holds a list view) goes out
// once for a table cut into many messages, even when it holds floats (whose dictionaries the encoder
// re-sends whenever the dictionary object changes): the compacted copy is made once per dictionary.
func TestCompactedDictionarySentOnce(t *testing.T) {
	mem := checkedMem(t)
	tbl := dictOfNested(mem, arrow.ListViewOf(arrow.PrimitiveTypes.Float64), 7)
	defer tbl.Release()
	// the same chunk many times: one dictionary
	var chunks []arrow.Array
	for range 40 {
		chunks = append(chunks, tbl.Column(0).Data().Chunk(0))
	}
	ch := arrow.NewChunked(tbl.Schema().Field(0).Type, chunks)
	col := arrow.NewColumn(tbl.Schema().Field(0), ch)
	ch.Release()
	big := array.NewTable(tbl.Schema(), []arrow.Column{*col}, int64(40*tbl.NumRows()))
	col.Release()
	defer big.Release()
	cfg := newConfig([]Option{WithAllocator(mem), WithBatchBytes(64)})
	out := newOutStream(big, nil, &cfg, cfg.batchBytes, nil)
	var wire bytes.Buffer
	msgs := 0
	for b := out.nextChunk(); b != nil; b = out.nextChunk() {
		wire.Write(b)
		msgs++
	}
	out.close()
	require.NoError(t, out.localErr)
	require.Greater(t, msgs, 5)
	mr := ipc.NewMessageReader(bytes.NewReader(wire.Bytes()))
	defer mr.Release()
	dicts := 0
	for {
		m, err := mr.Message()
		if err != nil {
			break
		}
		if m.Type() == ipc.MessageDictionaryBatch {
			dicts++
		}
	}
	require.Equal(t, 1, dicts, "dictionary batches in %d messages", msgs)
	got, err := DecodeIPC(wire.Bytes(), WithAllocator(mem))
	require.NoError(t, err)
	defer got.Release()
	require.NoError(t, sameDecoded(got, big, nil, nil))
}

// TestCompactedDictionariesBounded: a stream of batches that each bring a new dictionary to compact
// keeps a bounded number of copies, and none once released.
func TestCompactedDictionariesBounded(t *testing.T) {
	mem := checkedMem(t)
	cfg := newConfig([]Option{WithAllocator(mem)})
	var enc *encoder
	for i := range 200 {
		tbl := dictOfNested(mem, arrow.ListViewOf(arrow.PrimitiveTypes.Int32), uint64(i))
		if enc == nil {
			var err error
			enc, err = newEncoder(tbl.Schema(), &cfg)
			require.NoError(t, err)
		}
		tr := array.NewTableReader(tbl, -1)
		require.True(t, tr.Next())
		_, err := enc.batch(tr.RecordBatch(), false)
		tr.Release()
		tbl.Release()
		require.NoError(t, err)
		require.LessOrEqual(t, len(enc.compacted), maxCompactedDicts+1)
	}
	enc.release()
	require.Empty(t, enc.compacted)
}
