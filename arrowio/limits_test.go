package arrowio

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ipcStreamOf writes recs as one IPC stream with arrow-go's writer (opts: its compression).
func ipcStreamOf(t *testing.T, recs []arrow.RecordBatch, opts ...ipc.Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, append(opts, ipc.WithSchema(recs[0].Schema()))...)
	for _, r := range recs {
		require.NoError(t, w.Write(r))
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// int64Batch returns a batch of cols int64 columns ("c0", ...) of rows values each, value(c, i).
func int64Batch(mem memory.Allocator, cols, rows int, value func(c, i int) int64) arrow.RecordBatch {
	fields := make([]arrow.Field, cols)
	arrs := make([]arrow.Array, cols)
	for c := range cols {
		fields[c] = arrow.Field{Name: fmt.Sprintf("c%d", c), Type: arrow.PrimitiveTypes.Int64}
		b := array.NewInt64Builder(mem)
		b.Reserve(rows)
		for i := range rows {
			b.UnsafeAppend(value(c, i))
		}
		arrs[c] = b.NewArray()
		b.Release()
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, int64(rows))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}

// batchMeta returns the metadata of message msg of stream (0: the schema) and where in it its
// RecordBatch table lies, and where its body starts in stream. meta aliases stream.
func batchMeta(t *testing.T, stream []byte, msg int) (meta []byte, rb, bodyAt int) {
	t.Helper()
	var metas [][]byte
	var bodies []int
	_, err := walkMessages(stream, func(metaAt, metaLen, bodyAt, _ int) {
		metas = append(metas, stream[metaAt:metaAt+metaLen])
		bodies = append(bodies, bodyAt)
	})
	require.NoError(t, err)
	require.Less(t, msg, len(metas))
	meta = metas[msg]
	header := fbFieldAt(t, meta, int(binary.LittleEndian.Uint32(meta)), 2) // Message.header
	return meta, header + int(binary.LittleEndian.Uint32(meta[header:])), bodies[msg]
}

// sizePrefixes returns where in stream the 8-byte size of each non-empty buffer of its first record
// batch lies, and each buffer's length (its compressed bytes and the size).
func sizePrefixes(t *testing.T, stream []byte) (at []int, lengths []int64) {
	t.Helper()
	meta, rb, bodyAt := batchMeta(t, stream, 1)
	bufs := fbFieldAt(t, meta, rb, 2) // RecordBatch.buffers: Buffer{offset, length}
	vec := bufs + int(binary.LittleEndian.Uint32(meta[bufs:]))
	for i := range int(binary.LittleEndian.Uint32(meta[vec:])) {
		off := int(binary.LittleEndian.Uint64(meta[vec+4+16*i:]))
		n := int64(binary.LittleEndian.Uint64(meta[vec+4+16*i+8:]))
		if n > 0 {
			at, lengths = append(at, bodyAt+off), append(lengths, n)
		}
	}
	return at, lengths
}

// setRows sets the length of the record batch in message msg of stream, and of its first field node
// if it has one, to rows, in place.
func setRows(t *testing.T, stream []byte, msg int, rows int64) {
	t.Helper()
	meta, rb, _ := batchMeta(t, stream, msg)
	binary.LittleEndian.PutUint64(meta[fbFieldAt(t, meta, rb, 0):], uint64(rows)) // RecordBatch.length
	nodes := fbFieldAt(t, meta, rb, 1)
	vec := nodes + int(binary.LittleEndian.Uint32(meta[nodes:]))
	if binary.LittleEndian.Uint32(meta[vec:]) > 0 {
		binary.LittleEndian.PutUint64(meta[vec+4:], uint64(rows)) // FieldNode.length
	}
}

// watchedAllocator counts what is allocated through it and refuses (a panic, as LimitAllocator)
// anything above 64 MiB at once, so that a test whose check is broken fails instead of allocating
// what a hostile message claims.
type watchedAllocator struct {
	memory.Allocator
	calls, bytes atomic.Int64
}

func (a *watchedAllocator) Allocate(n int) []byte {
	a.count(n)
	return a.Allocator.Allocate(n)
}

func (a *watchedAllocator) Reallocate(n int, b []byte) []byte {
	a.count(n)
	return a.Allocator.Reallocate(n, b)
}

func (a *watchedAllocator) count(n int) {
	if n > 64<<20 {
		panic(fmt.Sprintf("watchedAllocator: %d bytes asked for", n))
	}
	a.calls.Add(1)
	a.bytes.Add(int64(n))
}

// The compressed buffers of one message are bounded in all: a message may decode to no more than
// WithMaxDecodedBytes, checked on what its buffers announce (rounded up to 64 bytes each, as
// arrow-go allocates them) before any is decompressed. A message that needs exactly the limit decodes
// to the values sent, bit for bit, with either codec; one byte less and it is refused, having
// allocated nothing.
func TestDecodedBytesLimit(t *testing.T) {
	mem := checkedMem(t)
	for _, shape := range []struct {
		cols, rows int
		need       int64 // bytes allocated to decompress into
	}{
		{4, 64 << 10, 4 * 512 << 10}, // 512 KiB a column
		{2, 1001, 2 * 8064},          // 8008 bytes a column, allocated as 8064
	} {
		rec := int64Batch(mem, shape.cols, shape.rows, func(c, i int) int64 { return int64((i*7 + c) % 1000) })
		defer rec.Release()
		need := shape.need
		for _, codec := range []struct {
			name string
			opt  ipc.Option
		}{{"lz4", ipc.WithLZ4()}, {"zstd", ipc.WithZstd()}} {
			stream := ipcStreamOf(t, []arrow.RecordBatch{rec}, codec.opt)
			require.Less(t, int64(len(stream)), need, "the stream is compressed")
			for _, c := range []struct {
				name  string
				limit int64 // < 0: no option
				want  string
			}{
				{"default limit", -1, ""},
				{"exactly what it needs", need, ""},
				{"a byte short", need - 1, fmt.Sprintf("the stream: over the receive limit: its compressed buffers need %d bytes to decompress into, more than the %d one message may decode to (WithMaxDecodedBytes)", need, need-1)},
				{"zero", 0, "more than the 0 one message may decode to"},
			} {
				t.Run(fmt.Sprintf("%dx%d/%s/%s", shape.cols, shape.rows, codec.name, c.name), func(t *testing.T) {
					var opts []Option
					if c.limit >= 0 {
						opts = append(opts, WithMaxDecodedBytes(c.limit))
					}
					if c.want != "" {
						decodeRefused(t, mem, stream, c.want, opts...)
						return
					}
					watch := &watchedAllocator{Allocator: mem}
					var got arrow.Table
					var err error
					require.NotPanics(t, func() { got, err = DecodeIPC(stream, append(opts, WithAllocator(watch))...) })
					require.NoError(t, err)
					defer got.Release()
					require.Equal(t, rec.NumRows(), got.NumRows())
					for col := range int(rec.NumCols()) {
						chunks := got.Column(col).Data().Chunks()
						require.Len(t, chunks, 1)
						assert.Equal(t, rec.Column(col).Data().Buffers()[1].Bytes(), chunks[0].Data().Buffers()[1].Bytes(), "column %d", col)
					}
					assert.Equal(t, need, watch.bytes.Load(), "bytes decompressed into")
				})
			}
		}
	}
}

// A compressed buffer cannot announce more than its bytes can expand to with its codec (255 times
// for LZ4, 32768 for Zstd): such a size is damage, refused before anything is allocated for it,
// where it used to be allocated (up to 2 GiB a buffer) before decompression found the data short.
// A negative size other than -1 (sent uncompressed) is refused too.
func TestCompressedSizeAgainstCodec(t *testing.T) {
	mem := checkedMem(t)
	rec := int64Batch(mem, 1, 64<<10, func(_, i int) int64 { return int64(i % 1000) })
	defer rec.Release()
	for _, codec := range []struct {
		name  string
		opt   ipc.Option
		ratio int64
	}{{"LZ4", ipc.WithLZ4(), 255}, {"Zstd", ipc.WithZstd(), 32768}} {
		clean := ipcStreamOf(t, []arrow.RecordBatch{rec}, codec.opt)
		at, lengths := sizePrefixes(t, clean)
		require.Len(t, at, 1, "one non-empty buffer: the values (buffer 1; 0 is the empty validity bitmap)")
		most := codec.ratio * (lengths[0] - 8)
		for _, c := range []struct {
			name  string
			claim int64
			want  string
		}{
			{"one byte past the codec's bound", most + 1, fmt.Sprintf("IPC message 2 of the stream: record batch: compressed buffer 1 announces %d bytes from %d bytes of %s, which expand to %d at most", most+1, lengths[0]-8, codec.name, most)},
			{"negative", -2, "compressed buffer 1 announces -2 bytes"},
		} {
			t.Run(codec.name+"/"+c.name, func(t *testing.T) {
				stream := bytes.Clone(clean)
				binary.LittleEndian.PutUint64(stream[at[0]:], uint64(c.claim))
				decodeFails(t, mem, stream, c.want)
			})
		}
	}
}

// The codecs' bounds (maxExpansion) hold for the densest data their decoders accept, and are
// nearly reached: Zstd's RLE blocks (a 3-byte header and one byte for 128 KiB) reach 32574 times in
// a frame of 256 of them, and a block of 128 KiB + 1 is refused by the decoder arrow-go uses; LZ4,
// as arrow-go writes it (64 KiB blocks), compresses zeros 231 times, under 255, and they decode.
func TestMaxExpansionHolds(t *testing.T) {
	rleFrame := func(blocks, blockSize int) []byte {
		f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3} // magic; no flags; a 128 KiB window
		for k := range blocks {
			h := uint32(1<<1 | blockSize<<3) // an RLE block
			if k == blocks-1 {
				h |= 1 // the last
			}
			f = append(f, byte(h), byte(h>>8), byte(h>>16), 0x2a)
		}
		return f
	}
	dec, err := zstd.NewReader(nil)
	require.NoError(t, err)
	defer dec.Close()
	frame := rleFrame(256, 128<<10)
	require.NoError(t, dec.Reset(bytes.NewReader(frame)))
	out, err := io.ReadAll(dec)
	require.NoError(t, err)
	require.Equal(t, bytes.Repeat([]byte{0x2a}, 256*128<<10), out)
	ratio := float64(len(out)) / float64(len(frame))
	assert.Less(t, ratio, float64(maxExpansion[1]))
	assert.Greater(t, ratio, 0.99*float64(maxExpansion[1]))

	require.NoError(t, dec.Reset(bytes.NewReader(rleFrame(1, 128<<10+1))))
	_, err = io.ReadAll(dec)
	require.Error(t, err, "an RLE block over Block_Maximum_Size")

	// LZ4 through the decoder's own path: a column of zeros, as compressed as arrow-go makes it.
	mem := checkedMem(t)
	rec := int64Batch(mem, 1, 1<<20, func(_, _ int) int64 { return 0 })
	defer rec.Release()
	stream := ipcStreamOf(t, []arrow.RecordBatch{rec}, ipc.WithLZ4())
	_, lengths := sizePrefixes(t, stream)
	ratio = float64(8<<20) / float64(lengths[0]-8)
	assert.Less(t, ratio, float64(maxExpansion[0]))
	assert.Greater(t, ratio, 200.0)
	got, err := DecodeIPC(stream, WithAllocator(mem))
	require.NoError(t, err)
	defer got.Release()
	assert.Equal(t, rec.Column(0).Data().Buffers()[1].Bytes(), got.Column(0).Data().Chunk(0).Data().Buffers()[1].Bytes())
}

