package frame

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/arrowio"
	"github.com/fnmesh/fnmesh/collective"
)

// TestDecodeLimitsReadIPC: a Zstd-compressed IPC file whose buffers
// decompress to more than WithDecodeLimits allows is refused with
// arrowio.ErrDecodeLimit; under the defaults it reads back value for value.
func TestDecodeLimitsReadIPC(t *testing.T) {
	const rows = 1 << 16 // 512 KiB of int64 once decompressed
	path := filepath.Join(t.TempDir(), "zeros.arrow")
	mem := memory.NewGoAllocator()
	b := array.NewInt64Builder(mem)
	for i := range rows {
		b.Append(int64(i % 3))
	}
	col := b.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, rows)
	defer rec.Release()
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema), ipc.WithZstd())
	require.NoError(t, err)
	require.NoError(t, w.Write(rec))
	require.NoError(t, w.Close())
	require.Less(t, buf.Len(), rows, "the file is compressed")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))

	cases := []struct {
		name  string
		opts  []Option
		limit bool // refused with ErrDecodeLimit
	}{
		{"defaults", nil, false},
		{"negative keeps the defaults", []Option{WithDecodeLimits(-1, -1)}, false},
		{"raised", []Option{WithDecodeLimits(1<<20, 0)}, false},
		{"under what it decompresses to", []Option{WithDecodeLimits(100<<10, -1)}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				f, err := ReadIPC(ctx, c, []string{path}, append([]Option{WithAllocator(mem)}, tc.opts...)...)
				if tc.limit {
					require.ErrorIs(t, err, arrowio.ErrDecodeLimit)
					assert.Contains(t, err.Error(), "WithMaxDecodedBytes")
					return nil
				}
				require.NoError(t, err)
				defer f.Release()
				got := f.Table()
				require.EqualValues(t, rows, got.NumRows())
				i := 0
				for _, chunk := range got.Column(0).Data().Chunks() {
					for _, v := range chunk.(*array.Int64).Int64Values() {
						require.Equal(t, int64(i%3), v, "row %d", i)
						i++
					}
				}
				return nil
			})
		})
	}
}

// TestDecodeLimitsExchange: the operators' exchanges decode under the
// frame's limits: with LZ4 on the wire and a limit below what a message
// decompresses to, a shuffle fails on every rank (the receivers with
// arrowio.ErrDecodeLimit) and leaks nothing; under the defaults the same
// shuffle keeps every row.
func TestDecodeLimitsExchange(t *testing.T) {
	const p = 2
	parts := partitions(t, p, 7, genSpec{rows: 20000, keys: 50})
	for _, limited := range []bool{false, true} {
		errs := make([]error, p)
		counts := make([]int64, p)
		runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			opts := []Option{WithCompression(arrowio.LZ4)}
			if limited {
				opts = append(opts, WithDecodeLimits(1<<10, -1))
			}
			f, err := newFrame(t, c, mem, parts[c.Rank()], opts...)
			if err != nil {
				return err
			}
			defer f.Release()
			s, err := f.Shuffle(ctx, "k")
			errs[c.Rank()] = err
			if err == nil {
				counts[c.Rank()] = s.NumRows()
				s.Release()
			}
			return nil
		})
		if !limited {
			require.NoError(t, errs[0])
			require.NoError(t, errs[1])
			assert.EqualValues(t, len(parts[0])+len(parts[1]), counts[0]+counts[1])
			continue
		}
		limitHits := 0
		for r, err := range errs {
			require.Error(t, err, "rank %d", r)
			if errors.Is(err, arrowio.ErrDecodeLimit) {
				limitHits++
			}
		}
		assert.Positive(t, limitHits, "no rank failed with ErrDecodeLimit: %v", errs)
	}
}
