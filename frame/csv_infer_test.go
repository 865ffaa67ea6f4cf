package frame

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/collective"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
}

// Each column's values, sampled from one file: the type is the first that
// parses them all.
func TestCSVSampleTypes(t *testing.T) {
	ts := func(u arrow.TimeUnit) arrow.DataType { return &arrow.TimestampType{Unit: u} }
	cases := []struct {
		values []string
		want   arrow.DataType
	}{
		{[]string{"1", "-2", "30"}, arrow.PrimitiveTypes.Int64},
		{[]string{"1", "2.5", "3"}, arrow.PrimitiveTypes.Float64},
		{[]string{"1e3", "-0", "NaN"}, arrow.PrimitiveTypes.Float64},
		{[]string{"true", "false", "1"}, arrow.FixedWidthTypes.Boolean},
		{[]string{"1", "0"}, arrow.PrimitiveTypes.Int64},
		{[]string{"2024-01-02", "1999-12-31"}, arrow.FixedWidthTypes.Date32},
		{[]string{"10:00:00", "23:59:59"}, arrow.BinaryTypes.String},
		{[]string{"2024-01-02 10:00:00", "2024-01-02T11:00:00"}, ts(arrow.Second)},
		{[]string{"2024-01-02 10:00:00.123456789"}, ts(arrow.Nanosecond)},
		{[]string{"1", "abc"}, arrow.BinaryTypes.String},
		{[]string{"2024-01-02", "7"}, arrow.BinaryTypes.String},
		{[]string{"", ""}, arrow.BinaryTypes.String},
		{[]string{"", "4", ""}, arrow.PrimitiveTypes.Int64},
	}
	dir := t.TempDir()
	for i, c := range cases {
		path := filepath.Join(dir, fmt.Sprintf("c%d.csv", i))
		writeFile(t, path, "x,y\n"+strings.Join(c.values, ",y\n")+",y\n")
		var s csvSample
		require.NoError(t, s.add(path))
		got := s.schema()
		require.True(t, arrow.TypeEqual(c.want, got.Field(0).Type), "%q: got %v, want %v", c.values, got.Field(0).Type, c.want)
		require.True(t, arrow.TypeEqual(arrow.BinaryTypes.String, got.Field(1).Type))

		// And the reader takes every value with the type inferred.
		tbl, err := readCSVFile(context.Background(), memory.DefaultAllocator, path, got)
		require.NoError(t, err, "%q as %v", c.values, got.Field(0).Type)
		require.EqualValues(t, len(c.values), tbl.NumRows())
		tbl.Release()
	}
}

// runCSV reads the files on p ranks with the schema given (nil: inferred)
// and returns the schema and the gathered "amount" column as text, or every
// rank's error.
func runCSV(t *testing.T, p int, paths []string, schema *arrow.Schema) (*arrow.Schema, []string, []error) {
	t.Helper()
	ctx := context.Background()
	comms, err := collective.Local(ctx, p)
	require.NoError(t, err)
	var (
		wg     sync.WaitGroup
		errs   = make([]error, p)
		values []string
	)
	for r := range p {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer func() { require.Zero(t, mem.CurrentAlloc(), "rank %d leaked", r) }()
			f, err := ReadCSV(ctx, comms[r], paths, schema, WithAllocator(mem))
			if err != nil {
				errs[r] = err
				return
			}
			defer f.Release()
			all, err := f.Gather(ctx, 0)
			if err != nil || all == nil {
				errs[r] = err
				return
			}
			defer all.Release()
			schema = all.Schema()
			col := all.Column(all.Schema().FieldIndices("amount")[0])
			for _, chunk := range col.Data().Chunks() {
				for i := range chunk.Len() {
					values = append(values, chunk.ValueStr(i))
				}
			}
		}()
	}
	wg.Wait()
	for _, c := range comms {
		require.NoError(t, c.Close())
	}
	return schema, values, errs
}

// The ranks agree on the types: a float in one rank's file makes the
// column float64 on all of them, and a rank without files takes the same.
func TestReadCSVInfersOneSchemaForTheJob(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.csv"), "region,amount,day\neu,10,2024-01-02\nus,3,2024-01-03\n")
	writeFile(t, filepath.Join(dir, "b.csv"), "region,amount,day\nap,2.25,2024-01-04\nus,,2024-01-05\n")
	schema, values, errs := runCSV(t, 3, []string{filepath.Join(dir, "*.csv")}, nil)
	for r, err := range errs {
		require.NoError(t, err, "rank %d", r)
	}
	want := arrow.NewSchema([]arrow.Field{
		{Name: "region", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "day", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	}, nil)
	require.True(t, want.Equal(schema), "got %v", schema)
	require.Equal(t, []string{"10", "3", "2.25", array.NullValueStr}, values)
}

func TestReadCSVInferenceErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "x-0.csv"), "region,amount\neu,1\n")
	writeFile(t, filepath.Join(dir, "x-1.csv"), "region,total\neu,1\n")
	writeFile(t, filepath.Join(dir, "empty.csv"), "")
	var late strings.Builder
	late.WriteString("amount\n")
	for i := range csvSampleRows {
		fmt.Fprintf(&late, "%d\n", i)
	}
	late.WriteString("2.5\n")
	writeFile(t, filepath.Join(dir, "late.csv"), late.String())

	cases := []struct {
		name   string
		paths  []string
		schema *arrow.Schema
		want   string // in every rank's error
	}{
		{"columns differ between ranks", []string{filepath.Join(dir, "x-{rank}.csv")}, nil, `rank 1's columns ["region" "total"] differ from ["region" "amount"]`},
		{"no header", []string{filepath.Join(dir, "empty.csv")}, nil, "no header row"},
		{"no file", []string{filepath.Join(dir, "none-*.csv")}, nil, "no rank found a file"},
		{"a value past the sample", []string{filepath.Join(dir, "late.csv")}, nil, "inferred from the first 65536 rows"},
		{"a type the reader cannot parse", []string{filepath.Join(dir, "x-0.csv")},
			arrow.NewSchema([]arrow.Field{{Name: "region", Type: arrow.FixedWidthTypes.Time32s}, {Name: "amount", Type: arrow.PrimitiveTypes.Int64}}, nil),
			"invalid data type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, errs := runCSV(t, 2, c.paths, c.schema)
			for r, err := range errs {
				require.ErrorContains(t, err, c.want, "rank %d", r)
				require.NoError(t, checkWhere(err, r, "read csv"), "rank %d", r)
			}
		})
	}
}
