package frame_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/fnmesh/fnmesh/frame"
)

// New wraps the table a rank already holds as its partition of a frame.
// Every rank must give a table of the same schema.
func ExampleNew() {
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		b := array.NewInt64Builder(memory.DefaultAllocator)
		defer b.Release()
		b.AppendValues([]int64{10, 20, 30}[:c.Rank()+1], nil) // rank 0 one row, rank 1 two
		ids := b.NewArray()
		defer ids.Release()
		schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
		col := arrow.NewColumnFromArr(schema.Field(0), ids)
		defer col.Release()
		part := array.NewTable(schema, []arrow.Column{col}, -1)
		defer part.Release() // New retains the table: release our reference too

		f, err := frame.New(c, part)
		if err != nil {
			return err
		}
		defer f.Release()
		n, err := f.Count(ctx)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println(f.Size(), "ranks,", n, "rows")
		}
		return nil
	})
	// Output:
	// 2 ranks, 3 rows
}

// FromRecords makes a frame of record batches, such as a RecordBuilder
// builds.
func ExampleFromRecords() {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String},
	}, nil)
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		b.Field(0).(*array.Int64Builder).Append(int64(c.Rank()))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprint("from rank ", c.Rank()))
		rec := b.NewRecordBatch()
		defer rec.Release()

		f, err := frame.FromRecords(c, schema, []arrow.RecordBatch{rec})
		if err != nil {
			return err
		}
		defer f.Release()
		return show(ctx, f)
	})
	// Output:
	// id name
	// 0 from rank 0
	// 1 from rank 1
}

// Files says which files each rank reads: a path with RankPlaceholder is
// every rank's own, the other paths form one set dealt out over the ranks.
func ExampleFiles() {
	paths := []string{"in/a.csv", "in/b.csv", "in/c.csv", "extra/part-{rank}.csv"}
	for rank := range 2 {
		files, err := frame.Files(paths, rank, 2)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("rank", rank, "reads", files)
	}
	// Output:
	// rank 0 reads [extra/part-0.csv in/a.csv in/c.csv]
	// rank 1 reads [extra/part-1.csv in/b.csv]
}

// ReadCSV reads a set of CSV files with a header row, dealt out over the
// ranks. With no schema, the ranks infer one together from the files.
func ExampleReadCSV() {
	dir, err := os.MkdirTemp("", "frame-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "a.csv"), []byte("id,name,joined\n1,ann,2024-01-31\n2,,2024-02-29\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.csv"), []byte("id,name,joined\n3,cy,2024-03-01\n"), 0o644)

	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		f, err := frame.ReadCSV(ctx, c, []string{filepath.Join(dir, "*.csv")}, nil)
		if err != nil {
			return err
		}
		defer f.Release()
		if c.Rank() == 0 {
			fmt.Println(f.Schema())
		}
		return show(ctx, f) // the empty name is a null
	})
	// Output:
	// schema:
	//   fields: 3
	//     - id: type=int64, nullable
	//     - name: type=utf8, nullable
	//     - joined: type=date32, nullable
	// id name joined
	// 1 ann 2024-01-31
	// 2 null 2024-02-29
	// 3 cy 2024-03-01
}

// WriteParquet writes each rank's partition to a file of its own, named by
// RankPlaceholder; ReadParquet reads the file set back, each rank its share.
func ExampleReadParquet() {
	dir, err := os.MkdirTemp("", "frame-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	names := [][]string{{"ann", "bob"}, {"cy"}}
	written := make([]string, 2)

	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		f, err := newFrame(c, "name", names[c.Rank()])
		if err != nil {
			return err
		}
		defer f.Release()
		file, err := f.WriteParquet(ctx, filepath.Join(dir, "names", "part-{rank}.parquet"))
		if err != nil {
			return err
		}
		written[c.Rank()] = filepath.Base(file)
		if err := c.Barrier(ctx); err != nil { // every file is written
			return err
		}

		back, err := frame.ReadParquet(ctx, c, []string{filepath.Join(dir, "names", "*.parquet")})
		if err != nil {
			return err
		}
		defer back.Release()
		return show(ctx, back)
	})
	fmt.Println("files:", written)
	// Output:
	// name
	// ann
	// bob
	// cy
	// files: [part-0.parquet part-1.parquet]
}

// WriteIPC and ReadIPC do the same with Arrow IPC files. Here each rank
// reads its own file back, named with RankPlaceholder.
func ExampleReadIPC() {
	dir, err := os.MkdirTemp("", "frame-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "part-{rank}.arrow")

	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		f, err := newFrame(c, "id", []int64{int64(c.Rank())}, "amount", []float64{1.5})
		if err != nil {
			return err
		}
		defer f.Release()
		if _, err := f.WriteIPC(ctx, path); err != nil {
			return err
		}

		back, err := frame.ReadIPC(ctx, c, []string{path}) // no Barrier needed: each reads its own
		if err != nil {
			return err
		}
		defer back.Release()
		return show(ctx, back)
	})
	// Output:
	// id amount
	// 0 1.5
	// 1 1.5
}

// WriteCSV writes each rank's partition as CSV with a header row; nulls
// are empty fields.
func ExampleFrame_WriteCSV() {
	dir, err := os.MkdirTemp("", "frame-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ids := [][]int64{{1, 2}, {3}}
	amounts := [][]any{{10.0, nil}, {2.5}}

	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		f, err := newFrame(c, "id", ids[c.Rank()], "amount", amounts[c.Rank()])
		if err != nil {
			return err
		}
		defer f.Release()
		_, err = f.WriteCSV(ctx, filepath.Join(dir, "out-{rank}.csv"))
		return err
	})
	for _, name := range []string{"out-0.csv", "out-1.csv"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s:\n%s", name, data)
	}
	// Output:
	// out-0.csv:
	// id,amount
	// 1,10
	// 2,
	// out-1.csv:
	// id,amount
	// 3,2.5
}

// WithProfile records each phase of each operator: time, rows, and the
// bytes sent to other ranks. Give each rank a Profile of its own (frames
// derived from the frame record into it too).
func ExampleWithProfile() {
	ids := [][]int64{{1, 2, 3, 4}, {5, 6, 7, 8}}
	profiles := []*frame.Profile{new(frame.Profile), new(frame.Profile)}
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		f, err := newFrame(c, "id", ids[c.Rank()])
		if err != nil {
			return err
		}
		defer f.Release()
		// The same partition, in a frame with a profile.
		g, err := frame.New(c, f.Table(), frame.WithProfile(profiles[c.Rank()]))
		if err != nil {
			return err
		}
		defer g.Release()
		sorted, err := g.Sort(ctx, frame.Desc("id"))
		if err != nil {
			return err
		}
		defer sorted.Release()
		return nil
	})
	// Rank 0's phases. fmt.Print(p) shows them as a table with their times
	// and bytes; times vary from run to run, so here only steps and rows.
	p := profiles[0]
	for _, ph := range p.Phases() {
		fmt.Println(ph.Op, ph.Name, ph.Rows, "rows")
	}
	fmt.Println("sent to rank 1:", p.Total("exchange").Rows, "rows")
	// Output:
	// sort local sort 4 rows
	// sort splitters 1 rows
	// sort partition 4 rows
	// sort exchange 3 rows
	// sort merge 5 rows
	// sent to rank 1: 3 rows
}
