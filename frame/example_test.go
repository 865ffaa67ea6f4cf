package frame_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/fnmesh/fnmesh/frame"
)

// runLocal runs fn on every rank of an in-process communicator of n ranks:
// what a job of n serverless functions does, each function being one rank.
func runLocal(n int, fn func(ctx context.Context, c *collective.Comm) error) {
	ctx := context.Background()
	comms, err := collective.Local(ctx, n)
	if err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			if err := fn(ctx, c); err != nil {
				log.Fatal(err)
			}
		}()
	}
	wg.Wait()
}

// table builds a small table: ids and one string or float column.
func table(ids []int64, name string, vals any) arrow.Table {
	mem := memory.DefaultAllocator
	ib := array.NewInt64Builder(mem)
	defer ib.Release()
	ib.AppendValues(ids, nil)
	id := ib.NewArray()
	defer id.Release()
	var col arrow.Array
	switch v := vals.(type) {
	case []string:
		b := array.NewStringBuilder(mem)
		defer b.Release()
		b.AppendValues(v, nil)
		col = b.NewArray()
	case []float64:
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		b.AppendValues(v, nil)
		col = b.NewArray()
	}
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: name, Type: col.DataType()},
	}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{id, col}, int64(len(ids)))
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// A complete job on two ranks: write each rank's data as Parquet, read it
// back as frames, join customers with orders, total the orders per
// customer, sort, write the result and gather it on rank 0.
func Example() {
	dir, _ := os.MkdirTemp("", "frame-example")
	defer os.RemoveAll(dir)
	customers := [][]int64{{1, 2}, {3}}
	names := [][]string{{"ann", "bob"}, {"cy"}}
	orders := [][]int64{{1, 3, 3}, {1, 2, 3}}
	amounts := [][]float64{{10, 5, 7}, {2.5, 4, 1}}

	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		r := c.Rank()
		// Each rank writes its own files: {rank} becomes its number.
		for _, in := range []struct {
			name string
			t    arrow.Table
		}{{"customers", table(customers[r], "name", names[r])}, {"orders", table(orders[r], "amount", amounts[r])}} {
			f, err := frame.New(c, in.t)
			in.t.Release()
			if err != nil {
				return err
			}
			_, err = f.WriteParquet(ctx, filepath.Join(dir, in.name, "part-{rank}.parquet"))
			f.Release()
			if err != nil {
				return err
			}
		}
		if err := c.Barrier(ctx); err != nil {
			return err
		}

		// Read: the files of a set are dealt out over the ranks.
		cust, err := frame.ReadParquet(ctx, c, []string{filepath.Join(dir, "customers", "*.parquet")})
		if err != nil {
			return err
		}
		defer cust.Release()
		ord, err := frame.ReadParquet(ctx, c, []string{filepath.Join(dir, "orders", "*.parquet")})
		if err != nil {
			return err
		}
		defer ord.Release()

		// Join, aggregate, sort.
		joined, err := ord.Join(ctx, cust, frame.Inner, frame.On("id"))
		if err != nil {
			return err
		}
		defer joined.Release()
		totals, err := joined.GroupBy("id", "name").Agg(ctx, frame.Sum("amount").As("total"), frame.CountRows().As("orders"))
		if err != nil {
			return err
		}
		defer totals.Release()
		sorted, err := totals.Sort(ctx, frame.Desc("total"))
		if err != nil {
			return err
		}
		defer sorted.Release()

		// Write the result, one file per rank, and look at it on rank 0.
		if _, err := sorted.WriteCSV(ctx, filepath.Join(dir, "totals", "part-{rank}.csv")); err != nil {
			return err
		}
		all, err := sorted.Gather(ctx, 0)
		if err != nil || all == nil {
			return err
		}
		defer all.Release()
		tr := array.NewTableReader(all, -1)
		defer tr.Release()
		for tr.Next() {
			rec := tr.RecordBatch()
			for i := 0; i < int(rec.NumRows()); i++ {
				fmt.Printf("%s %d: %.1f in %d orders\n", rec.Column(1).ValueStr(i),
					rec.Column(0).(*array.Int64).Value(i), rec.Column(2).(*array.Float64).Value(i), rec.Column(3).(*array.Int64).Value(i))
			}
		}
		return nil
	})
	// Output:
	// cy 3: 13.0 in 3 orders
	// ann 1: 12.5 in 2 orders
	// bob 2: 4.0 in 1 orders
}

// Filter and Project are local: each rank works on its own partition.
func ExampleFrame_Project() {
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		t := table([]int64{int64(c.Rank()*2 + 1), int64(c.Rank()*2 + 2)}, "amount", []float64{10, 20})
		defer t.Release()
		f, err := frame.New(c, t)
		if err != nil {
			return err
		}
		defer f.Release()
		big, err := f.Filter(ctx, frame.Col("id").Gt(1))
		if err != nil {
			return err
		}
		defer big.Release()
		taxed, err := big.Project(ctx, frame.Col("id"), frame.Col("amount").Mul(1.2).As("gross"))
		if err != nil {
			return err
		}
		defer taxed.Release()
		all, err := taxed.Gather(ctx, 0)
		if err != nil || all == nil {
			return err
		}
		defer all.Release()
		fmt.Println(fieldNames(all.Schema()), all.NumRows(), "rows")
		return nil
	})
	// Output:
	// [id gross] 3 rows
}

func fieldNames(s *arrow.Schema) []string {
	var out []string
	for _, f := range s.Fields() {
		out = append(out, f.Name)
	}
	return out
}
