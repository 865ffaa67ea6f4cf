package arrowio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/collective"
)

// Every operation over real communicators at 1..5 ranks, every type with nulls, compression on and
// off, small batches (many rounds), empty tables. Each rank rebuilds what the others sent from their
// seeds, so every comparison is against an independently built table.

var allSchema = arrow.NewSchema(allTypes(), nil)

type variant struct {
	name string
	rows int
	opts []Option
}

var variants = []variant{
	{"plain", 80, nil},
	{"lz4, small batches", 80, []Option{WithCompression(LZ4), WithBatchBytes(6 << 10)}},
	{"zstd", 80, []Option{WithCompression(Zstd)}},
	{"empty", 0, nil},
}

// rankTable is the table rank r contributes (part `to` of it, for all-to-all).
func rankTable(t testing.TB, mem memory.Allocator, rows, r, to int) arrow.Table {
	return genTable(t, mem, allSchema, genSpec{rows: rows + 7*r, chunks: 1 + (r+to)%3, card: 40, nulls: 0.2, seed: uint64(1000*r + to)})
}

// rankRows is rowStrings(rankTable(rows, r, to)), built once per process (the ranks of a test share
// it read-only).
func rankRows(t testing.TB, rows, r, to int) []string {
	key := [3]int{rows, r, to}
	if v, ok := rowsCache.Load(key); ok {
		return v.([]string)
	}
	tbl := rankTable(t, memory.DefaultAllocator, rows, r, to)
	defer tbl.Release()
	v, _ := rowsCache.LoadOrStore(key, rowStrings(tbl))
	return v.([]string)
}

var rowsCache sync.Map

// sameRows returns an error unless got has want's schema and rows, in order.
func sameRows(got, want arrow.Table) error {
	return hasRows(got, want.Schema(), rowStrings(want))
}

// hasRows returns an error unless got has schema and the rows w, in order.
func hasRows(got arrow.Table, schema *arrow.Schema, w []string) error {
	if got == nil {
		return errors.New("nil table")
	}
	if !got.Schema().Equal(schema) {
		return fmt.Errorf("schema: %s", schemaDiff(got.Schema(), schema))
	}
	g := rowStrings(got)
	if len(g) != len(w) {
		return fmt.Errorf("%d rows, want %d", len(g), len(w))
	}
	for i := range g {
		if g[i] != w[i] {
			return fmt.Errorf("row %d:\n got %s\nwant %s", i, g[i], w[i])
		}
	}
	return nil
}

func withMem(opts []Option, mem memory.Allocator) []Option {
	return append(slices.Clone(opts), WithAllocator(mem))
}

func TestSendRecvTable(t *testing.T) {
	for _, kind := range []linkKind{tcpLinks, pipeLinks} {
		for p := 1; p <= 3; p++ {
			for _, v := range variants {
				t.Run(fmt.Sprintf("%s/p=%d/%s", kind, p, v.name), func(t *testing.T) {
					comms := newWorld(t, kind, p)
					errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
						me, next, prev := c.Rank(), (c.Rank()+1)%p, (c.Rank()+p-1)%p
						tbl := rankTable(t, mem, v.rows, me, 0)
						defer tbl.Release()
						sent := make(chan error, 1)
						go func() { sent <- SendTable(ctx, c, next, 7, tbl, withMem(v.opts, mem)...) }()
						got, err := RecvTable(ctx, c, prev, 7, WithAllocator(mem))
						if serr := <-sent; serr != nil {
							return serr
						}
						if err != nil {
							return err
						}
						defer got.Release()
						return hasRows(got, allSchema, rankRows(t, v.rows, prev, 0))
					})
					requireNoErrors(t, errs)
				})
			}
		}
	}
}