// The bound on decoded bytes covers everything arrow-go's reader allocates for a message, not only
// what its compressed buffers announce: an uncompressed delta dictionary, which the reader joins to
// the dictionary before it (an allocation of both), is refused under a limit below that, and decodes
// under the default.
func TestDecodedBytesLimitCoversAllocations(t *testing.T) {
	mem := checkedMem(t)
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{{Name: "d", Type: dt}}, nil)
	var recs []arrow.RecordBatch
	for _, vals := range [][]string{{"a", "b", "a"}, {"a", "b", "c", "d"}} { // the second adds a delta
		b := array.NewDictionaryBuilder(mem, dt).(*array.BinaryDictionaryBuilder)
		for _, v := range vals {
			require.NoError(t, b.AppendString(v))
		}
		arr := b.NewArray()
		b.Release()
		recs = append(recs, array.NewRecordBatch(schema, []arrow.Array{arr}, int64(arr.Len())))
		arr.Release()
	}
	defer releaseBatches(recs)
	stream := ipcStreamOf(t, recs, ipc.WithDictionaryDeltas(true))
	var want []string
	for _, r := range recs {
		tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{r})
		want = append(want, rowStrings(tbl)...)
		tbl.Release()
	}

	got, err := DecodeIPC(stream, WithAllocator(mem))
	require.NoError(t, err)
	assert.Equal(t, want, rowStrings(got))
	got.Release()

	require.NotPanics(t, func() { got, err = DecodeIPC(stream, WithAllocator(mem), WithMaxDecodedBytes(16)) })
	if got != nil {
		got.Release()
	}
	require.ErrorIs(t, err, ErrDecodeLimit)
	require.ErrorContains(t, err, "the stream: over the receive limit: decoding it would allocate more than 16 bytes (WithMaxDecodedBytes)")
	require.NotContains(t, err.Error(), "unknown error", "arrow-go's wrapping of what it recovered is dropped")
}

