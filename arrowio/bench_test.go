package arrowio

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fnmesh/fnmesh/collective"
)

// Benchmarks on Cylon's join-benchmark data: two int64 columns of random integers (key uniqueness
// 0.9), 16 bytes a row. Run with
//
//	go test -run '^$' -bench . -benchtime 3x ./arrowio

var cylonSchema = arrow.NewSchema([]arrow.Field{
	{Name: "key", Type: arrow.PrimitiveTypes.Int64},
	{Name: "val", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// cylonTable returns rows rows in batches of at most batch rows.
func cylonTable(rows, batch int, seed uint64) arrow.Table {
	r := rand.New(rand.NewPCG(seed, 9))
	b := array.NewRecordBuilder(memory.DefaultAllocator, cylonSchema)
	defer b.Release()
	keys, vals := b.Field(0).(*array.Int64Builder), b.Field(1).(*array.Int64Builder)
	var recs []arrow.RecordBatch
	domain := int64(float64(rows) * 0.9)
	for lo := 0; lo < rows; lo += batch {
		n := min(batch, rows-lo)
		keys.Reserve(n)
		vals.Reserve(n)
		for range n {
			keys.UnsafeAppend(r.Int64N(domain))
			vals.UnsafeAppend(r.Int64())
		}
		recs = append(recs, b.NewRecordBatch())
	}
	t := array.NewTableFromRecords(cylonSchema, recs)
	releaseBatches(recs)
	return t
}

func stringTable(rows int) arrow.Table {
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}}, nil))
	defer b.Release()
	sb := b.Field(0).(*array.StringBuilder)
	for i := range rows {
		sb.Append(fmt.Sprintf("customer-%09d", i*7919%rows))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(rec.Schema(), []arrow.RecordBatch{rec})
}

func BenchmarkHashRows(b *testing.B) {
	const rows = 1 << 20
	ints := cylonTable(rows, rows, 1)
	defer ints.Release()
	strs := stringTable(rows)
	defer strs.Release()
	out := make([]uint64, rows)
	for _, tc := range []struct {
		name  string
		cols  []arrow.Array
		bytes int64
	}{
		{"int64", []arrow.Array{ints.Column(0).Data().Chunk(0)}, 8},
		{"int64x2", []arrow.Array{ints.Column(0).Data().Chunk(0), ints.Column(1).Data().Chunk(0)}, 16},
		{"string18", []arrow.Array{strs.Column(0).Data().Chunk(0)}, 18},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(tc.bytes * rows)
			for b.Loop() {
				if err := HashRows(tc.cols, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrows/s")
		})
	}
}