// TestWireIsIPCStream reads what SendTable puts on the wire with nothing but arrow-go's own
// ipc.NewReader: the payloads of the messages, concatenated, are a standard IPC stream.
func TestWireIsIPCStream(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			comms := newWorld(t, tcpLinks, 2)
			errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				tbl := genTable(t, mem, allSchema, genSpec{rows: v.rows, chunks: 3, card: 40, nulls: 0.2, seed: 5})
				defer tbl.Release()
				if c.Rank() == 0 {
					return SendTable(ctx, c, 1, 3, tbl, withMem(v.opts, mem)...)
				}
				var wire bytes.Buffer
				msgs, largest := 0, 0
				for !bytes.HasSuffix(wire.Bytes(), eosMarker) {
					b, err := c.Recv(ctx, 0, 3)
					if err != nil {
						return err
					}
					wire.Write(b)
					msgs++
					largest = max(largest, len(b))
				}
				rdr, err := ipc.NewReader(&wire, ipc.WithAllocator(mem))
				if err != nil {
					return err
				}
				defer rdr.Release()
				var recs []arrow.RecordBatch
				for rdr.Next() {
					rec := rdr.RecordBatch()
					rec.Retain()
					recs = append(recs, rec)
				}
				if err := rdr.Err(); err != nil {
					return err
				}
				got := array.NewTableFromRecords(rdr.Schema(), recs)
				releaseBatches(recs)
				defer got.Release()
				cfg := newConfig(v.opts)
				if cfg.batchBytes < 1<<20 && (msgs < 2 || largest > 3*int(cfg.batchBytes)) {
					return fmt.Errorf("%d messages, the largest of %d bytes: the stream should travel in messages of about %d bytes", msgs, largest, cfg.batchBytes)
				}
				return sameRows(got, tbl)
			})
			requireNoErrors(t, errs)
		})
	}
}

func TestBcastTable(t *testing.T) {
	for p := 1; p <= 5; p++ {
		for _, v := range variants {
			t.Run(fmt.Sprintf("p=%d/%s", p, v.name), func(t *testing.T) {
				comms := newWorld(t, tcpLinks, p)
				root := p / 2
				errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
					want := rankTable(t, mem, v.rows, root, 0)
					defer want.Release()
					var in arrow.Table
					if c.Rank() == root {
						in = want
					}
					got, err := BcastTable(ctx, c, root, in, withMem(v.opts, mem)...)
					if err != nil {
						return err
					}
					defer got.Release()
					return sameRows(got, want)
				})
				requireNoErrors(t, errs)
			})
		}
	}
}

func TestGatherTable(t *testing.T) {
	for p := 1; p <= 5; p++ {
		for _, v := range variants {
			t.Run(fmt.Sprintf("p=%d/%s", p, v.name), func(t *testing.T) {
				comms := newWorld(t, tcpLinks, p)
				root := p - 1
				errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
					mine := rankTable(t, mem, v.rows, c.Rank(), 0)
					defer mine.Release()
					got, err := GatherTable(ctx, c, root, mine, withMem(v.opts, mem)...)
					if err != nil {
						return err
					}
					if c.Rank() != root {
						if got != nil {
							got.Release()
							return errors.New("a non-root got a table")
						}
						return nil
					}
					defer got.Release()
					return hasRows(got, allSchema, allRanks(t, v.rows, p))
				})
				requireNoErrors(t, errs)
			})
		}
	}
}

// allRanks is the rows of every rank's rankTable, in rank order.
func allRanks(t testing.TB, rows, p int) []string {
	var all []string
	for r := range p {
		all = append(all, rankRows(t, rows, r, 0)...)
	}
	return all
}

func TestAllgatherTable(t *testing.T) {
	for _, kind := range []linkKind{tcpLinks, pipeLinks} {
		for p := 1; p <= 5; p++ {
			for _, v := range variants {
				if kind == pipeLinks && v.name != "lz4, small batches" {
					continue
				}
				t.Run(fmt.Sprintf("%s/p=%d/%s", kind, p, v.name), func(t *testing.T) {
					comms := newWorld(t, kind, p)
					errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
						mine := rankTable(t, mem, v.rows, c.Rank(), 0)
						defer mine.Release()
						got, err := AllgatherTable(ctx, c, mine, withMem(v.opts, mem)...)
						if err != nil {
							return err
						}
						defer got.Release()
						return hasRows(got, allSchema, allRanks(t, v.rows, p))
					})
					requireNoErrors(t, errs)
				})
			}
		}
	}
}

