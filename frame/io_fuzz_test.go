package frame

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/arrowio"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// fuzzReadLimit bounds one allocation of the readers under the fuzzer, which
// must not take much memory (every fuzz target runs in CI), and
// fuzzMaxAllocs all that reading one input may allocate: damaged claims must
// be refused, not allocated.
const (
	fuzzReadLimit = 64 << 20
	fuzzMaxAllocs = 1 << 30
)

// fuzzSeeds writes smallTable with WriteIPC and WriteParquet and returns
// the IPC file, the IPC stream and the Parquet file, as bytes.
func fuzzSeeds(f *testing.F) (ipcFile, ipcStream, pq []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	comms, err := collective.Local(ctx, 1)
	require.NoError(f, err)
	defer comms[0].Close()
	mem := memory.NewGoAllocator()
	tbl := smallTable(mem)
	defer tbl.Release()
	fr, err := New(comms[0], tbl, WithAllocator(mem))
	require.NoError(f, err)
	defer fr.Release()
	dir := f.TempDir()
	name, err := fr.WriteIPC(ctx, filepath.Join(dir, "s.arrow"))
	require.NoError(f, err)
	ipcFile, err = os.ReadFile(name)
	require.NoError(f, err)
	name, err = fr.WriteParquet(ctx, filepath.Join(dir, "s.parquet"))
	require.NoError(f, err)
	pq, err = os.ReadFile(name)
	require.NoError(f, err)
	return ipcFile, ipcStreamBytes(f, tbl), pq
}

// useTable reads every value of a table a reader returned, as a caller
// would: it must not panic.
func useTable(t arrow.Table) {
	for i := range int(t.NumCols()) {
		for _, a := range t.Column(i).Data().Chunks() {
			if a.Len() > 1<<12 { // a few bytes can declare a billion rows of nulls
				continue
			}
			for j := range a.Len() {
				_ = a.ValueStr(j)
			}
		}
	}
}

// FuzzReadIPC feeds arbitrary bytes to ReadIPC's decoder, as the contents
// of a file: it must return an error or a table that is safe to read, never
// panic or allocate without bound.
func FuzzReadIPC(f *testing.F) {
	file, stream, _ := fuzzSeeds(f)
	f.Add(file)
	f.Add(stream)
	f.Add([]byte("ARROW1\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		before := heapAllocs()
		tbl, err := decodeIPC(data, arrowio.LimitAllocator(mem, fuzzReadLimit))
		require.Less(t, heapAllocs()-before, uint64(fuzzMaxAllocs), "allocated while reading")
		if err != nil {
			return
		}
		useTable(tbl)
		tbl.Release()
		mem.AssertSize(t, 0)
	})
}

// FuzzReadParquet feeds arbitrary bytes to ReadParquet's reader, as the
// contents of a file: it must return an error or a table that is safe to
// read, never panic or allocate without bound.
func FuzzReadParquet(f *testing.F) {
	_, _, pq := fuzzSeeds(f)
	f.Add(pq)
	damaged, err := filepath.Glob(filepath.Join("testdata", "parquet", "*.parquet"))
	require.NoError(f, err)
	for _, name := range damaged {
		data, err := os.ReadFile(name)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		before := heapAllocs()
		tbl, err := readParquet(context.Background(), arrowio.LimitAllocator(mem, fuzzReadLimit), bytes.NewReader(data))
		require.Less(t, heapAllocs()-before, uint64(fuzzMaxAllocs), "allocated while reading")
		if err != nil {
			return
		}
		useTable(tbl)
		tbl.Release()
		mem.AssertSize(t, 0)
	})
}
