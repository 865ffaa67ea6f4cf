package arrowio

import (
	"encoding/binary"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// encodeChunks encodes t as the chunks a stream of it travels as, framed for the fuzzer: each chunk
// preceded by its length (4 bytes, little endian).
func encodeChunks(t testing.TB, tbl arrow.Table, opts ...Option) []byte {
	cfg := newConfig(opts)
	out := newOutStream(tbl, nil, &cfg, cfg.batchBytes, nil)
	defer out.close()
	var framed []byte
	for !out.done {
		chunk := out.nextChunk()
		framed = binary.LittleEndian.AppendUint32(framed, uint32(len(chunk)))
		framed = append(framed, chunk...)
	}
	require.NoError(t, out.localErr)
	return framed
}

// FuzzDecoder feeds arbitrary chunk sequences to the stream decoder: whatever arrives, it must return
// an error or batches, never panic, and must let go of everything it holds.
func FuzzDecoder(f *testing.F) {
	schema := arrow.NewSchema(allTypes()[:36], nil) // every type but the struct (keeps seeds small)
	for i, opts := range [][]Option{nil, {WithCompression(LZ4), WithBatchBytes(512)}, {WithCompression(Zstd)}} {
		tbl := genTable(f, memory.DefaultAllocator, schema, genSpec{rows: 12, chunks: 2, card: 5, nulls: 0.3, seed: uint64(i)})
		f.Add(encodeChunks(f, tbl, opts...))
		tbl.Release()
	}
	// The types after those: the struct, unions, run-end encoded, list views, an extension type and
	// the narrow decimals.
	rest := arrow.NewSchema(allTypes()[36:], nil)
	for i, opts := range [][]Option{nil, {WithCompression(LZ4), WithBatchBytes(512)}} {
		tbl := genTable(f, memory.DefaultAllocator, rest, genSpec{rows: 10, chunks: 2, card: 4, nulls: 0.3, seed: uint64(10 + i)})
		f.Add(encodeChunks(f, tbl, opts...))
		tbl.Release()
	}
	f.Add([]byte{8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, framed []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		dec := decodeFramed(mem, framed)
		if dec.err == nil && dec.eos && dec.schema() != nil {
			tbl := dec.table()
			if tbl.NumRows() <= 1<<12 { // a few bytes can declare a billion rows of nulls
				rows := rowStrings(tbl) // the decoded arrays must be readable
				// and what was accepted must travel again: encoded as a sender
				// would (a rank forwards what it received), it decodes to the
				// same rows.
				again := decodeFramed(mem, encodeChunks(t, tbl))
				if again.err != nil || !again.eos {
					t.Fatalf("re-encoded stream of an accepted one: eos %v, %v", again.eos, again.err)
				}
				tbl2 := again.table()
				require.Equal(t, rows, rowStrings(tbl2), "rows after re-encoding")
				tbl2.Release()
				again.close()
			}
			tbl.Release()
		}
		failed := dec.err != nil
		dec.close()
		if !failed {
			// On malformed input arrow-go's reader can drop a buffer without releasing it (its
			// decompression error path): the garbage collector takes it, but a checked allocator
			// counts it. Everything is accounted for when decoding succeeded.
			mem.AssertSize(t, 0)
		}
	})
}

// decodeFramed feeds a decoder the chunks of framed (see encodeChunks; a
// length past the end takes what is left), as they would arrive.
func decodeFramed(mem memory.Allocator, framed []byte) *decoder {
	// Keep the fuzzer's memory small: 64 MiB a buffer, 256 MiB a message.
	dec := newDecoder(mem, recvLimits{decodedBytes: 256 << 20, datalessRows: DefaultMaxDatalessRows})
	dec.mem.maxBuffer = 64 << 20
	for len(framed) >= 4 {
		n := int(binary.LittleEndian.Uint32(framed))
		framed = framed[4:]
		n = min(n, len(framed))
		chunk := append([]byte(nil), framed[:n]...)
		framed = framed[n:]
		if dec.feed(memory.NewBufferBytes(chunk)) != nil && dec.eos {
			break
		}
	}
	return dec
}