func TestAlltoallTables(t *testing.T) {
	for _, kind := range []linkKind{tcpLinks, pipeLinks} {
		for p := 1; p <= 5; p++ {
			for _, v := range variants {
				if kind == pipeLinks && v.name != "lz4, small batches" {
					continue
				}
				t.Run(fmt.Sprintf("%s/p=%d/%s", kind, p, v.name), func(t *testing.T) {
					comms := newWorld(t, kind, p)
					errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
						me := c.Rank()
						parts := make([]arrow.Table, p)
						for j := range parts {
							if (me+j)%4 != 3 { // some parts nil: they send no rows
								parts[j] = rankTable(t, mem, v.rows, me, j)
							}
						}
						defer releaseTables(parts)
						got, err := AlltoallTables(ctx, c, parts, withMem(v.opts, mem)...)
						if err != nil {
							return err
						}
						defer releaseTables(got)
						if len(got) != p {
							return fmt.Errorf("%d results for %d ranks", len(got), p)
						}
						for j := range got {
							var want []string
							if (j+me)%4 != 3 {
								want = rankRows(t, v.rows, j, me)
							}
							if err := hasRows(got[j], allSchema, want); err != nil {
								return fmt.Errorf("from rank %d: %w", j, err)
							}
						}
						return nil
					})
					requireNoErrors(t, errs)
				})
			}
		}
	}
}

// TestShuffleOracle checks Shuffle against an oracle that knows every rank's input: rank r must end
// with exactly the rows (as a multiset) whose keys hash to r, and every row it holds must hash to r.
func TestShuffleOracle(t *testing.T) {
	fields := allTypes()
	keySets := [][]string{
		{fields[5].Name},                                   // int64
		{fields[13].Name, fields[20].Name},                 // string, date32
		{fields[32].Name, fields[30].Name, fields[9].Name}, // dictionary<string>, decimal128, uint64
	}
	for p := 1; p <= 5; p++ {
		for k, keys := range keySets {
			for _, v := range variants[:2] {
				t.Run(fmt.Sprintf("p=%d/keys%d/%s", p, k, v.name), func(t *testing.T) {
					comms := newWorld(t, tcpLinks, p)
					input := func(mem memory.Allocator, r int) arrow.Table {
						// Few distinct keys (skew) and nulls in keys.
						return genTable(t, mem, allSchema, genSpec{rows: 60 + 40*r, chunks: 2, card: 6, nulls: 0.1, seed: uint64(77 + r)})
					}
					keyIdx, err := KeyIndices(allSchema, keys)
					require.NoError(t, err)
					want := make([][]string, p) // the rows each rank must end with
					for r := range p {
						in := input(memory.DefaultAllocator, r)
						rows := rowStrings(in)
						parts, err := rowParts(in, keyIdx, p)
						in.Release()
						require.NoError(t, err)
						for i, part := range parts {
							want[part] = append(want[part], rows[i])
						}
					}
					errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
						me := c.Rank()
						mine := input(mem, me)
						defer mine.Release()
						got, err := Shuffle(ctx, c, mine, keys, withMem(v.opts, mem)...)
						if err != nil {
							return err
						}
						defer got.Release()
						if g, w := sorted(rowStrings(got)), sorted(want[me]); !slices.Equal(g, w) {
							for i := range g {
								if g[i] != w[i] {
									return fmt.Errorf("rank %d: first difference:\n got %s\nwant %s", me, g[i], w[i])
								}
							}
							return fmt.Errorf("rank %d holds %d rows, want %d (or different rows)", me, len(g), len(w))
						}
						parts, err := rowParts(got, keyIdx, p)
						if err != nil {
							return err
						}
						for i, part := range parts {
							if part != me {
								return fmt.Errorf("row %d belongs to rank %d", i, part)
							}
						}
						return nil
					})
					requireNoErrors(t, errs)
				})
			}
		}
	}
}

// rowParts returns the part of every row of t (by its key columns), hashing one row at a time.
func rowParts(t arrow.Table, keyIdx []int, p int) ([]int, error) {
	var out []int
	tr := array.NewTableReader(t, 1)
	defer tr.Release()
	h := make([]uint64, 1)
	for tr.Next() {
		rec := tr.RecordBatch()
		cols := make([]arrow.Array, len(keyIdx))
		for j, c := range keyIdx {
			cols[j] = rec.Column(c)
		}
		if err := HashRows(cols, h); err != nil {
			return nil, err
		}
		out = append(out, PartitionOf(h[0], p))
	}
	return out, nil
}

// otherSchema differs from allSchema in one column's type.
func otherSchema() *arrow.Schema {
	fields := allTypes()
	fields[4].Type = arrow.PrimitiveTypes.Float64
	return arrow.NewSchema(fields, nil)
}