// A batch whose columns store nothing per row (a null column, or none at all) can claim any number
// of rows: a 232-byte message claiming 2^36 rows of nulls decoded, and HashPartition then asked for
// 512 GiB of hashes and the process died. A message may carry at most 8 rows a byte of it plus
// WithMaxDatalessRows; a batch with a column that stores something per row (a boolean: a bit) is
// bounded by its bytes and decodes however low the limit. Rows at the bound decode.
func TestDatalessRowsBounded(t *testing.T) {
	mem := checkedMem(t)
	nulls := array.NewNull(3)
	defer nulls.Release()
	nullSchema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.Null, Nullable: true}}, nil)
	nullRec := array.NewRecordBatch(nullSchema, []arrow.Array{nulls}, 3)
	defer nullRec.Release()
	noCols := array.NewRecordBatch(arrow.NewSchema(nil, nil), nil, 3)
	defer noCols.Release()
	bb := array.NewBooleanBuilder(mem)
	for i := range 1 << 20 {
		bb.Append(i%3 == 0)
	}
	bools := bb.NewArray()
	bb.Release()
	defer bools.Release()
	boolRec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "b", Type: arrow.FixedWidthTypes.Boolean}}, nil), []arrow.Array{bools}, 1<<20)
	defer boolRec.Release()

	nullLen := int64(len(ipcStreamOf(t, []arrow.RecordBatch{nullRec})))
	for _, c := range []struct {
		name  string
		rec   arrow.RecordBatch
		rows  int64 // 0: as sent
		limit int64 // < 0: no option
		want  string
	}{
		{"null column, 2^36 rows", nullRec, 1 << 36, -1, fmt.Sprintf("the stream: over the receive limit: a record batch of 68719476736 rows, where the message's %d bytes (%d received, 0 decompressed) leave room for %d more: 8 rows a byte and 268435456 rows without data (WithMaxDatalessRows)", nullLen, nullLen, 8*nullLen+1<<28)},
		{"no columns, 2^40 rows", noCols, 1 << 40, -1, "a record batch of 1099511627776 rows"},
		{"null column, 2^28 rows", nullRec, 1 << 28, -1, ""},
		{"null column at the bound", nullRec, 8*nullLen + 1000, 1000, ""},
		{"null column one past the bound", nullRec, 8*nullLen + 1001, 1000, fmt.Sprintf("a record batch of %d rows", 8*nullLen+1001)},
		{"booleans under a limit of 0", boolRec, 0, 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			stream := ipcStreamOf(t, []arrow.RecordBatch{c.rec})
			rows := c.rec.NumRows()
			if c.rows > 0 {
				setRows(t, stream, 1, c.rows)
				rows = c.rows
			}
			var opts []Option
			if c.limit >= 0 {
				opts = append(opts, WithMaxDatalessRows(c.limit))
			}
			if c.want != "" {
				decodeRefused(t, mem, stream, c.want, opts...)
				return
			}
			var got arrow.Table
			var err error
			require.NotPanics(t, func() { got, err = DecodeIPC(stream, append(opts, WithAllocator(mem))...) })
			require.NoError(t, err)
			defer got.Release()
			require.Equal(t, rows, got.NumRows())
			if c.rec == boolRec {
				want := array.NewTableFromRecords(boolRec.Schema(), []arrow.RecordBatch{boolRec})
				defer want.Release()
				assert.True(t, array.TableEqual(want, got))
			}
		})
	}
}

