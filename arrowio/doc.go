// Package arrowio moves Apache Arrow tables and record batches between the ranks of a
// collective.Comm, and hash-partitions tables: the data layer under the distributed data-frame
// operators of package frame.
//
// # Wire format
//
// Every table or batch stream travels as a standard Arrow IPC stream: a schema message, dictionary
// batches, record batches, and the end-of-stream marker. Each IPC message is one message of the
// communicator, so the concatenated payloads are byte for byte an IPC stream that any Arrow
// implementation reads (ipc.NewReader in Go, pyarrow.ipc.open_stream, ...). The schema is sent once
// per stream; large record batches are cut into zero-copy slices of about DefaultBatchBytes
// (WithBatchBytes) so that a sender holds at most one encoded batch at a time and a receiver decodes
// each batch as it arrives, without copying its bytes again. Body buffers may be compressed with LZ4
// or Zstd (WithCompression); receivers need no option.
//
// # Operations
//
//   - SendTable / RecvTable, and NewStreamWriter / NewStreamReader for batch-at-a-time streams:
//     point to point, on a tag of the caller's choosing.
//   - BcastTable, GatherTable, AllgatherTable, AlltoallTables: the collectives, for tables; every rank
//     calls them in the same order. Tables whose schemas differ across ranks are an error that names
//     the rank.
//   - HashPartition splits a table into P parts by the hash of key columns (HashRows, PartitionOf);
//     Shuffle partitions by key, exchanges the parts all-to-all and returns this rank's rows. frame's
//     local hash join and group-by use HashRows so that they agree with the shuffle.
//
// # Memory
//
// Arrays this package builds are allocated from WithAllocator's allocator (memory.DefaultAllocator by
// default); received buffers that need no decompression are used in place. Every table and batch
// returned is owned by the caller, who must Release it. Inputs are never modified and are still owned
// by the caller after a call.
//
// arrowio imports only arrow-go's array, ipc and memory packages, never compute or Parquet, so that
// linking it stays cheap.
package arrowio