// TestSchemaMismatch: a rank whose table has another schema makes the operation fail with an error
// that names it, on every rank that receives from it; afterwards the communicator still works.
func TestSchemaMismatch(t *testing.T) {
	const p, odd = 4, 2
	type op func(ctx context.Context, c *collective.Comm, tbl arrow.Table, mem memory.Allocator) (arrow.Table, error)
	ops := []struct {
		name    string
		run     op
		failing func(rank int) bool // which ranks see the error
	}{
		{"allgather", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, mem memory.Allocator) (arrow.Table, error) {
			return AllgatherTable(ctx, c, tbl, WithAllocator(mem))
		}, func(int) bool { return true }},
		{"gather", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, mem memory.Allocator) (arrow.Table, error) {
			return GatherTable(ctx, c, 0, tbl, WithAllocator(mem))
		}, func(r int) bool { return r == 0 }},
		{"alltoall", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, mem memory.Allocator) (arrow.Table, error) {
			parts := make([]arrow.Table, c.Size())
			for i := range parts {
				parts[i] = tbl
			}
			res, err := AlltoallTables(ctx, c, parts, WithAllocator(mem))
			if err != nil {
				return nil, err
			}
			defer releaseTables(res)
			return ConcatTables(res)
		}, func(int) bool { return true }},
		{"shuffle", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, mem memory.Allocator) (arrow.Table, error) {
			return Shuffle(ctx, c, tbl, []string{allSchema.Field(13).Name}, WithAllocator(mem))
		}, func(int) bool { return true }},
	}
	for _, tc := range ops {
		t.Run(tc.name, func(t *testing.T) {
			comms := newWorld(t, tcpLinks, p)
			errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				schema := allSchema
				if c.Rank() == odd {
					schema = otherSchema()
				}
				tbl := genTable(t, mem, schema, genSpec{rows: 30, chunks: 2, card: 5, nulls: 0.1, seed: uint64(c.Rank())})
				defer tbl.Release()
				res, err := tc.run(ctx, c, tbl, mem)
				if res != nil {
					res.Release()
				}
				if tc.failing(c.Rank()) != (err != nil) {
					return fmt.Errorf("error %v, want an error: %v", err, tc.failing(c.Rank()))
				}
				if err != nil {
					if !errors.Is(err, ErrSchemaMismatch) {
						return fmt.Errorf("error %q is not ErrSchemaMismatch", err)
					}
					if want := fmt.Sprintf("rank %d's schema differs", odd); !bytes.Contains([]byte(err.Error()), []byte(want)) {
						return fmt.Errorf("error %q does not name rank %d", err, odd)
					}
				}
				// The communicator is still usable.
				again, err := AllgatherTable(ctx, c, emptyTable(allSchema), WithAllocator(mem))
				if err != nil {
					return fmt.Errorf("after the mismatch: %w", err)
				}
				again.Release()
				return nil
			})
			requireNoErrors(t, errs)
		})
	}
}

// TestLocalFailureReachesEveryRank: a rank that cannot send what it was asked to (nil table, bad key)
// makes every rank's call fail with its reason, instead of leaving them waiting.
func TestLocalFailureReachesEveryRank(t *testing.T) {
	const p = 3
	cases := []struct {
		name string
		run  func(ctx context.Context, c *collective.Comm, tbl arrow.Table, mem memory.Allocator) (arrow.Table, error)
		want string
	}{
		{"bcast nil at root", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, mem memory.Allocator) (arrow.Table, error) {
			return BcastTable(ctx, c, 1, nil, WithAllocator(mem))
		}, "nil table"},
		{"allgather nil on one rank", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, mem memory.Allocator) (arrow.Table, error) {
			if c.Rank() == 2 {
				tbl = nil
			}
			return AllgatherTable(ctx, c, tbl, WithAllocator(mem))
		}, "rank 2"},
		{"shuffle bad key on one rank", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, mem memory.Allocator) (arrow.Table, error) {
			key := allSchema.Field(5).Name
			if c.Rank() == 1 {
				key = "no such column"
			}
			return Shuffle(ctx, c, tbl, []string{key}, WithAllocator(mem))
		}, `no column "no such column"`},
		{"alltoall wrong part count on one rank", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, mem memory.Allocator) (arrow.Table, error) {
			parts := []arrow.Table{tbl, tbl, tbl}
			if c.Rank() == 0 {
				parts = parts[:2]
			}
			res, err := AlltoallTables(ctx, c, parts, WithAllocator(mem))
			releaseTables(res)
			return nil, err
		}, "2 parts for 3 ranks"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			comms := newWorld(t, tcpLinks, p)
			errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				tbl := rankTable(t, mem, 20, c.Rank(), 0)
				defer tbl.Release()
				res, err := tc.run(ctx, c, tbl, mem)
				if res != nil {
					res.Release()
				}
				if err == nil {
					return errors.New("no error")
				}
				if !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
					return fmt.Errorf("error %q does not say %q", err, tc.want)
				}
				return nil
			})
			requireNoErrors(t, errs)
		})
	}
}

