// Package frame is fnmesh's distributed data frame: an Arrow table split
// across the ranks of a collective.Comm, one partition per rank, with the
// operators a data engineer expects (Shuffle, Join, GroupBy, Sort, Distinct,
// Rebalance, Filter, Select, Project, Head, Gather) and Parquet, Arrow IPC
// and CSV files to start and end a job with.
//
// It is the top library layer: collective links the ranks (functions joined
// by the rendezvous package, or in-process with collective.Local), arrowio
// moves Arrow tables between them and hash-partitions rows, and frame builds
// the relational operators on top. The heavy parts of arrow-go, the compute
// kernels and Parquet, are used here and nowhere below.
//
// Distributed operators are collective, as in MPI: every rank calls them in
// the same order with the same arguments, and each returns its rank's
// partition of the result. They follow Cylon's designs: a join hash-shuffles
// both sides on the keys and joins locally; a group-by pre-aggregates
// locally, shuffles the partial results and combines them; a sort samples
// splitters, exchanges ranges all-to-all and merges. The local kernels hash
// rows with arrowio.HashRows, the hash the shuffle partitions by, and take
// typed fast paths (a radix-partitioned hash join and group-by) for integer
// keys. A frame remembers the keys it is hash-partitioned by, so a join or
// group-by on them moves no data.
//
// Memory: frames and tables are reference counted. Release every frame you
// create or receive; operators never release their inputs. Each operator
// holds its input, its output, and transiently the exchanged partitions
// (about twice the data it moves). WithAllocator sets the allocator of
// everything an operator builds; the tests run every operator on
// memory.CheckedAllocator and assert that nothing leaks.
//
// Errors name the rank once: "frame: rank 3: sort: no column "x" ...".
// An error that comes from a collective call (directly or through arrowio)
// names the rank already, and frame then says only what it was doing:
// "frame: join: left: agree on the schema: collective: rank 3: allgather:
// context canceled" (see collective.NamesRank). A file is named once: an
// error of the operating system's names it already ("frame: rank 0: read
// csv: open /tmp/x.csv: no such file or directory").
//
// See docs/frame.md for the whole API, how each operator is distributed,
// and memory use.
package frame