// Both budgets are per message: a stream whose messages each stay within them decodes whole, however
// far its total goes past them.
func TestLimitsPerMessage(t *testing.T) {
	mem := checkedMem(t)
	// Rows: two messages, each a batch of 2^20 nulls, under a bound of 2^20 rows without data.
	nulls := array.NewNull(3)
	defer nulls.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.Null, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{nulls}, 3)
	defer rec.Release()
	stream := ipcStreamOf(t, []arrow.RecordBatch{rec, rec})
	setRows(t, stream, 1, 1<<20)
	setRows(t, stream, 2, 1<<20)
	var ends []int
	_, err := walkMessages(stream, func(_, _, bodyAt, bodyLen int) { ends = append(ends, bodyAt+bodyLen) })
	require.NoError(t, err)
	dec := newDecoder(mem, recvLimits{decodedBytes: DefaultMaxDecodedBytes, datalessRows: 1 << 20})
	defer dec.close()
	require.NoError(t, dec.feed(memory.NewBufferBytes(bytes.Clone(stream[:ends[1]]))), "schema and first batch")
	require.NoError(t, dec.feed(memory.NewBufferBytes(bytes.Clone(stream[ends[1]:]))), "second batch and end")
	require.True(t, dec.eos)
	tbl := dec.table()
	assert.Equal(t, int64(2<<20), tbl.NumRows())
	tbl.Release()

	// Bytes: a compressed table sent in messages of 512 KiB, received under a limit of 1 MiB a
	// message, 2 MiB in all.
	comms := newWorld(t, pipeLinks, 2)
	big := int64Batch(mem, 4, 64<<10, func(c, i int) int64 { return int64((i*7 + c) % 1000) })
	defer big.Release()
	want := array.NewTableFromRecords(big.Schema(), []arrow.RecordBatch{big})
	defer want.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sent := make(chan error, 1)
	go func() {
		sent <- SendTable(ctx, comms[1], 0, 5, want, WithCompression(Zstd), WithBatchBytes(512<<10))
	}()
	got, err := RecvTable(ctx, comms[0], 1, 5, WithAllocator(mem), WithMaxDecodedBytes(1<<20))
	require.NoError(t, <-sent)
	require.NoError(t, err)
	defer got.Release()
	assert.Greater(t, len(got.Column(0).Data().Chunks()), 2, "several messages")
	assert.True(t, array.TableEqual(want, got))
}

// Through a communicator, a message over a limit fails the receive with an error that names the
// sender's rank, the message and the limit; nothing panics, the stream is read to its end, and the
// next stream on the same tag arrives whole.
func TestLimitsThroughComm(t *testing.T) {
	mem := checkedMem(t)
	// Three Zstd buffers of random values (incompressible: about 2 MiB each) that announce 2 GiB each,
	// as much as their bytes could expand to: 6 GiB for one message of 6 MiB.
	r := rand.New(rand.NewPCG(1, 2))
	random := int64Batch(mem, 3, 256<<10, func(_, _ int) int64 { return r.Int64() })
	defer random.Release()
	bomb := ipcStreamOf(t, []arrow.RecordBatch{random}, ipc.WithZstd())
	at, lengths := sizePrefixes(t, bomb)
	require.Len(t, at, 3)
	for i := range at {
		claim := int64(maxDecodedBuffer) &^ 63
		require.LessOrEqual(t, claim, maxExpansion[1]*(lengths[i]-8))
		binary.LittleEndian.PutUint64(bomb[at[i]:], uint64(claim))
	}
	nulls := array.NewNull(3)
	defer nulls.Release()
	nullRec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.Null, Nullable: true}}, nil), []arrow.Array{nulls}, 3)
	defer nullRec.Release()
	manyNulls := ipcStreamOf(t, []arrow.RecordBatch{nullRec})
	setRows(t, manyNulls, 1, 1<<36)

	small := int64Batch(mem, 2, 100, func(c, i int) int64 { return int64(c*1000 + i) })
	defer small.Release()
	after := array.NewTableFromRecords(small.Schema(), []arrow.RecordBatch{small})
	defer after.Release()

	comms := newWorld(t, pipeLinks, 2)
	for _, c := range []struct {
		name   string
		stream []byte
		want   string
	}{
		{"compressed buffers announcing 6 GiB", bomb, fmt.Sprintf("arrowio: stream from rank 1: message 1 of the stream: over the receive limit: its compressed buffers need %d bytes to decompress into, more than the 4294967296 one message may decode to (WithMaxDecodedBytes)", 3*(int64(maxDecodedBuffer)&^63))},
		{"2^36 rows of nulls", manyNulls, "arrowio: stream from rank 1: message 1 of the stream: over the receive limit: a record batch of 68719476736 rows"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sent := make(chan error, 1)
			go func() {
				err := comms[1].Send(ctx, 0, 9, c.stream)
				if err == nil {
					err = SendTable(ctx, comms[1], 0, 9, after)
				}
				sent <- err
			}()
			watch := &watchedAllocator{Allocator: mem}
			var got arrow.Table
			var err error
			require.NotPanics(t, func() { got, err = RecvTable(ctx, comms[0], 1, 9, WithAllocator(watch)) })
			if got != nil {
				got.Release()
			}
			require.ErrorIs(t, err, ErrDecodeLimit)
			require.ErrorContains(t, err, c.want)
			assert.Zero(t, watch.calls.Load(), "allocations for the refused message")

			next, err := RecvTable(ctx, comms[0], 1, 9, WithAllocator(mem))
			require.NoError(t, err)
			require.NoError(t, <-sent)
			assert.True(t, array.TableEqual(after, next))
			next.Release()
		})
	}
}