func BenchmarkHashPartition(b *testing.B) {
	const rows = 1 << 21
	t := cylonTable(rows, 1<<20, 2)
	defer t.Release()
	for _, p := range []int{2, 8, 64} {
		b.Run(fmt.Sprintf("p=%d", p), func(b *testing.B) {
			b.SetBytes(16 * rows)
			for b.Loop() {
				parts, err := HashPartition(context.Background(), t, []string{"key"}, p)
				if err != nil {
					b.Fatal(err)
				}
				releaseTables(parts)
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrows/s")
		})
	}
}

// BenchmarkShuffle shuffles rows per rank on p ranks over loopback TCP; the bytes are the whole
// job's (p x rows x 16), so MB/s is the job's shuffle rate.
func BenchmarkShuffle(b *testing.B) {
	const rows = 1 << 20
	for _, p := range []int{2, 4} {
		for _, comp := range []Compression{NoCompression, LZ4} {
			b.Run(fmt.Sprintf("p=%d/%s", p, comp), func(b *testing.B) {
				comms, err := collective.Local(context.Background(), p)
				if err != nil {
					b.Fatal(err)
				}
				defer func() {
					for _, c := range comms {
						c.Close()
					}
				}()
				tables := make([]arrow.Table, p)
				for r := range tables {
					tables[r] = cylonTable(rows, 1<<18, uint64(r))
				}
				defer releaseTables(tables)
				b.SetBytes(int64(p) * rows * 16)
				for b.Loop() {
					var wg sync.WaitGroup
					errs := make([]error, p)
					for r, c := range comms {
						wg.Add(1)
						go func() {
							defer wg.Done()
							res, err := Shuffle(context.Background(), c, tables[r], []string{"key"}, WithCompression(comp))
							if err == nil {
								res.Release()
							}
							errs[r] = err
						}()
					}
					wg.Wait()
					for _, err := range errs {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

// BenchmarkSendRecvTable sends a 16 MiB table from rank 0 to rank 1 over loopback TCP; "raw" sends the
// same number of bytes as 4 MiB messages with Comm.Send/Recv: the ceiling arrowio runs against.
func BenchmarkSendRecvTable(b *testing.B) {
	const rows = 1 << 20
	t := cylonTable(rows, 1<<18, 3)
	defer t.Release()
	b.Run("raw", func(b *testing.B) {
		comms, err := collective.Local(context.Background(), 2)
		if err != nil {
			b.Fatal(err)
		}
		defer comms[0].Close()
		defer comms[1].Close()
		msg := make([]byte, DefaultBatchBytes)
		const msgs = rows * 16 / DefaultBatchBytes
		b.SetBytes(rows * 16)
		ctx := context.Background()
		for b.Loop() {
			sent := make(chan error, 1)
			go func() {
				for range msgs {
					if err := comms[0].Send(ctx, 1, 1, msg); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			for range msgs {
				if _, err := comms[1].Recv(ctx, 0, 1); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-sent; err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, comp := range []Compression{NoCompression, LZ4, Zstd} {
		b.Run(comp.String(), func(b *testing.B) {
			comms, err := collective.Local(context.Background(), 2)
			if err != nil {
				b.Fatal(err)
			}
			defer comms[0].Close()
			defer comms[1].Close()
			b.SetBytes(rows * 16)
			ctx := context.Background()
			for b.Loop() {
				sent := make(chan error, 1)
				go func() { sent <- SendTable(ctx, comms[0], 1, 1, t, WithCompression(comp)) }()
				got, err := RecvTable(ctx, comms[1], 0, 1)
				if err != nil {
					b.Fatal(err)
				}
				got.Release()
				if err := <-sent; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAlltoall exchanges prepared parts (rows per rank split p ways) on p ranks over loopback TCP;
// "raw" moves the same bytes with Comm.Alltoallv in 4 MiB rounds. The bytes are the job's.
func BenchmarkAlltoall(b *testing.B) {
	const rows = 1 << 20
	for _, p := range []int{2, 4} {
		comms, err := collective.Local(context.Background(), p)
		if err != nil {
			b.Fatal(err)
		}
		parts := make([][]arrow.Table, p)
		for r := range parts {
			t := cylonTable(rows, 1<<18, uint64(r))
			parts[r], err = HashPartition(context.Background(), t, []string{"key"}, p)
			t.Release()
			if err != nil {
				b.Fatal(err)
			}
		}
		run := func(b *testing.B, fn func(r int, c *collective.Comm) error) {
			b.SetBytes(int64(p) * rows * 16)
			for b.Loop() {
				var wg sync.WaitGroup
				errs := make([]error, p)
				for r, c := range comms {
					wg.Add(1)
					go func() { defer wg.Done(); errs[r] = fn(r, c) }()
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		b.Run(fmt.Sprintf("p=%d/tables", p), func(b *testing.B) {
			run(b, func(r int, c *collective.Comm) error {
				res, err := AlltoallTables(context.Background(), c, parts[r])
				releaseTables(res)
				return err
			})
		})
		b.Run(fmt.Sprintf("p=%d/raw", p), func(b *testing.B) {
			per := rows * 16 / p
			rounds := (per + DefaultBatchBytes - 1) / DefaultBatchBytes
			msgs := make([][]byte, p)
			for j := range msgs {
				msgs[j] = make([]byte, min(per, DefaultBatchBytes))
			}
			run(b, func(r int, c *collective.Comm) error {
				for range rounds {
					if _, err := c.Alltoallv(context.Background(), msgs); err != nil {
						return err
					}
				}
				return nil
			})
		})
		for _, ps := range parts {
			releaseTables(ps)
		}
		for _, c := range comms {
			c.Close()
		}
	}
}

// BenchmarkPlanBatches plans the messages a table is sent as (planBatches, groupBatches) in 64 KiB
// messages, without encoding or sending them: two int64 columns (rows of fixed width, cut evenly)
// and one string column (cut where the sizes of its rows say), 1M rows each.
func BenchmarkPlanBatches(b *testing.B) {
	for _, c := range []struct {
		name string
		t    func() arrow.Table
	}{{"int64", func() arrow.Table { return cylonTable(1<<20, 1<<18, 3) }}, {"strings", func() arrow.Table { return stringTable(1 << 20) }}} {
		b.Run(c.name, func(b *testing.B) {
			t := c.t()
			defer t.Release()
			for b.Loop() {
				bs, err := planBatches(t, 64<<10, DefaultMaxDatalessRows)
				if err != nil {
					b.Fatal(err)
				}
				groupBatches(bs, 64<<10, DefaultMaxDatalessRows)
				releaseBatches(bs)
			}
		})
	}
}
