package frame

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/arrowio"
)

// csvOracle parses a CSV file with encoding/csv as the readers do (the
// first record is the header, every record has its number of fields) and
// returns the header and the data records, or the first error. A UTF-8
// byte order mark at the start is not data.
func csvOracle(data []byte) (header []string, rows [][]string, err error) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte(utf8BOM))))
	header, err = r.Read()
	if err != nil {
		return nil, nil, err
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return header, rows, nil
		}
		if err != nil {
			return nil, nil, err
		}
		rows = append(rows, rec)
	}
}

// FuzzReadCSV feeds arbitrary bytes to the CSV schema inference and reader,
// as the contents of a file. Neither may panic. A file encoding/csv parses
// must read with every column as a string, each value as written (empty
// fields null), and with the schema inferred from it (every row of a small
// file is sampled, so the inferred types hold every value); one it cannot
// parse must fail both.
func FuzzReadCSV(f *testing.F) {
	for _, s := range []string{
		"a,b\n1,x\n2,y\n",
		"a,b\n1,2.5\n,true\n",
		"t,d\n2024-01-02 10:00:00,2024-01-02\n2024-01-02T11:00:00.5,1999-12-31\n",
		"x\n\"quoted, with comma\"\n\"multi\nline\"\n",
		"x,y\n1\n",
		"x,x\n1,2\n",
		"\n\n",
		"a\r\n1\r\n",
		"a,b\n\"unterminated\n",
		"a\n\xff\xfe\n",
		"a\nNaN\n-Inf\n1e308\n",
		"a\n9223372036854775808\n",
		"a\ntrue\n1\n",
		"\ufeffa,b\n1,2\n",
		"# comment\na\n1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "f.csv")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		header, rows, perr := csvOracle(data)
		var s csvSample
		ierr := s.add(path)
		if (perr == nil) != (ierr == nil) && len(rows) < csvSampleRows {
			t.Fatalf("inference: %v; encoding/csv: %v", ierr, perr)
		}
		// Every column a string: the reader takes anything encoding/csv does.
		fields := make([]arrow.Field, len(header))
		for i, name := range header {
			fields[i] = arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true}
		}
		if perr != nil {
			fields = []arrow.Field{{Name: "a", Type: arrow.BinaryTypes.String, Nullable: true}}
		}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		lim := arrowio.LimitAllocator(mem, fuzzReadLimit)
		tbl, err := readCSVFile(ctx, lim, path, arrow.NewSchema(fields, nil))
		if perr != nil {
			if err == nil {
				tbl.Release()
				t.Fatalf("read a file encoding/csv fails on (%v)", perr)
			}
			return
		}
		if err != nil {
			t.Fatalf("read as strings: %v", err)
		}
		checkCSVTable(t, tbl, rows, nil)
		tbl.Release()
		if ierr != nil {
			return
		}
		schema := s.schema()
		tbl, err = readCSVFile(ctx, lim, path, schema)
		if err != nil {
			t.Fatalf("read with the inferred schema %v: %v", schema, err)
		}
		checkCSVTable(t, tbl, rows, schema)
		tbl.Release()
	})
}

// checkCSVTable checks that tbl holds rows: a null for an empty field, else
// the value (as written for strings, as strconv parses it for numbers and
// booleans, present for other types).
func checkCSVTable(t *testing.T, tbl arrow.Table, rows [][]string, schema *arrow.Schema) {
	t.Helper()
	if tbl.NumRows() != int64(len(rows)) {
		t.Fatalf("%d rows, want %d", tbl.NumRows(), len(rows))
	}
	for c := range int(tbl.NumCols()) {
		row := 0
		for _, a := range tbl.Column(c).Data().Chunks() {
			for j := range a.Len() {
				want := rows[row][c]
				row++
				if want == "" {
					if !a.IsNull(j) {
						t.Fatalf("row %d column %d: empty field read as %q, want null", row-1, c, a.ValueStr(j))
					}
					continue
				}
				if a.IsNull(j) {
					t.Fatalf("row %d column %d: %q read as null", row-1, c, want)
				}
				ok := true
				switch a := a.(type) {
				case *array.String:
					ok = a.Value(j) == want
				case *array.Int64:
					v, err := strconv.ParseInt(want, 10, 64)
					ok = err == nil && v == a.Value(j)
				case *array.Float64:
					v, err := strconv.ParseFloat(want, 64)
					ok = err == nil && (v == a.Value(j) || math.IsNaN(v) && math.IsNaN(a.Value(j)))
				case *array.Boolean:
					v, err := strconv.ParseBool(want)
					ok = err == nil && v == a.Value(j)
				}
				if !ok {
					t.Fatalf("row %d column %d (%v): %q read as %q", row-1, c, a.DataType(), want, a.ValueStr(j))
				}
			}
		}
	}
}
