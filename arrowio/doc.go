// Package arrowio moves Apache Arrow tables and record batches between the ranks of a
// collective.Comm, and hash-partitions tables: the data layer under the distributed data-frame
// operators of package frame, above the communicator of package collective.
//
// # Wire format
//
// Every table or batch stream travels as a standard Arrow IPC stream: a schema message, dictionary
// batches, record batches and the end-of-stream marker. The stream is cut into messages of the
// communicator at record-batch boundaries, about DefaultBatchBytes each (WithBatchBytes): a batch larger
// than that is cut into slices, one per message, where the sizes of its rows say (offsets give them:
// one row of 8 MiB among small ones goes alone, and no message holds more than DefaultBatchBytes of
// Arrow buffers unless it is one row larger than that); smaller consecutive batches share a message. Each
// message carries its batches and what precedes them in the stream (the schema before the first, a
// dictionary batch when a dictionary changes); the end-of-stream marker rides on the last. The
// payloads, concatenated in order, are byte for byte an IPC stream that any Arrow implementation reads
// (ipc.NewReader in Go, pyarrow.ipc.open_stream, ...). The schema is sent once per stream. Nothing is
// copied to send a message: it goes out in one vectored write of its parts, the IPC headers and
// metadata (made per message) and the Arrow buffers where they are (Comm.SendBuffers). A receiver
// decodes each message as it arrives, using the received buffers in place rather than copying them
// again. Body buffers may be compressed with LZ4 or Zstd (WithCompression); receivers need no option.
//
// # Operations
//
//   - SendTable / RecvTable, and NewStreamWriter / NewStreamReader for batch-at-a-time streams:
//     point to point, on a tag of the caller's choosing (Comm.SendBuffers / Comm.RecvFunc underneath).
//   - BcastTable, GatherTable, AllgatherTable, AlltoallTables: the collectives, for tables; every rank
//     calls them in the same order, as it does the communicator's own collectives. Gather, allgather
//     and all-to-all stream every table point to point, all pairs at once, on a duplicate of the
//     communicator that arrowio makes on first use (Comm.Split) and keeps with it, so that their
//     messages never match the caller's own: no round count to agree on, and a fast pair never waits
//     for a slow one. Broadcast runs in rounds of Comm.Bcast. Tables whose schemas differ across ranks
//     are an error (ErrSchemaMismatch) that names the rank.
//   - HashPartition splits a table into P parts by the hash of key columns (HashRows, PartitionOf) in
//     one pass per column (a part of a dictionary column gets only the entries its rows use when
//     they use at most half of them, so that p parts do not carry p copies of a large dictionary);
//     Shuffle partitions by key, exchanges the parts all-to-all and returns this
//     rank's rows. frame's local hash join and group-by use HashRows so that they agree with the
//     shuffle. ConcatTables joins tables without copying.
//   - DecodeIPC decodes an Arrow IPC stream or file held in memory with the checks every received
//     message gets (see Failures); ValidateTable runs the checks every received batch gets on a table
//     that came from elsewhere (frame's file readers use both). LimitAllocator wraps an allocator so
//     that one allocation above a bound panics (with ErrAllocationLimit), for readers of untrusted
//     input that run under a recover (the decoder of received messages and of DecodeIPC allocates
//     through one, and so do frame's Parquet and IPC readers).
//
// # Failures
//
// A rank that cannot send what it was given (a nil table, parts of different schemas, a key column
// that does not exist, a dictionary column arrow-go's IPC cannot read back: one whose values are a
// dictionary, of an extension type, or hold a union or a run-end encoded array; a row over
// WithMaxDatalessRows) sends a zero-row batch whose custom metadata carries its error, and keeps
// taking part, so every rank's call returns an error that names it (in a gather, the root's and its
// own: the other senders' calls only send) and the communicator stays usable:
// the rank that failed says who, then what, then the cause ("arrowio: rank 1: allgather: nil table";
// collective.NamesRank reports that it names the rank), the others name it as the sender
// ("arrowio: allgather: rank 1: the sender aborted the stream: nil table").
// A failure of the communicator itself (a dead peer, a cancelled context) ends the call on every rank,
// as collective's do. Received messages are checked before use: their flatbuffer metadata is verified,
// buffer sizes are bounded, and so is what one message may cost to decode (ErrDecodeLimit): the bytes
// its compressed buffers decompress to, in all (WithMaxDecodedBytes, 4 GiB by default; a size no
// codec could expand the buffer's bytes to is refused as damage before anything is allocated), and
// its rows, and the values of each column at any depth (a list's, a dictionary's), beyond 8 a byte
// of it, which only columns that hold nothing per value can claim (WithMaxDatalessRows, 2^28 by
// default; arrowio's senders cut what they send to stay within their own WithMaxDatalessRows, and
// refuse, as a failure to send, a single row over it, naming the row and the column, or a
// dictionary, naming the column: neither is ever cut, and receivers would refuse them); the
// schema's types are checked
// (decimal precision and scale), and every batch is validated (offsets, dictionary indices, view
// headers and prefixes, null counts against their bitmaps) before it is handed out, so malformed
// input is an error, never a crash in the caller. A receiver that refuses a stream still reads it to its end (found by the messages'
// framing), so the next stream on the tag, or the next collective, starts clean.
//
// # Memory
//
// Arrays this package builds are allocated from WithAllocator's allocator (memory.DefaultAllocator by
// default). Every table and batch returned is owned by the caller, who must Release it; inputs are
// never modified and stay the caller's. Returned tables share memory with the received messages and,
// where rows stayed on this rank, with the inputs.
//
// Messages are received into buffers of a process-wide cache (Comm.RecvFunc underneath): when the last
// array decoded from a message is released, its buffer is kept for the next message (SetReceiveCache
// bounds how much is kept; a buffer unused for two garbage collections goes back to the heap), so a long
// job reuses memory it has already touched instead of paying page faults and garbage collection for
// fresh memory on every message. Data read out of a returned array
// without a copy (a string from (*array.String).Value) is valid until the array is released, as arrow-go
// documents; test binaries (unless they run benchmarks) overwrite released receive buffers at once, so
// that a use after release fails a test.
//
// arrowio imports arrow-go's array, ipc and memory packages, never compute or Parquet, so that
// linking it stays cheap.
package arrowio