// decodeAllocator counts what one message allocates (growth, not frees), refuses what would pass the
// limit with an error wrapping ErrDecodeLimit, keeps its per-buffer bound, and starts again per
// message.
func TestDecodeAllocator(t *testing.T) {
	mem := checkedMem(t)
	a := &decodeAllocator{Allocator: mem, maxBuffer: 1000, limit: 1500}
	b := a.Allocate(600)
	b = a.Reallocate(900, b) // 300 more
	assert.Equal(t, int64(900), a.used.Load())
	refused := func(f func()) (err error) {
		defer func() {
			r := recover()
			if e, ok := r.(error); ok {
				err = e
			} else if r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		f()
		return nil
	}
	err := refused(func() { a.Allocate(601) })
	require.ErrorIs(t, err, ErrDecodeLimit)
	assert.EqualError(t, err, "over the receive limit: decoding it would allocate more than 1500 bytes (WithMaxDecodedBytes): 601 bytes more asked for, with 900 allocated")
	assert.Equal(t, int64(900), a.used.Load(), "a refusal takes nothing")
	c := a.Allocate(600) // up to the limit exactly
	err = refused(func() { a.Allocate(1001) })
	require.ErrorIs(t, err, ErrAllocationLimit)
	require.ErrorContains(t, err, "1001 bytes is outside the limit of 0..1000")
	a.Free(b)
	a.Free(c)
	a.reset()
	c = a.Allocate(1000)
	a.Free(c)
	assert.Equal(t, int64(1000), a.used.Load())
	assert.Equal(t, int64(math.MaxInt64), rowAllowance(math.MaxInt64/4, 0, 1))
	assert.Equal(t, int64(8*100+5), rowAllowance(60, 40, 5))
}

// decodeRefused decodes stream with DecodeIPC under opts (with a watchedAllocator) and requires it
// refused with ErrDecodeLimit and an error containing want, without a panic or an allocation.
func decodeRefused(t *testing.T, mem memory.Allocator, stream []byte, want string, opts ...Option) {
	t.Helper()
	require.ErrorIs(t, decodeFails(t, mem, stream, want, opts...), ErrDecodeLimit)
}

// decodeFails decodes stream with DecodeIPC under opts (with a watchedAllocator), requires an error
// containing want, without a panic or an allocation, and returns the error.
func decodeFails(t *testing.T, mem memory.Allocator, stream []byte, want string, opts ...Option) error {
	t.Helper()
	watch := &watchedAllocator{Allocator: mem}
	var got arrow.Table
	var err error
	require.NotPanics(t, func() { got, err = DecodeIPC(stream, append(opts, WithAllocator(watch))...) })
	if got != nil {
		got.Release()
	}
	require.ErrorContains(t, err, want)
	assert.Zero(t, watch.calls.Load(), "allocations before the refusal")
	return err
}

// Columns that store nothing per value can claim billions of values below a batch's top level too:
// a dictionary of nulls, a list's values, a fixed-size list's N a row. Every field node of every
// batch, dictionary batches included, is held to the same bound as a batch's rows, before anything
// is decoded. Each of these, written by arrow-go's own writer, is refused under the default limits.
func TestFieldNodesBounded(t *testing.T) {
	mem := checkedMem(t)
	batchOf := func(name string, arr arrow.Array, rows int64) arrow.RecordBatch {
		defer arr.Release()
		schema := arrow.NewSchema([]arrow.Field{{Name: name, Type: arr.DataType(), Nullable: true}}, nil)
		return array.NewRecordBatch(schema, []arrow.Array{arr}, rows)
	}
	huge := array.NewNull(1 << 36) // allocates nothing
	defer huge.Release()

	idx := array.NewInt32Builder(mem)
	idx.AppendValues([]int32{0, 5, 1 << 30}, nil)
	indices := idx.NewArray()
	idx.Release()
	defer indices.Release()
	dictType := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.Null}
	dictRec := batchOf("d", array.NewDictionaryArray(dictType, indices, huge), 3)
	defer dictRec.Release()

	offsets := memory.NewBufferBytes(arrow.Int64Traits.CastToBytes([]int64{0, 1 << 36}))
	listData := array.NewData(arrow.LargeListOf(arrow.Null), 1, []*memory.Buffer{nil, offsets}, []arrow.ArrayData{huge.Data()}, 0, 0)
	listRec := batchOf("l", array.MakeFromData(listData), 1)
	listData.Release()
	defer listRec.Release()

	const n = math.MaxInt32 // the most a fixed-size list's size can be
	elems := array.NewNull(3 * n)
	fslData := array.NewData(arrow.FixedSizeListOf(n, arrow.Null), 3, []*memory.Buffer{nil}, []arrow.ArrayData{elems.Data()}, 0, 0)
	elems.Release()
	fslRec := batchOf("f", array.MakeFromData(fslData), 3)
	fslData.Release()
	defer fslRec.Release()

	for _, c := range []struct {
		name string
		rec  arrow.RecordBatch
		want string
	}{
		{"dictionary of 2^36 nulls", dictRec, "the stream: over the receive limit: IPC message 2, a dictionary batch: field node 0 holds 68719476736 values, where the message's"},
		{"large_list<null> of 2^36 values", listRec, "the stream: over the receive limit: IPC message 2, a record batch: field node 1 holds 68719476736 values"},
		{"fixed_size_list<null, 2^31-1>", fslRec, fmt.Sprintf("IPC message 2, a record batch: field node 1 holds %d values", 3*int64(n))},
	} {
		t.Run(c.name, func(t *testing.T) {
			stream := ipcStreamOf(t, []arrow.RecordBatch{c.rec})
			decodeRefused(t, mem, stream, c.want)
		})
	}
}

