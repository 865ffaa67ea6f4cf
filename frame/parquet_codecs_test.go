package frame

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// decodeOrPanic runs codec.Decode into a buffer of n bytes and returns what
// it returned or the error it panicked with, and how many bytes the heap
// grew by meanwhile.
func decodeOrPanic(codec compress.Codec, n int, src []byte) (out []byte, err error, allocated uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		out = codec.Decode(make([]byte, n), src)
	}()
	runtime.ReadMemStats(&after)
	return out, err, after.TotalAlloc - before.TotalAlloc
}

// zstdFrame is a Zstandard frame of RLE blocks, each of blockLen bytes of
// 'a', with a frame content size of fcs when fcs >= 0.
func zstdFrame(fcs int64, blocks, blockLen int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0xfd2fb528)
	if fcs >= 0 {
		b = append(b, 0xc0|0x20) // 8-byte content size, single segment
		b = binary.LittleEndian.AppendUint64(b, uint64(fcs))
	} else {
		b = append(b, 0x00, 0x58) // no content size; window descriptor (2^21 bytes)
	}
	for i := range blocks {
		h := blockLen<<3 | 1<<1 // RLE
		if i == blocks-1 {
			h |= 1
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 'a')
	}
	return b
}

// zstdStream compresses data with the codec's streaming writer, which
// writes no content size.
func zstdStream(t *testing.T, codec compress.Codec, data []byte) []byte {
	var buf bytes.Buffer
	w := codec.(compress.StreamingCodec).NewWriter(&buf)
	_, err := w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// The Snappy and Zstandard codecs the Parquet reader decompresses pages
// with decode sound data as before, bit for bit, and refuse data that claims
// more than the page holds instead of allocating what it claims.
func TestParquetCodecsAreBounded(t *testing.T) {
	snappy, err := compress.GetCodec(compress.Codecs.Snappy)
	require.NoError(t, err)
	zstd, err := compress.GetCodec(compress.Codecs.Zstd)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	page := make([]byte, 300<<10) // compressible, not trivially
	for i := range page {
		page[i] = byte(rng.IntN(16))
	}
	t.Run("sound", func(t *testing.T) {
		cases := []struct {
			name  string
			codec compress.Codec
			src   []byte
			want  []byte
		}{
			{"snappy", snappy, snappy.Encode(nil, page), page},
			{"snappy empty", snappy, snappy.Encode(nil, nil), nil},
			{"zstd", zstd, zstd.Encode(nil, page), page},
			{"zstd small", zstd, zstd.Encode(nil, page[:100]), page[:100]},
			{"zstd without content size", zstd, zstdStream(t, zstd, page), page},
			{"zstd rle", zstd, zstdFrame(-1, 3, 1000), bytes.Repeat([]byte("a"), 3000)},
			{"zstd rle with content size", zstd, zstdFrame(3000, 3, 1000), bytes.Repeat([]byte("a"), 3000)},
		}
		for _, c := range cases {
			out, err, _ := decodeOrPanic(c.codec, len(c.want), c.src)
			require.NoError(t, err, c.name)
			require.True(t, bytes.Equal(c.want, out), "%s: %d bytes out, want %d", c.name, len(out), len(c.want))
		}
	})
	t.Run("damaged", func(t *testing.T) {
		bigClaim := binary.AppendUvarint(nil, 1<<30)
		sn := snappy.Encode(nil, page[:1000])
		_, k := binary.Uvarint(sn)
		maxFCS := zstdFrame(0, 1, 10)
		copy(maxFCS[5:13], bytes.Repeat([]byte{0xff}, 8))
		// No content size, a window descriptor of 2^29 bytes and one raw
		// block of 2000 bytes: arrow-go's own streaming decoder allocated
		// 513 MiB of history for it.
		hugeWindow := append(binary.LittleEndian.AppendUint32(nil, 0xfd2fb528), 0x00, 0x98)
		h := 2000<<3 | 1 // raw, last
		hugeWindow = append(hugeWindow, byte(h), byte(h>>8), byte(h>>16))
		hugeWindow = append(hugeWindow, make([]byte, 2000)...)
		cases := []struct {
			name  string
			codec compress.Codec
			dst   int
			src   []byte
			want  string
		}{
			{"snappy claims 1 GiB", snappy, 1000, append(bigClaim, sn[k:]...), "claim to hold 1073741824 bytes"},
			{"snappy claims one byte too many", snappy, 999, sn, "more than the page's 999"},
			{"zstd content size 1 GiB", zstd, 3000, zstdFrame(1<<30, 3, 1000), "claim to hold 1073741824 bytes"},
			{"zstd content size 2^64-1", zstd, 3000, maxFCS, "claim to hold 18446744073709551615 bytes"},
			{"zstd blocks beyond the page", zstd, 1000, zstdFrame(-1, 100, 100000), "more than the page's 1000"},
			{"zstd not a frame", zstd, 1000, []byte("not zstd"), "no frame magic"},
			{"zstd truncated", zstd, 1000, zstdFrame(1000, 1, 1000)[:10], "truncated"},
			{"zstd window of 512 MiB", zstd, 1024, hugeWindow, "window"},
		}
		for _, c := range cases {
			_, err, allocated := decodeOrPanic(c.codec, c.dst, c.src)
			require.Less(t, allocated, uint64(16<<20), "%s: the heap grew by %d bytes", c.name, allocated)
			require.ErrorContains(t, err, c.want, c.name)
		}
	})
}

// Parquet files compressed with each codec read back as written (the
// schema too), and as arrow-go's own pqarrow.ReadTable reads them.
func TestReadParquetCodecs(t *testing.T) {
	mem := memory.NewGoAllocator()
	tbl := smallTable(mem)
	defer tbl.Release()
	want := rowsOf(tbl)
	for _, codec := range []compress.Compression{compress.Codecs.Uncompressed, compress.Codecs.Snappy, compress.Codecs.Zstd, compress.Codecs.Gzip, compress.Codecs.Brotli, compress.Codecs.Lz4Raw} {
		t.Run(codec.String(), func(t *testing.T) {
			var buf bytes.Buffer
			props := parquet.NewWriterProperties(parquet.WithCompression(codec))
			require.NoError(t, pqarrow.WriteTable(tbl, &buf, 2, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())))
			path := filepath.Join(t.TempDir(), "t.parquet")
			require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
			oracle, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(buf.Bytes()), parquet.NewReaderProperties(mem), pqarrow.ArrowReadProperties{}, mem)
			require.NoError(t, err)
			// pqarrow reads the data alike; frame gives back the schema
			// written (pqarrow's has "PARQUET:field_id"s on the nested
			// fields).
			require.Equal(t, want, rowsOf(oracle))
			wantSchema := tbl.Schema()
			oracle.Release()
			runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				f, err := ReadParquet(ctx, c, []string{path}, WithAllocator(mem))
				if err != nil {
					return err
				}
				defer f.Release()
				if !f.Schema().Equal(wantSchema) {
					return fmt.Errorf("schema %v, want %v", f.Schema(), wantSchema)
				}
				if got := rowsOf(f.Table()); fmt.Sprint(got) != fmt.Sprint(want) {
					return fmt.Errorf("rows %v, want %v", got, want)
				}
				return nil
			})
		})
	}
}

