package frame

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/arrowio"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// smallTable has a column of each kind the readers must cope with: int64
// with a null, string, dictionary<int32, string>, float64, bool and
// list<int64>; 5 rows.
func smallTable(mem memory.Allocator) arrow.Table {
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "cat", Type: dt, Nullable: true},
		{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true},
		{Name: "st", Type: arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, arrow.Field{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true}), Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 0, 4, 5}, []bool{true, true, false, true, true})
	b.Field(1).(*array.StringBuilder).AppendValues([]string{"one", "two", "", "four", "five"}, nil)
	for _, v := range []string{"a", "b", "a", "c", "a"} {
		if err := b.Field(2).(*array.BinaryDictionaryBuilder).AppendString(v); err != nil {
			panic(err)
		}
	}
	b.Field(3).(*array.Float64Builder).AppendValues([]float64{0.5, 1.5, 2.5, 3.5, 4.5}, nil)
	b.Field(4).(*array.BooleanBuilder).AppendValues([]bool{true, false, true, false, true}, nil)
	lb := b.Field(5).(*array.ListBuilder)
	for i := range 5 {
		lb.Append(true)
		for j := range i {
			lb.ValueBuilder().(*array.Int64Builder).Append(int64(j))
		}
	}
	sb := b.Field(6).(*array.StructBuilder)
	for i := range 5 {
		sb.Append(i != 2)
		sb.FieldBuilder(0).(*array.Int32Builder).Append(int32(i))
		sb.FieldBuilder(1).(*array.StringBuilder).Append(fmt.Sprint("v", i))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// readAndUse reads a frame with read and, when that works, reads every value
// of it and runs a sort and a group-by over it: a table that a reader
// returns must be safe to use. A panic is reported as an error.
func readAndUse(ctx context.Context, c *collective.Comm, path string, read func(context.Context, *collective.Comm, []string, ...Option) (*Frame, error)) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	f, rerr := read(ctx, c, []string{path})
	if rerr != nil {
		return false, nil
	}
	defer f.Release()
	for i := range int(f.Table().NumCols()) {
		for _, a := range f.Table().Column(i).Data().Chunks() {
			for i := range a.Len() {
				_ = a.ValueStr(i)
			}
		}
	}
	for _, op := range []func() (*Frame, error){
		func() (*Frame, error) { return f.Sort(ctx, Asc("id"), Desc("cat")) },
		func() (*Frame, error) { return f.GroupBy("cat", "s").Agg(ctx, Sum("x"), CountRows()) },
	} {
		if g, err := op(); err == nil {
			g.Release()
		}
	}
	return true, nil
}

// Every single-byte corruption of a small Arrow IPC file (file and stream
// format) and of a small Parquet file makes the reader return an error or a
// table that is safe to use: never a panic, never an attempt to allocate
// what a damaged length claims.
func TestReadCorruptedFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	comms, err := collective.Local(ctx, 1)
	require.NoError(t, err)
	c := comms[0]
	defer c.Close()
	mem := memory.NewGoAllocator()
	tbl := smallTable(mem)
	defer tbl.Release()
	f, err := New(c, tbl, WithAllocator(mem))
	require.NoError(t, err)
	defer f.Release()
	dir := t.TempDir()
	ipcFile, err := f.WriteIPC(ctx, filepath.Join(dir, "small.arrow"))
	require.NoError(t, err)
	pqFile, err := f.WriteParquet(ctx, filepath.Join(dir, "small.parquet"))
	require.NoError(t, err)
	streamFile := filepath.Join(dir, "small.arrows")
	require.NoError(t, os.WriteFile(streamFile, ipcStreamBytes(t, tbl), 0o644))

	formats := []struct {
		name, path string
		read       func(context.Context, *collective.Comm, []string, ...Option) (*Frame, error)
	}{
		{"ipc file", ipcFile, ReadIPC},
		{"ipc stream", streamFile, ReadIPC},
		{"parquet", pqFile, ReadParquet},
	}
	for _, fm := range formats {
		t.Run(fm.name, func(t *testing.T) {
			orig, err := os.ReadFile(fm.path)
			require.NoError(t, err)
			ok, err := readAndUse(ctx, c, fm.path, fm.read)
			require.NoError(t, err)
			require.True(t, ok, "the intact file")
			bad := filepath.Join(t.TempDir(), "bad"+filepath.Ext(fm.path))
			var tables, errs int
			for pos := range orig {
				for _, mask := range []byte{0xff} {
					data := append([]byte(nil), orig...)
					data[pos] ^= mask
					require.NoError(t, os.WriteFile(bad, data, 0o644))
					ok, err := readAndUse(ctx, c, bad, fm.read)
					require.NoError(t, err, "byte %d of %d xor %#x", pos, len(orig), mask)
					if ok {
						tables++
					} else {
						errs++
					}
				}
			}
			t.Logf("%s: %d bytes, %d corruptions read as a table, %d as an error", fm.name, len(orig), tables, errs)
		})
	}
}

// ipcStreamBytes is tbl in the Arrow IPC stream format.
func ipcStreamBytes(t testing.TB, tbl arrow.Table) []byte {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(tbl.Schema()))
	require.NoError(t, writeBatches(context.Background(), tbl, w.Write))
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// A reader's refusal by arrowio.LimitAllocator, recovered from arrow-go's
// panic, stays an error that errors.Is finds; other panics become errors
// that say what panicked.
func TestRecoverPanicKeepsTheError(t *testing.T) {
	read := func(f func()) (err error) {
		defer recoverPanic(&err, "parquet")
		f()
		return nil
	}
	err := read(func() { arrowio.LimitAllocator(memory.NewGoAllocator(), 10).Allocate(11) })
	require.ErrorIs(t, err, arrowio.ErrAllocationLimit)
	require.EqualError(t, err, "parquet: arrow-go panicked: arrowio: allocation refused: 11 bytes is outside the limit of 0..10 (damaged input?)")
	err = read(func() { panic("no dictionary") })
	require.EqualError(t, err, "parquet: arrow-go panicked: no dictionary")
	require.NoError(t, read(func() {}))
}