// Each field node is held to the bound on its own, not with the others: in deep nesting every level
// holds the values again (a struct 20 deep over 2^16 booleans has 21 nodes of 2^16 values, 2^16 bits
// of data), and such batches decode even with no rows allowed without data, as do a struct of
// lists of structs and a dictionary-encoded string column.
func TestFieldNodesOfNestedData(t *testing.T) {
	mem := checkedMem(t)
	const rows = 1 << 16
	bb := array.NewBooleanBuilder(mem)
	for i := range rows {
		bb.Append(i%3 == 0)
	}
	var deep arrow.Array = bb.NewArray()
	bb.Release()
	for range 20 {
		s, err := array.NewStructArray([]arrow.Array{deep}, []string{"s"})
		require.NoError(t, err)
		deep.Release()
		deep = s
	}
	defer deep.Release()

	// struct<l: list<struct<x: int64, b: bool>>>, three elements a row, and dictionary<int32, string>.
	xs := int64Batch(mem, 1, 3*rows, func(_, i int) int64 { return int64(i) })
	defer xs.Release()
	bb = array.NewBooleanBuilder(mem)
	for i := range 3 * rows {
		bb.Append(i%5 == 0)
	}
	flags := bb.NewArray()
	bb.Release()
	defer flags.Release()
	elems, err := array.NewStructArray([]arrow.Array{xs.Column(0), flags}, []string{"x", "b"})
	require.NoError(t, err)
	defer elems.Release()
	offs := make([]int32, rows+1)
	for i := range offs {
		offs[i] = int32(3 * i)
	}
	listData := array.NewData(arrow.ListOf(elems.DataType()), rows, []*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offs))}, []arrow.ArrayData{elems.Data()}, 0, 0)
	lists := array.MakeFromData(listData)
	listData.Release()
	defer lists.Release()
	outer, err := array.NewStructArray([]arrow.Array{lists}, []string{"l"})
	require.NoError(t, err)
	defer outer.Release()
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	db := array.NewDictionaryBuilder(mem, dt).(*array.BinaryDictionaryBuilder)
	for i := range rows {
		require.NoError(t, db.AppendString(fmt.Sprintf("v%d", i%50)))
	}
	dict := db.NewArray()
	db.Release()
	defer dict.Release()

	for _, c := range []struct {
		name string
		cols []arrow.Array
	}{
		{"struct 20 deep over booleans", []arrow.Array{deep}},
		{"struct of lists of structs, dictionary strings", []arrow.Array{outer, dict}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fields := make([]arrow.Field, len(c.cols))
			for i, col := range c.cols {
				fields[i] = arrow.Field{Name: fmt.Sprintf("c%d", i), Type: col.DataType()}
			}
			rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), c.cols, rows)
			defer rec.Release()
			want := array.NewTableFromRecords(rec.Schema(), []arrow.RecordBatch{rec})
			defer want.Release()
			stream := ipcStreamOf(t, []arrow.RecordBatch{rec})
			for _, limit := range []int64{0, -1} {
				got, err := DecodeIPC(stream, WithAllocator(mem), WithMaxDatalessRows(limit))
				require.NoError(t, err, "WithMaxDatalessRows(%d)", limit)
				assert.True(t, array.TableEqual(want, got), "WithMaxDatalessRows(%d)", limit)
				got.Release()
			}
		})
	}
}