// heapAllocs is the number of bytes allocated on the heap so far.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// badIndexParquet is a Parquet file of a dictionary-encoded string column
// ("a" to "e", uncompressed) whose data page's index bit width is 24 instead
// of 3, and whose padding indices are 7: its first index reads as 16729736.
func badIndexParquet(t *testing.T) []byte {
	mem := memory.NewGoAllocator()
	b := array.NewStringBuilder(mem)
	defer b.Release()
	b.AppendValues([]string{"a", "b", "c", "d", "e"}, nil)
	col := b.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 5)
	defer rec.Release()
	tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithDictionaryDefault(true), parquet.WithCompression(compress.Codecs.Uncompressed))
	require.NoError(t, pqarrow.WriteTable(tbl, &buf, 5, props, pqarrow.NewArrowWriterProperties()))
	data := buf.Bytes()
	// The indices 0..4: bit width 3, one bit-packed group of 8 (header 3),
	// the values packed LSB first.
	var bits uint32
	for i := range uint32(5) {
		bits |= i << (3 * i)
	}
	indices := []byte{3, 3, byte(bits), byte(bits >> 8), byte(bits >> 16)}
	at := bytes.Index(data, indices)
	require.GreaterOrEqual(t, at, 0, "no dictionary indices 0..4 in the file")
	require.Equal(t, -1, bytes.Index(data[at+1:], indices), "the indices twice in the file")
	data[at] = 24
	data[at+4] = 0xff // the padding indices, unused with width 3
	return data
}

// Damaged claims in a Parquet file (found by FuzzReadParquet, and a bit
// width made wider) are errors, found before arrow-go allocates what they
// claim: a dictionary page claiming 101 million values in 15 bytes, a column
// chunk length of 500 MB in a 2 KB file, dictionary indices far outside
// their dictionary.
func TestReadParquetDamagedClaims(t *testing.T) {
	fromFile := func(name string) func(*testing.T) []byte {
		return func(t *testing.T) []byte {
			data, err := os.ReadFile(filepath.Join("testdata", "parquet", name))
			require.NoError(t, err)
			return data
		}
	}
	cases := []struct {
		name string
		data func(*testing.T) []byte
		want string // in the error; "" when the file reads
	}{
		{"dictionary count", fromFile("dictionary-count-claim.parquet"), "claims 101455920 values"},
		{"chunk length", fromFile("chunk-length-claim.parquet"), ""},
		{"index width flipped", fromFile("index-width-flip.parquet"), "dictionary index 4989461 outside the dictionary of 5 values"},
		{"index width 24", badIndexParquet, "dictionary index 16729736 outside the dictionary of 5 values"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.parquet")
			require.NoError(t, os.WriteFile(path, c.data(t), 0o644))
			runRanks(t, 1, func(ctx context.Context, comm *collective.Comm, mem memory.Allocator) error {
				before := heapAllocs()
				f, err := ReadParquet(ctx, comm, []string{path}, WithAllocator(mem))
				if grew := heapAllocs() - before; grew > 64<<20 {
					return fmt.Errorf("reading allocated %d MB", grew>>20)
				}
				switch {
				case c.want == "" && err != nil:
					return err
				case c.want == "":
					f.Release()
				case err == nil:
					f.Release()
					return fmt.Errorf("no error, want one saying %q", c.want)
				case !strings.Contains(err.Error(), c.want):
					return fmt.Errorf("error %q does not say %q", err, c.want)
				}
				return nil
			})
		})
	}
}