// TestDeadPeer: a rank that closes its communicator mid-job makes the others' calls fail, not hang.
func TestDeadPeer(t *testing.T) {
	comms := newWorld(t, tcpLinks, 3)
	errs := runRanks(t, comms, 20*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		if c.Rank() == 1 {
			return c.Close()
		}
		tbl := rankTable(t, mem, 50, c.Rank(), 0)
		defer tbl.Release()
		res, err := AllgatherTable(ctx, c, tbl, WithAllocator(mem))
		if err == nil {
			res.Release()
			return errors.New("allgather with a dead peer succeeded")
		}
		return nil
	})
	requireNoErrors(t, errs)
}

func TestStreamWriterReader(t *testing.T) {
	comms := newWorld(t, tcpLinks, 2)
	errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		tbl := rankTable(t, mem, 90, 0, 0)
		defer tbl.Release()
		batches, err := planBatches(tbl, 0, DefaultMaxDatalessRows)
		if err != nil {
			return err
		}
		defer releaseBatches(batches)
		if c.Rank() == 0 {
			// Stream 1: every batch, then Close. Stream 2: one batch, then Abort. Stream 3: a table
			// the reader abandons half-way. Stream 4: a table read whole.
			w, err := NewStreamWriter(ctx, c, 1, 5, allSchema, WithAllocator(mem), WithCompression(LZ4))
			if err != nil {
				return err
			}
			for _, b := range batches {
				if err := w.Write(b); err != nil {
					return err
				}
			}
			if err := w.Close(); err != nil {
				return err
			}
			if w.Rows() != tbl.NumRows() {
				return fmt.Errorf("writer counted %d rows, want %d", w.Rows(), tbl.NumRows())
			}
			w, err = NewStreamWriter(ctx, c, 1, 5, allSchema, WithAllocator(mem))
			if err != nil {
				return err
			}
			if err := w.Write(batches[0]); err != nil {
				return err
			}
			if err := w.Abort(errors.New("producer failed")); err != nil {
				return err
			}
			if err := SendTable(ctx, c, 1, 5, tbl, WithAllocator(mem), WithBatchBytes(1024)); err != nil {
				return err
			}
			return SendTable(ctx, c, 1, 5, tbl, WithAllocator(mem))
		}

		r, err := NewStreamReader(ctx, c, 0, 5, WithAllocator(mem))
		if err != nil {
			return err
		}
		var recs []arrow.RecordBatch
		for r.Next() {
			rec := r.RecordBatch()
			rec.Retain()
			recs = append(recs, rec)
		}
		r.Release()
		if err := r.Err(); err != nil {
			return err
		}
		got := array.NewTableFromRecords(allSchema, recs)
		releaseBatches(recs)
		err = sameRows(got, tbl)
		got.Release()
		if err != nil {
			return err
		}

		r, err = NewStreamReader(ctx, c, 0, 5, WithAllocator(mem))
		if err != nil {
			return err
		}
		n := 0
		for r.Next() {
			n++
		}
		r.Release()
		if r.Err() == nil || !bytes.Contains([]byte(r.Err().Error()), []byte("producer failed")) {
			return fmt.Errorf("aborted stream: error %v", r.Err())
		}

		r, err = NewStreamReader(ctx, c, 0, 5, WithAllocator(mem))
		if err != nil {
			return err
		}
		if !r.Next() {
			return fmt.Errorf("third stream: no batch: %v", r.Err())
		}
		r.Release() // abandons the rest: it is drained

		got, err = RecvTable(ctx, c, 0, 5, WithAllocator(mem))
		if err != nil {
			return fmt.Errorf("fourth stream: %w", err)
		}
		defer got.Release()
		return sameRows(got, tbl)
	})
	requireNoErrors(t, errs)
}

