package frame

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/fnmesh/fnmesh/collective"
)

// Reading CSV without a schema: the ranks infer one together before any of
// them parses a file, from the first csvSampleRows rows of every file of
// the job, so that a column is int64 only if it is on every rank and a
// float in one file makes the column float64 everywhere. (Arrow's own
// inferring reader looks at the first row of each file only, and ranks
// that saw different first rows would disagree.)

// csvSampleRows is how many rows of each file the inference looks at.
const csvSampleRows = 1 << 16

// csvTypes are the types a CSV column can be inferred as, in order of
// preference: a column gets the first that parses every value sampled
// (empty fields are nulls and parse as anything). The order is that of
// Arrow's inferring reader, so a column reads as it would there when its
// first row is typical, without time32 (which Arrow's CSV reader cannot
// read: times of day stay strings); string is the fallback.
var csvTypes = [...]arrow.DataType{
	arrow.PrimitiveTypes.Int64,
	arrow.FixedWidthTypes.Boolean,
	arrow.FixedWidthTypes.Date32,
	&arrow.TimestampType{Unit: arrow.Second},
	&arrow.TimestampType{Unit: arrow.Nanosecond},
	arrow.PrimitiveTypes.Float64,
	arrow.BinaryTypes.String,
}

const allCSVTypes = 1<<len(csvTypes) - 1

// parsesAs reports whether the CSV reader parses v as type csvTypes[i], by
// the same functions it uses.
func parsesAs(v string, i int) bool {
	var err error
	switch dt := csvTypes[i].(type) {
	case *arrow.Int64Type:
		_, err = strconv.ParseInt(v, 10, 64)
	case *arrow.BooleanType:
		_, err = strconv.ParseBool(v)
	case *arrow.Date32Type:
		_, err = time.Parse("2006-01-02", v)
	case *arrow.TimestampType:
		_, err = arrow.TimestampFromString(v, dt.Unit)
	case *arrow.Float64Type:
		_, err = strconv.ParseFloat(v, 64)
	default: // string
		return utf8.ValidString(v)
	}
	return err == nil
}

// withoutBOM reads r without the UTF-8 byte order mark it may start with
// (Excel and many Windows tools write one), as pandas and DuckDB read CSV:
// else the first column's name would start with it. One mark is dropped; a
// second is data.
func withoutBOM(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	if b, err := br.Peek(len(utf8BOM)); err == nil && string(b) == utf8BOM {
		_, _ = br.Discard(len(utf8BOM))
	}
	return br
}

const utf8BOM = "\ufeff"

// csvSample is what the sampled rows of a set of CSV files allow: per
// column, a bit per csvTypes entry that every value parses as.
type csvSample struct {
	Names []string `json:"names"`
	Types []uint16 `json:"types"`
	Seen  []bool   `json:"seen"` // a non-empty value was sampled
}

// add narrows s by the first csvSampleRows rows of the CSV file at path.
func (s *csvSample) add(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(withoutBOM(f))
	r.ReuseRecord = true
	header, err := r.Read()
	if err == io.EOF {
		return errors.New("no header row to infer a schema from")
	}
	if err != nil {
		return err
	}
	file := csvSample{Names: slices.Clone(header), Types: make([]uint16, len(header)), Seen: make([]bool, len(header))}
	for i := range file.Types {
		file.Types[i] = allCSVTypes
	}
	for range csvSampleRows {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		for i, v := range rec {
			if v == "" {
				continue
			}
			file.Seen[i] = true
			for t := range csvTypes {
				if file.Types[i]&(1<<t) != 0 && !parsesAs(v, t) {
					file.Types[i] &^= 1 << t
				}
			}
		}
	}
	if s.Names == nil {
		*s = file
		return nil
	}
	return s.merge(file, "")
}

// merge narrows s by o, the sample of other files (of the rank named by
// who, if not empty).
func (s *csvSample) merge(o csvSample, who string) error {
	if !slices.Equal(s.Names, o.Names) {
		return fmt.Errorf("%scolumns %q differ from %q", who, o.Names, s.Names)
	}
	for i := range s.Types {
		s.Types[i] &= o.Types[i]
		s.Seen[i] = s.Seen[i] || o.Seen[i]
	}
	return nil
}

// schema is the schema s allows: per column the first type every sampled
// value parses as; string for a column with no value.
func (s *csvSample) schema() *arrow.Schema {
	fields := make([]arrow.Field, len(s.Names))
	for i, name := range s.Names {
		dt := arrow.DataType(arrow.BinaryTypes.String)
		for t := range csvTypes {
			if s.Seen[i] && s.Types[i]&(1<<t) != 0 {
				dt = csvTypes[t]
				break
			}
		}
		fields[i] = arrow.Field{Name: name, Type: dt, Nullable: true}
	}
	return arrow.NewSchema(fields, nil)
}

// csvInference is one rank's message in inferCSVSchema.
type csvInference struct {
	Err    string     `json:"err,omitempty"`
	NoFile bool       `json:"no_file,omitempty"`
	Sample *csvSample `json:"sample,omitempty"`
}

// inferCSVSchema samples this rank's CSV files and agrees on a schema with
// the other ranks (collective): a column's type is the first of csvTypes
// that parses every sampled value of every rank. A rank that fails makes
// it fail on every rank.
func inferCSVSchema(ctx context.Context, c *collective.Comm, paths []string) (*arrow.Schema, error) {
	var (
		mine     csvInference
		localErr error
	)
	files, err := Files(paths, c.Rank(), c.Size())
	if err == nil {
		var s csvSample
		for _, p := range files {
			if err = ctx.Err(); err != nil {
				break
			}
			if err = s.add(p); err != nil {
				err = withPath(p, err)
				break
			}
		}
		mine.Sample = &s
	}
	switch {
	case err != nil:
		localErr, mine = err, csvInference{Err: err.Error()}
	case len(files) == 0:
		mine = csvInference{NoFile: true}
	}
	msg, err := json.Marshal(mine)
	if err != nil {
		return nil, err
	}
	all, err := c.Allgather(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("infer the schema: %w", err)
	}
	var job *csvSample
	for r, m := range all {
		var in csvInference
		if err := json.Unmarshal(m, &in); err != nil {
			return nil, fmt.Errorf("schema inference of rank %d: %w", r, err)
		}
		switch {
		case in.Err != "" && r == c.Rank():
			return nil, localErr
		case in.Err != "":
			return nil, fmt.Errorf("rank %d failed: %s", r, in.Err)
		case in.NoFile || in.Sample == nil:
		case len(in.Sample.Types) != len(in.Sample.Names) || len(in.Sample.Seen) != len(in.Sample.Names):
			return nil, fmt.Errorf("schema inference of rank %d: malformed", r)
		case job == nil:
			job = in.Sample
		default:
			if err := job.merge(*in.Sample, fmt.Sprintf("rank %d's ", r)); err != nil {
				return nil, err
			}
		}
	}
	if job == nil {
		return nil, fmt.Errorf("no rank found a file among %q", paths)
	}
	return job.schema(), nil
}