// A delta dictionary batch adds to a dictionary of earlier messages, so each message's bound alone
// would let a stream of small messages grow a dictionary of nulls without end: what a dictionary's
// batches add since it was last replaced is bounded by the stream's bytes so far, 8 values a byte
// and WithMaxDatalessRows more. A second delta of 2^20 nulls, each within its message's bound, is
// refused; string dictionaries that grow by deltas over three messages decode with no rows allowed
// without data.
func TestDictionaryDeltasBounded(t *testing.T) {
	mem := checkedMem(t)
	// messages returns the stream of recs (a dictionary column that grows) cut into one chunk per
	// record batch (with the dictionary batch before it), and whether each dictionary batch is a delta.
	messages := func(recs []arrow.RecordBatch) (chunks [][]byte, deltas []bool) {
		stream := ipcStreamOf(t, recs, ipc.WithDictionaryDeltas(true))
		var ends []int
		_, err := walkMessages(stream, func(metaAt, metaLen, bodyAt, bodyLen int) {
			c, err := messageClaims(stream[metaAt:metaAt+metaLen], stream[bodyAt:bodyAt+bodyLen])
			require.NoError(t, err)
			switch c.what {
			case "dictionary batch":
				deltas = append(deltas, c.delta)
			case "record batch":
				ends = append(ends, bodyAt+bodyLen)
			}
		})
		require.NoError(t, err)
		ends[len(ends)-1] = len(stream) // the end-of-stream marker rides on the last
		start := 0
		for _, end := range ends {
			chunks = append(chunks, stream[start:end])
			start = end
		}
		return chunks, deltas
	}
	decodeChunks := func(chunks [][]byte, lim recvLimits) (int64, error) {
		dec := newDecoder(mem, lim)
		defer dec.close()
		for _, c := range chunks {
			if err := dec.feed(memory.NewBufferBytes(bytes.Clone(c))); err != nil {
				return 0, err
			}
		}
		tbl := dec.table()
		defer tbl.Release()
		return tbl.NumRows(), nil
	}

	nullDict := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.Null}
	schema := arrow.NewSchema([]arrow.Field{{Name: "d", Type: nullDict, Nullable: true}}, nil)
	ib := array.NewInt32Builder(mem)
	ib.AppendValues([]int32{0, 1, 2}, nil)
	indices := ib.NewArray()
	ib.Release()
	defer indices.Release()
	var recs []arrow.RecordBatch
	for k := range 3 { // 2^19 nulls, then two deltas of 2^19
		values := array.NewNull((k + 1) << 19)
		col := array.NewDictionaryArray(nullDict, indices, values)
		values.Release()
		recs = append(recs, array.NewRecordBatch(schema, []arrow.Array{col}, 3))
		col.Release()
	}
	defer releaseBatches(recs)
	chunks, deltas := messages(recs)
	require.Equal(t, []bool{false, true, true}, deltas)
	lim := recvLimits{decodedBytes: DefaultMaxDecodedBytes, datalessRows: 1 << 20}
	rows, err := decodeChunks(chunks[:2], lim)
	require.NoError(t, err, "one delta: the dictionary holds 2^20 values")
	assert.Equal(t, int64(6), rows)
	_, err = decodeChunks(chunks, lim)
	require.ErrorIs(t, err, ErrDecodeLimit)
	require.ErrorContains(t, err, "message 3 of the stream: over the receive limit: IPC message 1, a delta of dictionary 0: with it, the dictionary's batches since it was last replaced hold 1572864 values (their widest field nodes, summed), where the stream's")

	// Strings, one new value a row, so that every message adds a delta.
	strDict := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	strSchema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: strDict}}, nil)
	db := array.NewDictionaryBuilder(mem, strDict).(*array.BinaryDictionaryBuilder)
	defer db.Release()
	var strRecs []arrow.RecordBatch
	for k := range 3 {
		for i := range 1000 {
			require.NoError(t, db.AppendString(fmt.Sprintf("v%d", k*1000+i)))
		}
		arr := db.NewArray()
		strRecs = append(strRecs, array.NewRecordBatch(strSchema, []arrow.Array{arr}, int64(arr.Len())))
		arr.Release()
	}
	defer releaseBatches(strRecs)
	chunks, deltas = messages(strRecs)
	require.Equal(t, []bool{false, true, true}, deltas)
	rows, err = decodeChunks(chunks, recvLimits{decodedBytes: DefaultMaxDecodedBytes})
	require.NoError(t, err)
	assert.Equal(t, int64(3000), rows)
}

// A compressed buffer may announce no more than one buffer may take (maxDecodedBuffer, as arrow-go
// allocates it: rounded up to 64 bytes), even when the message's total stays within its budget: such
// a size is refused, naming the message, before anything is allocated, where it used to reach the
// allocator and come back as arrow-go's "unknown error" without the message or ErrDecodeLimit.
func TestCompressedBufferOverOneBuffer(t *testing.T) {
	mem := checkedMem(t)
	r := rand.New(rand.NewPCG(3, 4))
	random := int64Batch(mem, 1, 256<<10, func(_, _ int) int64 { return r.Int64() })
	defer random.Release()
	clean := ipcStreamOf(t, []arrow.RecordBatch{random}, ipc.WithZstd())
	at, lengths := sizePrefixes(t, clean)
	require.Len(t, at, 1)
	most := int64(maxDecodedBuffer) &^ 63 // the largest claim allocated within the bound
	require.LessOrEqual(t, most+1, maxExpansion[1]*(lengths[0]-8), "within what Zstd can expand to")
	require.Less(t, most+1, int64(DefaultMaxDecodedBytes), "within the message's budget")

	stream := bytes.Clone(clean)
	binary.LittleEndian.PutUint64(stream[at[0]:], uint64(most+1))
	decodeRefused(t, mem, stream, fmt.Sprintf("arrowio: decode IPC: IPC message 2 of the stream: over the receive limit: record batch: compressed buffer 1 announces %d bytes, more than the %d one buffer may decompress to", most+1, maxDecodedBuffer))
}