func TestStreamWriterRejectsOtherSchema(t *testing.T) {
	mem := checkedMem(t)
	comms := newWorld(t, tcpLinks, 2)
	w, err := NewStreamWriter(context.Background(), comms[0], 1, 1, otherSchema(), WithAllocator(mem))
	require.NoError(t, err)
	tbl := rankTable(t, mem, 5, 0, 0)
	defer tbl.Release()
	rec := recordOf(t, tbl)
	defer rec.Release()
	err = w.Write(rec)
	require.ErrorContains(t, err, "column 4 (\"c04_int32\") has type int32 where float64 was expected")
	assert.Equal(t, int64(0), w.Rows())
	require.NoError(t, w.Abort(nil))
	_, err = RecvTable(context.Background(), comms[1], 0, 1, WithAllocator(mem))
	require.ErrorContains(t, err, "aborted")
}

// TestSmallBatchesShareMessages: a table of many small chunks travels in one message, not one per
// chunk (each message of a collective is a round), and arrives with every chunk.
func TestSmallBatchesShareMessages(t *testing.T) {
	comms := newWorld(t, tcpLinks, 2)
	errs := runRanks(t, comms, 30*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		tbl := genTable(t, mem, allSchema, genSpec{rows: 200, chunks: 40, card: 20, nulls: 0.1, seed: 8})
		defer tbl.Release()
		if c.Rank() == 0 {
			return SendTable(ctx, c, 1, 4, tbl, WithAllocator(mem))
		}
		b, err := c.Recv(ctx, 0, 4)
		if err != nil {
			return err
		}
		if !endsWithEOS(b) {
			return errors.New("the stream took more than one message")
		}
		dec := newDecoder(mem, defaultRecvLimits)
		defer dec.close()
		if err := dec.feed(memory.NewBufferBytes(b)); err != nil {
			return err
		}
		got := dec.table()
		defer got.Release()
		if n := len(got.Column(0).Data().Chunks()); n != 40 {
			return fmt.Errorf("%d chunks arrived, want 40", n)
		}
		return sameRows(got, tbl)
	})
	requireNoErrors(t, errs)
}

// TestOwnFailureNamesRankFirst: a rank's own failure (a nil table, parts it cannot send) reads who,
// then what, then the cause, and says so to collective.NamesRank, so that frame, which wraps it, does
// not name the rank a second time. It read "arrowio: allgather: rank 1: nil table" (what before who),
// and frame made it "frame: rank 1: gather: arrowio: allgather: rank 1: nil table". The ranks that
// receive the aborted stream name the sender, not themselves.
func TestOwnFailureNamesRankFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	comms, err := collective.Local(ctx, 2)
	require.NoError(t, err)
	defer comms[0].Close()
	defer comms[1].Close()
	tbl := cylonTable(100, 50, 1)
	defer tbl.Release()
	for _, tc := range []struct {
		name       string
		call       func(c *collective.Comm, in arrow.Table) error
		own, other string // rank 1's error (its table is nil), rank 0's
	}{
		{"allgather", func(c *collective.Comm, in arrow.Table) error { _, err := AllgatherTable(ctx, c, in); return err },
			"arrowio: rank 1: allgather: nil table", "arrowio: allgather: rank 1: the sender aborted the stream: nil table"},
		{"gather", func(c *collective.Comm, in arrow.Table) error { _, err := GatherTable(ctx, c, 0, in); return err },
			"arrowio: rank 1: gather: nil table", "arrowio: gather: rank 1: the sender aborted the stream: nil table"},
		{"bcast", func(c *collective.Comm, in arrow.Table) error { _, err := BcastTable(ctx, c, 1, in); return err },
			"arrowio: rank 1 (root): bcast: nil table", "arrowio: bcast: rank 1: the sender aborted the stream: nil table"},
		{"alltoall", func(c *collective.Comm, in arrow.Table) error {
			var parts []arrow.Table
			if in != nil {
				parts = []arrow.Table{in, in}
			}
			_, err := AlltoallTables(ctx, c, parts)
			return err
		}, "arrowio: rank 1: alltoall: 0 parts for 2 ranks", "arrowio: alltoall: rank 1: the sender aborted the stream: 0 parts for 2 ranks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for r := range 2 {
				wg.Go(func() {
					in := tbl
					if r == 1 {
						in = nil
					}
					errs[r] = tc.call(comms[r], in)
				})
			}
			wg.Wait()
			require.EqualError(t, errs[1], tc.own)
			assert.True(t, collective.NamesRank(errs[1]), "rank 1 names itself")
			require.EqualError(t, errs[0], tc.other)
			assert.False(t, collective.NamesRank(errs[0]), "rank 0 does not name itself")
		})
	}
}
