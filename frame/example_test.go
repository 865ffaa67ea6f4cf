package frame_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// newFrame wraps a partition built from column names and values in a frame:
// newFrame(c, "id", []int64{1, 2}, "name", []string{"ann", "bob"}). Values
// are []int64, []float64 or []string; in an []any of float64s a nil is a
// null. (ExampleNew and ExampleFromRecords show the construction itself.)
func newFrame(c *collective.Comm, cols ...any) (*frame.Frame, error) {
	mem := memory.DefaultAllocator
	var fields []arrow.Field
	var arrs []arrow.Array
	for i := 0; i < len(cols); i += 2 {
		var b array.Builder
		switch v := cols[i+1].(type) {
		case []int64:
			ib := array.NewInt64Builder(mem)
			ib.AppendValues(v, nil)
			b = ib
		case []float64:
			fb := array.NewFloat64Builder(mem)
			fb.AppendValues(v, nil)
			b = fb
		case []string:
			sb := array.NewStringBuilder(mem)
			sb.AppendValues(v, nil)
			b = sb
		case []any:
			fb := array.NewFloat64Builder(mem)
			for _, x := range v {
				if x == nil {
					fb.AppendNull()
				} else {
					fb.Append(x.(float64))
				}
			}
			b = fb
		default:
			return nil, fmt.Errorf("newFrame: column %v: values of type %T", cols[i], v)
		}
		a := b.NewArray()
		b.Release()
		defer a.Release()
		fields = append(fields, arrow.Field{Name: cols[i].(string), Type: a.DataType(), Nullable: true})
		arrs = append(arrs, a)
	}
	schema := arrow.NewSchema(fields, nil)
	rec := array.NewRecordBatch(schema, arrs, int64(arrs[0].Len()))
	defer rec.Release()
	return frame.FromRecords(c, schema, []arrow.RecordBatch{rec})
}

// rows formats the rows of t, one string each, values separated by spaces
// and nulls shown as "null".
func rows(t arrow.Table) []string {
	var out []string
	tr := array.NewTableReader(t, -1)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			var vals []string
			for _, col := range rec.Columns() {
				if col.IsNull(i) {
					vals = append(vals, "null")
				} else {
					vals = append(vals, col.ValueStr(i))
				}
			}
			out = append(out, strings.Join(vals, " "))
		}
	}
	return out
}

// show gathers f on rank 0 and prints there its column names and its rows
// in the frame's order (rank 0's rows first).
func show(ctx context.Context, f *frame.Frame) error {
	return gatherAndPrint(ctx, f, false)
}

// showSorted is show with the rows sorted as text: for the results of the
// hash-partitioned operators (Shuffle, Join, GroupBy, Distinct), whose rows
// lie on the ranks their keys hash to.
func showSorted(ctx context.Context, f *frame.Frame) error {
	return gatherAndPrint(ctx, f, true)
}

func gatherAndPrint(ctx context.Context, f *frame.Frame, sorted bool) error {
	all, err := f.Gather(ctx, 0)
	if err != nil || all == nil { // nil on every rank but 0
		return err
	}
	defer all.Release()
	lines := rows(all)
	if sorted {
		slices.Sort(lines)
	}
	fmt.Println(strings.Join(fieldNames(all.Schema()), " "))
	for _, l := range lines {
		fmt.Println(l)
	}
	return nil
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