// The bound on rows counts the bytes a message's compressed buffers decompress to as well as those
// received: 2^20 booleans, all false, compress with Zstd to far fewer than 2^17 bytes, too few for
// their rows at 8 a byte, and decode with no rows allowed without data.
func TestDatalessRowsCountDecompressed(t *testing.T) {
	mem := checkedMem(t)
	bb := array.NewBooleanBuilder(mem)
	bb.AppendValues(make([]bool, 1<<20), nil)
	bools := bb.NewArray()
	bb.Release()
	defer bools.Release()
	rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "b", Type: arrow.FixedWidthTypes.Boolean}}, nil), []arrow.Array{bools}, 1<<20)
	defer rec.Release()
	stream := ipcStreamOf(t, []arrow.RecordBatch{rec}, ipc.WithZstd())
	require.Less(t, 8*int64(len(stream)), int64(1<<20), "received bytes alone leave no room for the rows")

	got, err := DecodeIPC(stream, WithAllocator(mem), WithMaxDatalessRows(0))
	require.NoError(t, err)
	defer got.Release()
	want := array.NewTableFromRecords(rec.Schema(), []arrow.RecordBatch{rec})
	defer want.Release()
	assert.True(t, array.TableEqual(want, got))
}

// arrowio's own senders stay within what its receivers accept under the default limits: a table
// whose columns store nothing per row (none at all, or nulls), of twice DefaultMaxDatalessRows rows
// and one more, far more than its messages' bytes account for, is cut into messages of at most that
// many (zero copy) and arrives whole, from senders of messages of DefaultBatchBytes and of whole
// batches alike. Before, it went out in one message and was refused.
func TestSendDatalessRowsWithinLimits(t *testing.T) {
	const rows = 2*DefaultMaxDatalessRows + 1
	nulls := array.NewNull(rows)
	defer nulls.Release()
	nullSchema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.Null, Nullable: true}}, nil)
	comms := newWorld(t, pipeLinks, 2)
	for _, c := range []struct {
		name string
		tbl  arrow.Table
	}{
		{"no columns", newTableRows(arrow.NewSchema(nil, nil), nil, rows)},
		{"a null column", array.NewTableFromSlice(nullSchema, [][]arrow.Array{{nulls}})},
	} {
		defer c.tbl.Release()
		require.Equal(t, int64(rows), c.tbl.NumRows())
		for _, batchBytes := range []int64{DefaultBatchBytes, 0} {
			t.Run(fmt.Sprintf("%s/WithBatchBytes(%d)", c.name, batchBytes), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				sent := make(chan error, 1)
				go func() { sent <- SendTable(ctx, comms[1], 0, 3, c.tbl, WithBatchBytes(batchBytes)) }()
				got, err := RecvTable(ctx, comms[0], 1, 3)
				require.NoError(t, <-sent)
				require.NoError(t, err)
				defer got.Release()
				assert.Equal(t, int64(rows), got.NumRows())
				assert.True(t, got.Schema().Equal(c.tbl.Schema()))
				if got.NumCols() > 0 { // the length only: a failure must not print 2^29 nulls
					assert.Equal(t, 3, len(got.Column(0).Data().Chunks()), "batches of at most DefaultMaxDatalessRows")
				}
			})
		}
	}
}

// A negative batch length or field node length is damage: the metadata check refuses it before
// arrow-go reads the batch (which would index or allocate with it), naming the message, without a
// panic or an allocation.
func TestNegativeLengthsRefused(t *testing.T) {
	mem := checkedMem(t)
	rec := int64Batch(mem, 2, 3, func(c, i int) int64 { return int64(10*c + i) })
	defer rec.Release()
	clean := ipcStreamOf(t, []arrow.RecordBatch{rec})

	// batchMeta returns where the record batch message's metadata starts in stream (the second
	// message: continuation marker, metadata length, metadata, body) and the flatbuffer position
	// of its RecordBatch table.
	batchMeta := func(stream []byte) (start, rb int) {
		off := 0
		for msg := 0; ; msg++ {
			require.Less(t, off+8, len(stream), "no record batch message")
			n := int(binary.LittleEndian.Uint32(stream[off+4:]))
			meta := stream[off+8 : off+8+n]
			root := fbDeref(meta, 0)
			if msg == 1 {
				return off + 8, fbDeref(meta, fbFieldPos(meta, root, 2))
			}
			body := 0 // bodyLength, absent when 0
			if at := fbFieldPos(meta, root, 3); at != 0 {
				body = int(binary.LittleEndian.Uint64(meta[at:]))
			}
			off += 8 + n + body
		}
	}
	for _, c := range []struct {
		name  string
		patch func(meta []byte, rb int)
		want  string
	}{
		{"batch length", func(meta []byte, rb int) {
			binary.LittleEndian.PutUint64(meta[fbFieldPos(meta, rb, 0):], uint64(math.MaxUint64-4)) // -5
		}, "record batch: length -5"},
		{"field node length", func(meta []byte, rb int) {
			nodes := fbDeref(meta, fbFieldPos(meta, rb, 1))
			binary.LittleEndian.PutUint64(meta[nodes+4+16:], uint64(1)<<63) // node 1
		}, "record batch: field node 1 of length -9223372036854775808"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stream := bytes.Clone(clean)
			start, rb := batchMeta(stream)
			c.patch(stream[start:], rb)
			decodeFails(t, mem, stream, c.want)
		})
	}
	// The unpatched stream decodes, so the refusals above are the patches'.
	got, err := DecodeIPC(clean, WithAllocator(mem))
	require.NoError(t, err)
	assert.Equal(t, int64(3), got.NumRows())
	got.Release()
}
