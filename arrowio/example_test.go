package arrowio_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fnmesh/fnmesh/arrowio"
	"github.com/fnmesh/fnmesh/collective"
)

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "city", Type: arrow.BinaryTypes.String},
	{Name: "sales", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// salesTable builds a small table of (city, sales) rows.
func salesTable(cities []string, sales []int64) arrow.Table {
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues(cities, nil)
	b.Field(1).(*array.Int64Builder).AppendValues(sales, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// forEachRank runs fn on every rank of a 3-rank job on this machine (loopback TCP) and waits.
func forEachRank(fn func(ctx context.Context, c *collective.Comm)) {
	ctx := context.Background()
	comms, err := collective.Local(ctx, 3)
	if err != nil {
		panic(err)
	}
	var wg sync.WaitGroup
	for _, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			fn(ctx, c)
		}()
	}
	wg.Wait()
}

func ExampleHashPartition() {
	t := salesTable([]string{"Lyon", "Oslo", "Cork", "Oslo", "Pune", "Lyon"}, []int64{1, 2, 3, 4, 5, 6})
	defer t.Release()

	parts, err := arrowio.HashPartition(context.Background(), t, []string{"city"}, 3)
	if err != nil {
		panic(err)
	}
	for i, part := range parts {
		cities := map[string]bool{}
		tr := array.NewTableReader(part, -1)
		for tr.Next() {
			col := tr.RecordBatch().Column(0).(*array.String)
			for r := range col.Len() {
				cities[col.Value(r)] = true
			}
		}
		tr.Release()
		fmt.Printf("part %d: %d rows, %d cities\n", i, part.NumRows(), len(cities))
		part.Release()
	}
	// Output:
	// part 0: 3 rows, 2 cities
	// part 1: 1 rows, 1 cities
	// part 2: 2 rows, 1 cities
}

func ExampleSendTable() {
	forEachRank(func(ctx context.Context, c *collective.Comm) {
		switch c.Rank() {
		case 0:
			t := salesTable([]string{"Lyon", "Oslo"}, []int64{10, 20})
			defer t.Release()
			if err := arrowio.SendTable(ctx, c, 2, 1, t, arrowio.WithCompression(arrowio.LZ4)); err != nil {
				panic(err)
			}
		case 2:
			t, err := arrowio.RecvTable(ctx, c, 0, 1)
			if err != nil {
				panic(err)
			}
			defer t.Release()
			fmt.Println("rank 2 received", t.NumRows(), "rows of", t.Schema().Field(0).Name, "and", t.Schema().Field(1).Name)
		}
	})
	// Output:
	// rank 2 received 2 rows of city and sales
}

func ExampleShuffle() {
	var mu sync.Mutex
	held := make([]int64, 3)
	forEachRank(func(ctx context.Context, c *collective.Comm) {
		// Every rank starts with rows of every city...
		t := salesTable([]string{"Lyon", "Oslo", "Cork", "Pune"}, []int64{1, 2, 3, 4})
		defer t.Release()
		// ...and ends with all the rows of some cities: rows with equal keys meet on one rank.
		mine, err := arrowio.Shuffle(ctx, c, t, []string{"city"})
		if err != nil {
			panic(err)
		}
		defer mine.Release()
		mu.Lock()
		held[c.Rank()] = mine.NumRows()
		mu.Unlock()
	})
	fmt.Println("rows per rank:", held)
	// Output:
	// rows per rank: [6 3 3]
}

func ExampleAllgatherTable() {
	var mu sync.Mutex
	var total []int64
	forEachRank(func(ctx context.Context, c *collective.Comm) {
		t := salesTable([]string{"Oslo"}, []int64{int64(100 * c.Rank())})
		defer t.Release()
		all, err := arrowio.AllgatherTable(ctx, c, t)
		if err != nil {
			panic(err)
		}
		defer all.Release()
		mu.Lock()
		total = append(total, all.NumRows())
		mu.Unlock()
	})
	fmt.Println("every rank holds", total[0], "rows; ranks:", len(total))
	// Output:
	// every rank holds 3 rows; ranks: 3
}

func ExampleNewStreamWriter() {
	forEachRank(func(ctx context.Context, c *collective.Comm) {
		switch c.Rank() {
		case 1: // produces batches one at a time
			w, err := arrowio.NewStreamWriter(ctx, c, 0, 9, schema)
			if err != nil {
				panic(err)
			}
			for i := range 3 {
				t := salesTable([]string{"Oslo", "Lyon"}, []int64{int64(i), int64(10 * i)})
				tr := array.NewTableReader(t, -1)
				for tr.Next() {
					if err := w.Write(tr.RecordBatch()); err != nil {
						panic(err)
					}
				}
				tr.Release()
				t.Release()
			}
			if err := w.Close(); err != nil {
				panic(err)
			}
		case 0: // consumes them as they arrive
			r, err := arrowio.NewStreamReader(ctx, c, 1, 9)
			if err != nil {
				panic(err)
			}
			defer r.Release()
			for r.Next() {
				sales := r.RecordBatch().Column(1).(*array.Int64)
				fmt.Println("batch of", sales.Len(), "rows, sales", sales.Int64Values())
			}
			if err := r.Err(); err != nil {
				panic(err)
			}
		}
	})
	// Output:
	// batch of 2 rows, sales [0 0]
	// batch of 2 rows, sales [1 10]
	// batch of 2 rows, sales [2 20]
}

func ExampleHashRows() {
	t := salesTable([]string{"Oslo", "Lyon", "Oslo"}, []int64{1, 2, 3})
	defer t.Release()
	cities := t.Column(0).Data().Chunk(0)
	hashes := make([]uint64, cities.Len())
	if err := arrowio.HashRows([]arrow.Array{cities}, hashes); err != nil {
		panic(err)
	}
	// Equal keys hash alike, on every rank of every job: this is where Shuffle sends each row.
	fmt.Println(hashes[0] == hashes[2], hashes[0] == hashes[1])
	fmt.Println("Oslo goes to rank", arrowio.PartitionOf(hashes[0], 3), "of 3")
	// Output:
	// true false
	// Oslo goes to rank 2 of 3
}

// A function with little memory keeps fewer released receive buffers for
// reuse (0 keeps none).
func ExampleSetReceiveCache() {
	previous := arrowio.SetReceiveCache(64 << 20)
	defer arrowio.SetReceiveCache(previous)
	fmt.Println(previous>>20, "MiB by default")
	// Output:
	// 256 MiB by default
}

// A reader of untrusted bytes allocates through LimitAllocator: a damaged
// length that asks for more than the limit is refused, as a panic the
// reader recovers into an error, instead of allocating what it claims.
func ExampleLimitAllocator() {
	mem := arrowio.LimitAllocator(memory.NewGoAllocator(), 1<<20)
	fmt.Println(len(mem.Allocate(1024)))
	func() {
		defer func() {
			err, _ := recover().(error)
			fmt.Println(errors.Is(err, arrowio.ErrAllocationLimit), err)
		}()
		mem.Allocate(1 << 40)
	}()
	// Output:
	// 1024
	// true arrowio: allocation refused: 1099511627776 bytes is outside the limit of 0..1048576 (damaged input?)
}
