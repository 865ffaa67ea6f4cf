package frame

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/csv"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/fnmesh/fnmesh/arrowio"
	"github.com/fnmesh/fnmesh/collective"
)

// RankPlaceholder in a path stands for the rank's number: "part-{rank}.parquet"
// is part-0.parquet on rank 0, part-1.parquet on rank 1, and so on.
const RankPlaceholder = "{rank}"

// Files says which of the paths (and glob patterns) a rank reads. A path
// with RankPlaceholder is the rank's own: rank r reads what it names with
// the placeholder replaced by r. The other paths are a file set that every
// rank sees alike: its files, sorted by name, are dealt out round-robin, file
// i to rank i mod size. Globs that match nothing are not an error, but a job
// whose ranks together find no file is. It is an error unless size >= 1 and
// 0 <= rank < size.
func Files(paths []string, rank, size int) ([]string, error) {
	if size < 1 {
		return nil, fmt.Errorf("files: %d ranks: there must be at least one", size)
	}
	if rank < 0 || rank >= size {
		return nil, fmt.Errorf("files: rank %d is not one of the %d ranks (0 to %d)", rank, size, size-1)
	}
	var own, shared []string
	for _, p := range paths {
		isOwn := strings.Contains(p, RankPlaceholder)
		if isOwn {
			p = strings.ReplaceAll(p, RankPlaceholder, strconv.Itoa(rank))
		}
		matches := []string{p}
		if strings.ContainsAny(p, "*?[") {
			m, err := filepath.Glob(p)
			if err != nil {
				return nil, fmt.Errorf("pattern %q: %w", p, err)
			}
			matches = m
		}
		if isOwn {
			own = append(own, matches...)
			continue
		}
		for _, m := range matches {
			// one file, one name: "./a.csv" and a glob's "a.csv" would
			// otherwise both be dealt out, and the file read twice
			shared = append(shared, filepath.Clean(m))
		}
	}
	slices.Sort(shared)
	shared = slices.Compact(shared)
	for i, p := range shared {
		if i%size == rank {
			own = append(own, p)
		}
	}
	return own, nil
}

// fileReader reads one file into a table.
type fileReader func(ctx context.Context, mem memory.Allocator, path string) (arrow.Table, error)

// ReadParquet reads a frame from Parquet files, each rank the files Files
// assigns it, concatenated in order (collective: the ranks agree on the
// schema, and a rank with no file gets an empty partition of it). Files may
// differ in a column's nullability and in metadata (a column is nullable if
// it is in any file; the first file's metadata are kept), not in columns.
//
// A damaged file is an error: the stored Arrow schema is verified before it
// is decoded, dictionary pages and indices are checked against each other,
// compressed pages may not claim more than their headers, no one buffer may
// exceed max(256 MiB, 256 times the file's size), panics of arrow-go's
// reader are turned into errors, and the arrays read are validated. (Frame
// wraps arrow-go's Snappy and Zstandard codecs for the whole process to
// check the claims; see parquet_codecs.go.) Columns that hold structs are
// read twice, once leaf by leaf, since arrow-go reads a struct's children in
// goroutines of their own, where a panic would end the process.
func ReadParquet(ctx context.Context, c *collective.Comm, paths []string, opts ...Option) (*Frame, error) {
	return readFiles(ctx, c, "read parquet", paths, opts, readParquetFile)
}

// ReadIPC reads a frame from Arrow IPC files (the random-access file format,
// as WriteIPC writes; or the stream format), each rank the files Files
// assigns it (collective). Each file is read whole into memory and decoded
// with arrowio.DecodeIPC: the partition's arrays point into what was read
// (unless compressed), and a damaged file is an error, never a panic or an
// allocation of what a damaged length claims. A file is read through the
// stream it embeds; its footer is not used. What one file's compressed
// buffers decompress to is bounded, at 4 GiB in all by default, and so are
// the rows of columns that hold nothing per row: see WithDecodeLimits.
func ReadIPC(ctx context.Context, c *collective.Comm, paths []string, opts ...Option) (*Frame, error) {
	limits := newConfig(opts).decodeLimits()
	return readFiles(ctx, c, "read ipc", paths, opts, func(ctx context.Context, mem memory.Allocator, path string) (arrow.Table, error) {
		return readIPCFile(ctx, mem, path, limits...)
	})
}

// ReadCSV reads a frame from CSV files with a header row, each rank the
// files Files assigns it (collective). Empty fields are nulls. A file's
// header must name the schema's columns, in its order. With a nil
// schema the ranks infer one together first, from the first 65536 rows of
// every file: each column gets the first of int64, bool, date32,
// timestamp[s], timestamp[ns], float64 and string that parses all of those
// values on every rank (string when it has none). Every file must then have
// the same columns; a value past the sampled rows that its column's type
// cannot hold is an error (pass a schema then).
func ReadCSV(ctx context.Context, c *collective.Comm, paths []string, schema *arrow.Schema, opts ...Option) (*Frame, error) {
	inferred := schema == nil
	if inferred {
		if c == nil {
			return nil, errors.New("frame: read csv: nil communicator")
		}
		s, err := inferCSVSchema(ctx, c, paths)
		if err != nil {
			return nil, wrapErr(c.Rank(), "read csv", err)
		}
		schema = s
	}
	read := func(ctx context.Context, mem memory.Allocator, path string) (arrow.Table, error) {
		t, err := readCSVFile(ctx, mem, path, schema)
		if err != nil && inferred {
			err = fmt.Errorf("%w (the schema %v was inferred from the first %d rows of each file: pass one)", err, schema, csvSampleRows)
		}
		return t, err
	}
	return readFiles(ctx, c, "read csv", paths, opts, read)
}

// readFiles reads this rank's files and agrees on the schema with the other
// ranks: every rank sends its schema (or that it has no file, or why it
// failed), so a failure on one rank is an error on all of them.
func readFiles(ctx context.Context, c *collective.Comm, op string, paths []string, opts []Option, read fileReader) (*Frame, error) {
	if c == nil {
		return nil, fmt.Errorf("frame: %s: nil communicator", op)
	}
	cfg := newConfig(opts)
	fail := func(err error) (*Frame, error) {
		return nil, wrapErr(c.Rank(), op, err)
	}
	tm := cfg.timer(op)
	local, localErr := readAll(ctx, cfg.mem, paths, c.Rank(), c.Size(), read)
	if local != nil {
		defer local.Release()
	}
	var msg []byte
	switch {
	case localErr != nil:
		msg = append([]byte{msgError}, localErr.Error()...)
	case local == nil:
		msg = []byte{msgNoFile}
	default:
		b, err := encodeSchema(local.Schema())
		if err != nil {
			// Still take part in the all-gather, which says so to the
			// other ranks: they would otherwise wait for this one.
			localErr = err
			msg = append([]byte{msgError}, err.Error()...)
		} else {
			msg = append([]byte{msgSchema}, b...)
		}
	}
	all, err := c.Allgather(ctx, msg)
	if err != nil {
		return fail(errors.Join(localErr, fmt.Errorf("agree on the schema: %w", err)))
	}
	var schema *arrow.Schema
	from := -1
	for r, m := range all {
		if len(m) == 0 {
			return fail(fmt.Errorf("rank %d sent an empty message", r))
		}
		switch m[0] {
		case msgError:
			if r == c.Rank() {
				return fail(localErr)
			}
			return fail(fmt.Errorf("rank %d failed: %s", r, m[1:]))
		case msgSchema:
			s, err := decodeSchema(m[1:])
			if err != nil {
				return fail(fmt.Errorf("schema of rank %d: %w", r, err))
			}
			if schema == nil {
				schema, from = s, r
			} else if u, ok := unifySchemas(schema, s); ok {
				schema = u
			} else {
				return fail(fmt.Errorf("rank %d's files have schema %v but rank %d's have %v", from, schema, r, s))
			}
		}
	}
	if schema == nil {
		return fail(fmt.Errorf("no rank found a file among %q", paths))
	}
	if local == nil {
		local = emptyTable(schema)
		defer local.Release()
	} else if !local.Schema().Equal(schema) || !local.Schema().Metadata().Equal(schema.Metadata()) {
		local = withSchema(local, schema)
		defer local.Release()
	}
	tm.done(ctx, "read", local.NumRows(), 0)
	f, err := New(c, local, opts...)
	if err == nil {
		f.agreed.Store(true) // the schemas were compared above
	}
	return f, err
}

// withPath names the file path in err, a failure to read or write it,
// unless err names it already: os's errors do ("open /tmp/x.csv: no such
// file or directory", an *fs.PathError of that path), and naming it again
// gave "read csv: /tmp/x.csv: open /tmp/x.csv: ...".
func withPath(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

const (
	msgNoFile byte = iota
	msgSchema
	msgError
)

// readAll reads and concatenates this rank's files; nil when it has none.
func readAll(ctx context.Context, mem memory.Allocator, paths []string, rank, size int, read fileReader) (arrow.Table, error) {
	files, err := Files(paths, rank, size)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, nil
	}
	tables := make([]arrow.Table, 0, len(files))
	defer func() { releaseTables(tables) }()
	var schema *arrow.Schema // of the files so far
	for _, p := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t, err := read(ctx, mem, p)
		if err != nil {
			return nil, withPath(p, err)
		}
		if len(tables) > 0 {
			u, ok := unifySchemas(schema, t.Schema())
			if !ok {
				t.Release()
				return nil, fmt.Errorf("%s has schema %v but %s has %v", p, t.Schema(), files[0], schema)
			}
			schema = u
		} else {
			schema = t.Schema()
		}
		tables = append(tables, t)
	}
	for i, t := range tables {
		if !t.Schema().Equal(schema) || !t.Schema().Metadata().Equal(schema.Metadata()) {
			tables[i] = withSchema(t, schema)
			t.Release()
		}
	}
	return arrowio.ConcatTables(tables)
}

// unifySchemas is the schema that files of schemas a and b read as together,
// as pyarrow's datasets, Polars and DuckDB read them: the same columns (names
// and types, in order), each nullable if it is in either, with a's metadata
// (the schema's and the columns'). ok is false when the columns differ.
func unifySchemas(a, b *arrow.Schema) (_ *arrow.Schema, ok bool) {
	if a.NumFields() != b.NumFields() {
		return nil, false
	}
	fields := make([]arrow.Field, a.NumFields())
	for i, fa := range a.Fields() {
		fb := b.Field(i)
		if fa.Name != fb.Name || !arrow.TypeEqual(fa.Type, fb.Type) {
			return nil, false
		}
		fa.Nullable = fa.Nullable || fb.Nullable
		fields[i] = fa
	}
	md := a.Metadata()
	return arrow.NewSchema(fields, &md), true
}

// withSchema is t with schema s, which differs from t's only in nullability
// and metadata (the same columns, retained).
func withSchema(t arrow.Table, s *arrow.Schema) arrow.Table {
	cols := make([]arrow.Column, t.NumCols())
	for i := range cols {
		cols[i] = *t.Column(int(i))
	}
	return newTableOf(s, cols, t.NumRows())
}

// encodeSchema encodes s as an IPC stream with no batches. arrow-go's IPC
// writer panics on a type it cannot write: that is an error here.
func encodeSchema(s *arrow.Schema) (_ []byte, err error) {
	defer recoverPanic(&err, "encode schema")
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(s))
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	return buf.Bytes(), nil
}

func decodeSchema(b []byte) (_ *arrow.Schema, err error) {
	defer recoverPanic(&err, "decode schema")
	r, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer r.Release()
	return r.Schema(), nil
}

// A reader of a file allocates through an allocator that refuses any one
// allocation above readLimit(the file's size): a damaged length in a file (a
// page size, an uncompressed size) must be an error, not an attempt to
// allocate terabytes, which ends the process. The limit is generous for real
// data, whose largest buffer (a decompressed page or body, a column of a row
// group) rarely exceeds a few hundred times the file's size.
const (
	minReadLimit   = 256 << 20 // small files too may expand this much
	readLimitRatio = 256       // bytes per byte of file above minReadLimit
	maxReadLimit   = 1<<31 - 1 // one buffer of an array: an int on 32-bit platforms too
)

func readLimit(size int64) int {
	if size > maxReadLimit/readLimitRatio {
		return maxReadLimit
	}
	return max(minReadLimit, int(size)*readLimitRatio)
}

// openSized opens a file and returns it with its size.
func openSized(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

func readParquetFile(ctx context.Context, mem memory.Allocator, path string) (arrow.Table, error) {
	f, size, err := openSized(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readParquet(ctx, arrowio.LimitAllocator(mem, readLimit(size)), f)
}

// readParquet reads a Parquet file, turning arrow-go's panics on damaged
// input into errors and checking the arrays it returns. It reads the columns
// one after the other in this goroutine rather than with pqarrow.ReadTable,
// which makes each column's reader in a goroutine of its own, where a panic
// could not be recovered.
func readParquet(ctx context.Context, mem memory.Allocator, r parquet.ReaderAtSeeker) (_ arrow.Table, err error) {
	defer recoverPanic(&err, "parquet")
	props := parquet.NewReaderProperties(mem)
	// Read column chunks through a small buffer: unbuffered, the reader
	// allocates (with make, not mem) a buffer of the size the metadata gives.
	props.BufferedStreamEnabled = true
	pf, err := file.NewParquetReader(r, file.WithReadProps(props))
	if err != nil {
		return nil, err
	}
	if err := checkStoredSchema(pf, mem); err != nil {
		return nil, err
	}
	if err := checkDictionaries(pf); err != nil {
		return nil, err
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, mem)
	if err != nil {
		return nil, err
	}
	leaves := make([]int, pf.MetaData().Schema.NumColumns())
	included := make(map[int]bool, len(leaves))
	for i := range leaves {
		leaves[i] = i
		included[i] = true
	}
	rowGroups := make([]int, pf.NumRowGroups())
	for i := range rowGroups {
		rowGroups[i] = i
	}
	fieldIdx, err := fr.Manifest.GetFieldIndices(leaves)
	if err != nil {
		return nil, err
	}
	fields := make([]arrow.Field, 0, len(fieldIdx))
	cols := make([]arrow.Column, 0, len(fieldIdx))
	defer func() {
		for i := range cols {
			cols[i].Release()
		}
	}()
	for _, fi := range fieldIdx {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if sf := &fr.Manifest.Fields[fi]; holdsType(sf.Field.Type, arrow.STRUCT) {
			// pqarrow reads the children of a struct in goroutines of their
			// own: read its leaves here first, where a panic on damaged data
			// is recovered, so that the same reads do not panic there.
			if err := readLeaves(ctx, *fr, sf, rowGroups, included); err != nil {
				return nil, fmt.Errorf("column %q: %w", sf.Field.Name, err)
			}
		}
		cr, err := fr.GetFieldReader(ctx, fi, included, rowGroups)
		if err != nil {
			return nil, fmt.Errorf("column %d: %w", fi, err)
		}
		if cr == nil {
			continue // no leaf of it is included (cannot happen: all are)
		}
		ch, err := readColumn(ctx, cr, pf.NumRows())
		field := *cr.Field()
		cr.Release()
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", field.Name, err)
		}
		if !arrow.TypeEqual(ch.DataType(), field.Type) {
			ch.Release()
			return nil, fmt.Errorf("column %q: data of type %s for a field of type %s", field.Name, ch.DataType(), field.Type)
		}
		if origin := fr.Manifest.OriginSchema; origin != nil && fi < origin.NumFields() && origin.Field(fi).Name == field.Name &&
			!arrow.TypeEqual(origin.Field(fi).Type, field.Type, arrow.CheckMetadata()) {
			// pqarrow reads some types as others Parquet stores them as
			// (timestamp[s] as timestamp[ms], date64 as date32, a dictionary
			// as int32-indexed or not at all, nested fields with other names
			// or a PARQUET:field_id), at any depth: back to the stored
			// schema's, exactly, or an error (see restoreType).
			restored, err := restoreType(ctx, mem, ch, origin.Field(fi).Type)
			ch.Release()
			if err != nil {
				return nil, fmt.Errorf("column %q: %w", field.Name, err)
			}
			ch, field.Type = restored, origin.Field(fi).Type
		}
		fields = append(fields, field)
		cols = append(cols, *arrow.NewColumn(field, ch))
		ch.Release()
	}
	rows := int64(0)
	if len(cols) > 0 {
		rows = int64(cols[0].Len())
	}
	for i := range cols {
		if int64(cols[i].Len()) != rows {
			return nil, fmt.Errorf("column %q has %d rows but %q has %d", cols[i].Name(), cols[i].Len(), cols[0].Name(), rows)
		}
	}
	// The stored schema's metadata, as pqarrow.FromParquet takes them
	// (the manifest's SchemaMeta, which frame took before, is never set).
	meta := fr.Manifest.SchemaMeta
	if origin := fr.Manifest.OriginSchema; origin != nil {
		md := origin.Metadata()
		meta = &md
	}
	t := array.NewTable(arrow.NewSchema(fields, meta), cols, rows)
	defer t.Release()
	if err := arrowio.ValidateTable(t); err != nil {
		return nil, err
	}
	return withoutParquetIDs(t), nil
}

// parquetBatchRows is how many rows of a Parquet column readParquet decodes
// at a time, between two looks at its context.
const parquetBatchRows = 64 << 10

// readColumn reads the rows rows of the column cr reads, parquetBatchRows at
// a time, looking at ctx before each batch: one chunk per batch. It stops
// early if the file has fewer rows (the caller compares the columns'
// lengths). The caller releases the column.
func readColumn(ctx context.Context, cr *pqarrow.ColumnReader, rows int64) (_ *arrow.Chunked, err error) {
	var chunks []arrow.Array
	defer func() { releaseAll(chunks) }()
	for read := int64(0); read < rows; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, err := cr.NextBatch(min(parquetBatchRows, rows-read))
		if err != nil {
			return nil, err
		}
		for _, a := range b.Chunks() {
			a.Retain()
			chunks = append(chunks, a)
		}
		n := int64(b.Len())
		b.Release()
		if n == 0 {
			break
		}
		read += n
	}
	return arrow.NewChunked(cr.Field().Type, chunks), nil
}

// holdsType reports whether dt is, or holds at any depth, a type of id.
func holdsType(dt arrow.DataType, id arrow.Type) bool {
	if dt.ID() == id {
		return true
	}
	if n, ok := dt.(arrow.NestedType); ok {
		for _, f := range n.Fields() {
			if holdsType(f.Type, id) {
				return true
			}
		}
	}
	return false
}

// readLeaves reads every leaf column under sf, as pqarrow reads it under a
// struct (the same leaf reader: pages decoded, values turned into an
// array), but in this goroutine, and drops what it read. probe is a copy of
// the file's reader for this purpose.
func readLeaves(ctx context.Context, probe pqarrow.FileReader, sf *pqarrow.SchemaField, rowGroups []int, included map[int]bool) error {
	var leaves []pqarrow.SchemaField
	var collect func(f *pqarrow.SchemaField)
	collect = func(f *pqarrow.SchemaField) {
		if f.IsLeaf() {
			leaves = append(leaves, *f)
		}
		for i := range f.Children {
			collect(&f.Children[i])
		}
	}
	collect(sf)
	m := *probe.Manifest
	m.Fields = leaves // each leaf read as a field of its own: no struct reader
	probe.Manifest = &m
	for i := range leaves {
		cr, err := probe.GetFieldReader(ctx, i, included, rowGroups)
		if err != nil {
			return fmt.Errorf("leaf %d: %w", leaves[i].ColIndex, err)
		}
		if cr == nil {
			continue
		}
		ch, err := readColumn(ctx, cr, probe.ParquetReader().NumRows())
		cr.Release()
		if err != nil {
			return fmt.Errorf("leaf %d: %w", leaves[i].ColIndex, err)
		}
		ch.Release()
	}
	return nil
}

// checkStoredSchema checks the Arrow schema a Parquet file may store (as
// WriteParquet does) before pqarrow reads it: pqarrow decodes it with
// arrow-go's IPC reader, which trusts its flatbuffer (a damaged vector
// length makes it allocate accordingly); arrowio.DecodeIPC verifies it. It
// decodes the value as pqarrow does (base64, padded or not).
func checkStoredSchema(pf *file.Reader, mem memory.Allocator) error {
	serialized := pf.MetaData().KeyValueMetadata().FindValue("ARROW:schema")
	if serialized == nil {
		return nil
	}
	var decoded []byte
	var err error
	if len(*serialized)%4 == 0 {
		decoded, err = base64.StdEncoding.DecodeString(*serialized)
	}
	if len(decoded) == 0 || err != nil {
		if decoded, err = base64.RawStdEncoding.DecodeString(*serialized); err != nil {
			return fmt.Errorf("the stored Arrow schema: %w", err)
		}
	}
	t, err := arrowio.DecodeIPC(decoded, arrowio.WithAllocator(mem))
	if err != nil {
		return fmt.Errorf("the stored Arrow schema: %w", err)
	}
	t.Release()
	return nil
}

// sameLayout reports whether arrays of types a and b have the same buffers
// and children: the types are equal but for the names and metadata of
// nested fields (arrow.TypeEqual ignores a list's element name, not a
// struct's field names).
func sameLayout(a, b arrow.DataType) bool {
	if a.ID() != b.ID() {
		return false
	}
	an, aok := a.(arrow.NestedType)
	bn, bok := b.(arrow.NestedType)
	if !aok || !bok {
		return arrow.TypeEqual(a, b)
	}
	if a.ID() == arrow.FIXED_SIZE_LIST && a.(*arrow.FixedSizeListType).Len() != b.(*arrow.FixedSizeListType).Len() {
		return false
	}
	if a.ID() == arrow.MAP && a.(*arrow.MapType).KeysSorted != b.(*arrow.MapType).KeysSorted {
		return false
	}
	af, bf := an.Fields(), bn.Fields()
	if len(af) != len(bf) {
		return false
	}
	for i := range af {
		if af[i].Nullable != bf[i].Nullable || !sameLayout(af[i].Type, bf[i].Type) {
			return false
		}
	}
	switch a.ID() {
	case arrow.LIST, arrow.LARGE_LIST, arrow.FIXED_SIZE_LIST, arrow.MAP, arrow.STRUCT:
		return true
	}
	return arrow.TypeEqual(a, b) // unions, list views, ...: only when equal
}

func retypeData(d arrow.ArrayData, dt arrow.DataType) arrow.ArrayData {
	children := d.Children()
	var kids []arrow.ArrayData
	if n, ok := dt.(arrow.NestedType); ok && len(children) > 0 {
		fields := n.Fields()
		kids = make([]arrow.ArrayData, len(children))
		for i, c := range children {
			kids[i] = retypeData(c, fields[i].Type)
		}
		defer func() {
			for _, k := range kids {
				k.Release()
			}
		}()
	}
	if dt.ID() == arrow.DICTIONARY { // the same type (sameLayout): keep its dictionary
		dict := d.Dictionary()
		return array.NewDataWithDictionary(dt, d.Len(), d.Buffers(), d.NullN(), d.Offset(), dict.(*array.Data))
	}
	return array.NewData(dt, d.Len(), d.Buffers(), kids, d.NullN(), d.Offset())
}

// withoutParquetIDs returns t with the "PARQUET:field_id" entries the
// Parquet reader adds to every field's metadata removed, so that a frame
// read back has the schema it was written with.
func withoutParquetIDs(t arrow.Table) arrow.Table {
	s := t.Schema()
	fields := make([]arrow.Field, s.NumFields())
	cols := make([]arrow.Column, s.NumFields())
	for i := range fields {
		fl := s.Field(i)
		var keys, vals []string
		for j, k := range fl.Metadata.Keys() {
			if !strings.HasPrefix(k, "PARQUET:") {
				keys, vals = append(keys, k), append(vals, fl.Metadata.Values()[j])
			}
		}
		fl.Metadata = arrow.NewMetadata(keys, vals)
		fields[i] = fl
		cols[i] = *arrow.NewColumn(fl, t.Column(i).Data())
	}
	md := s.Metadata()
	out := array.NewTable(arrow.NewSchema(fields, &md), cols, t.NumRows())
	for i := range cols {
		cols[i].Release()
	}
	return out
}

// readIPCFile reads an Arrow IPC file or stream whole into memory and
// decodes it with arrowio.DecodeIPC, which checks every message before
// arrow-go reads it and every batch after (arrow-go's file reader follows
// the footer's offsets and lengths unchecked: a damaged one makes it
// allocate whatever it says). The table points into what was read.
func readIPCFile(ctx context.Context, mem memory.Allocator, path string, opts ...arrowio.Option) (arrow.Table, error) {
	f, size, err := openSized(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if int64(int(size)) != size {
		return nil, fmt.Errorf("a file of %d bytes does not fit in memory", size)
	}
	data := make([]byte, size)
	// Reading is what takes time (decoding points into data): read
	// ipcReadBytes at a time, looking at ctx before each.
	for off := 0; off < len(data); off += ipcReadBytes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(f, data[off:min(off+ipcReadBytes, len(data))]); err != nil {
			return nil, err
		}
	}
	return decodeIPC(data, arrowio.LimitAllocator(mem, readLimit(size)), opts...)
}

// ipcReadBytes is how many bytes of an IPC file readIPCFile reads between
// two looks at its context (about a millisecond of reading).
const ipcReadBytes = 1 << 20

func decodeIPC(data []byte, mem memory.Allocator, opts ...arrowio.Option) (_ arrow.Table, err error) {
	defer recoverPanic(&err, "ipc")
	t, err := arrowio.DecodeIPC(data, append([]arrowio.Option{arrowio.WithAllocator(mem)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("not an Arrow IPC file or stream, or a damaged one: %w", err)
	}
	return t, nil
}

// csvBatchRows is how many rows of a CSV file are parsed into one record
// batch.
const csvBatchRows = 64 << 10

// newCSVReader is csv.NewReader with its panic on a schema it cannot read
// (a column of a type it does not parse, such as time32) turned into an
// error.
func newCSVReader(f io.Reader, schema *arrow.Schema, opts ...csv.Option) (r *csv.Reader, err error) {
	defer recoverPanic(&err, "csv reader")
	return csv.NewReader(f, schema, opts...), nil
}

// readCSVFile reads a CSV file a batch of csvBatchRows rows at a time,
// looking at ctx before each.
func readCSVFile(ctx context.Context, mem memory.Allocator, path string, schema *arrow.Schema) (arrow.Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := newCSVReader(withoutBOM(f), schema, csv.WithHeader(true), csv.WithNullReader(true, ""), csv.WithChunk(csvBatchRows), csv.WithAllocator(mem))
	if err != nil {
		return nil, err
	}
	defer r.Release()
	var recs []arrow.RecordBatch
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("row %d: %w", len(recs)*csvBatchRows, err)
		}
		if !r.Next() {
			break
		}
		rec := r.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	// arrow-go's reader takes the columns by position and names them by
	// the header: a header must name the schema's columns, in its order.
	if got, want := fieldNames(r.Schema()), fieldNames(schema); !slices.Equal(got, want) {
		return nil, fmt.Errorf("the header names the columns %q, the schema %q", got, want)
	}
	return array.NewTableFromRecords(schema, recs), nil
}

// checkParquetDictionaries fails on a dictionary (at any depth in dt) of
// timestamp[s] or time32[s] values: Parquet has no unit of seconds, and
// arrow-go's writer, which turns plain seconds into milliseconds, writes a
// dictionary's values as they are, in a column that says milliseconds: the
// file would hold values a thousand times too small.
func checkParquetDictionaries(dt arrow.DataType) error {
	switch dt := dt.(type) {
	case *arrow.DictionaryType:
		if u, ok := dt.ValueType.(arrow.TemporalWithUnit); ok && u.TimeUnit() == arrow.Second &&
			(dt.ValueType.ID() == arrow.TIMESTAMP || dt.ValueType.ID() == arrow.TIME32) {
			return fmt.Errorf("a dictionary of %s cannot be written to Parquet (arrow-go's writer would write its values as milliseconds unconverted); decode it or cast its values to milliseconds", dt.ValueType)
		}
	case arrow.NestedType:
		for _, f := range dt.Fields() {
			if err := checkParquetDictionaries(f.Type); err != nil {
				return fmt.Errorf("field %q: %w", f.Name, err)
			}
		}
	}
	return nil
}

// withFixedSizeListsAtZero returns t (retained) with every chunk that holds
// a fixed-size list and is a slice (at any depth) copied to offset 0:
// arrow-go's Parquet writer writes a sliced fixed-size list, or one in a
// sliced struct, from its values' first position instead of the slice's.
func withFixedSizeListsAtZero(t arrow.Table, mem memory.Allocator) (_ arrow.Table, err error) {
	defer recoverPanic(&err, "copy sliced fixed-size lists")
	s := t.Schema()
	cols := make([]arrow.Column, 0, s.NumFields())
	defer func() {
		for i := range cols {
			cols[i].Release()
		}
	}()
	for i := range s.NumFields() {
		ch := t.Column(i).Data()
		if !holdsType(s.Field(i).Type, arrow.FIXED_SIZE_LIST) {
			cols = append(cols, *arrow.NewColumn(s.Field(i), ch))
			continue
		}
		chunks := make([]arrow.Array, len(ch.Chunks()))
		for j, a := range ch.Chunks() {
			if !sliced(a.Data()) {
				a.Retain()
				chunks[j] = a
				continue
			}
			cp, err := array.Concatenate([]arrow.Array{a}, mem)
			if err != nil {
				releaseAll(chunks)
				return nil, fmt.Errorf("column %q: %w", s.Field(i).Name, err)
			}
			chunks[j] = cp
		}
		c := arrow.NewChunked(s.Field(i).Type, chunks)
		releaseAll(chunks)
		cols = append(cols, *arrow.NewColumn(s.Field(i), c))
		c.Release()
	}
	return array.NewTable(s, cols, t.NumRows()), nil
}

// sliced reports whether d or an array under it has an offset.
func sliced(d arrow.ArrayData) bool {
	if d.Offset() != 0 {
		return true
	}
	for _, c := range d.Children() {
		if sliced(c) {
			return true
		}
	}
	return false
}

// WriteParquet writes this rank's partition to the Parquet file the path
// names, RankPlaceholder replaced by the rank (it is required when there is
// more than one rank), and returns that file's name. Directories are
// created; the file appears whole or not at all (written aside, then
// renamed). It is local: every rank writes its own file, empty partitions
// included (a file with the schema and no rows).
func (f *Frame) WriteParquet(ctx context.Context, path string) (string, error) {
	return f.writeFile(ctx, "write parquet", path, func(w io.Writer) error {
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithAllocator(f.cfg.mem))
		part := f.table()
		defer part.Release()
		for _, fl := range part.Schema().Fields() {
			if err := checkParquetDictionaries(fl.Type); err != nil {
				return fmt.Errorf("column %q: %w", fl.Name, err)
			}
		}
		t, err := withFixedSizeListsAtZero(part, f.cfg.mem)
		if err != nil {
			return err
		}
		defer t.Release()
		return pqarrow.WriteTable(t, w, 1<<20, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	})
}

// WriteIPC writes this rank's partition as an Arrow IPC file (see
// WriteParquet for the path and the guarantees). A dictionary column whose
// chunks carry different dictionaries (as after an exchange) is written
// with one dictionary, their union: the file format has one per column.
func (f *Frame) WriteIPC(ctx context.Context, path string) (string, error) {
	return f.writeFile(ctx, "write ipc", path, func(w io.Writer) error {
		part := f.table()
		defer part.Release()
		u, err := array.UnifyTableDicts(f.cfg.mem, part)
		if err != nil {
			return fmt.Errorf("unify dictionaries: %w", err)
		}
		defer u.Release()
		t, err := heapDictionaries(u)
		if err != nil {
			return err
		}
		defer t.Release()
		fw, err := ipc.NewFileWriter(w, ipc.WithSchema(t.Schema()), ipc.WithAllocator(f.cfg.mem))
		if err != nil {
			return err
		}
		if err := writeBatches(ctx, t, fw.Write); err != nil {
			_ = fw.Close()
			return err
		}
		return fw.Close()
	})
}

// heapDictionaries returns t with the dictionary of every dictionary column
// copied to memory of a Go allocator, which the garbage collector frees (t
// itself, retained, when it has no dictionary column). arrow-go v18.6.0's
// ipc.FileWriter keeps a reference to every dictionary it writes and never
// drops it (its Close does not, unlike the stream Writer's), so a dictionary
// of the frame's allocator would stay allocated there after the frame and
// its tables are released. Chunks that share a dictionary share its copy.
func heapDictionaries(t arrow.Table) (_ arrow.Table, err error) {
	defer recoverPanic(&err, "copy dictionaries")
	s := t.Schema()
	if !slices.ContainsFunc(s.Fields(), func(f arrow.Field) bool { return f.Type.ID() == arrow.DICTIONARY }) {
		t.Retain()
		return t, nil
	}
	heap := memory.NewGoAllocator()
	copies := map[arrow.ArrayData]arrow.Array{}
	defer func() {
		for _, c := range copies {
			c.Release()
		}
	}()
	cols := make([]arrow.Column, 0, s.NumFields())
	defer func() {
		for i := range cols {
			cols[i].Release()
		}
	}()
	for i, fl := range s.Fields() {
		c := t.Column(i)
		if fl.Type.ID() != arrow.DICTIONARY {
			c.Retain()
			cols = append(cols, *c)
			continue
		}
		chunks := make([]arrow.Array, 0, len(c.Data().Chunks()))
		for _, a := range c.Data().Chunks() {
			d, ok := a.(*array.Dictionary)
			if !ok {
				releaseAll(chunks)
				return nil, fmt.Errorf("column %q: chunk of type %T", fl.Name, a)
			}
			dict := d.Dictionary()
			cp, ok := copies[dict.Data()]
			if !ok {
				if cp, err = array.Concatenate([]arrow.Array{dict}, heap); err != nil {
					releaseAll(chunks)
					return nil, fmt.Errorf("column %q: copy dictionary: %w", fl.Name, err)
				}
				copies[dict.Data()] = cp
			}
			chunks = append(chunks, array.NewDictionaryArray(d.DataType(), d.Indices(), cp))
		}
		ch := arrow.NewChunked(fl.Type, chunks)
		releaseAll(chunks)
		cols = append(cols, *arrow.NewColumn(fl, ch))
		ch.Release()
	}
	return array.NewTable(s, cols, t.NumRows()), nil
}

// WriteCSV writes this rank's partition as CSV with a header row, nulls as
// empty fields, dictionary columns as their values (see WriteParquet for
// the path and the guarantees). A column of a type the CSV writer cannot
// print (a struct, for one) is an error.
func (f *Frame) WriteCSV(ctx context.Context, path string) (string, error) {
	return f.writeFile(ctx, "write csv", path, func(w io.Writer) error {
		part := f.table()
		defer part.Release()
		t, err := withoutDictionaries(ctx, f.cfg.mem, part)
		if err != nil {
			return err
		}
		defer t.Release()
		if t.NumCols() == 1 {
			w = &quoteEmptyLines{w: w, lineStart: true}
		}
		if t.NumCols() > 0 && strings.HasPrefix(t.Schema().Field(0).Name, utf8BOM) {
			// ReadCSV drops one mark at the start of a file: one more keeps
			// the name's own.
			if _, err := io.WriteString(w, utf8BOM); err != nil {
				return err
			}
		}
		cw := csv.NewWriter(w, t.Schema(), csv.WithHeader(true), csv.WithNullWriter(""), csv.WithCustomTypeConverter(csvDecimals))
		if t.NumRows() == 0 { // the header, so that the file says its columns
			cols := emptyColumns(f.cfg.mem, t.Schema())
			rec := array.NewRecordBatch(t.Schema(), cols, 0)
			releaseAll(cols)
			defer rec.Release()
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		if err := writeBatches(ctx, t, cw.Write); err != nil {
			return err
		}
		if err := cw.Flush(); err != nil {
			return err
		}
		return cw.Error()
	})
}

// quoteEmptyLines passes a CSV stream on with every empty line (outside a
// quoted field) written as a quoted empty field, `""`. A table of one column
// writes a null (or an empty string) as an empty line, which CSV readers
// skip (encoding/csv does): the row would vanish. `""` is one empty field.
type quoteEmptyLines struct {
	w         io.Writer
	quoted    bool // inside a quoted field
	lineStart bool // at the start of a line
	buf       []byte
}

func (q *quoteEmptyLines) Write(p []byte) (int, error) {
	q.buf = q.buf[:0]
	for _, c := range p {
		switch {
		case c == '"':
			q.quoted = !q.quoted // an escaped quote ("") toggles twice
		case !q.quoted && c == '\n' && q.lineStart:
			q.buf = append(q.buf, '"', '"')
		}
		q.buf = append(q.buf, c)
		q.lineStart = !q.quoted && c == '\n' // the writer ends lines with \n alone
	}
	if _, err := q.w.Write(q.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// csvDecimals prints a decimal column's values exactly, as ReadCSV parses
// them. (arrow-go's CSV writer prints a decimal through a binary floating
// point number of 64 bits or the value's bit length, whichever is more,
// divided by a float64 power of ten: digits of many values come out wrong.)
func csvDecimals(dt arrow.DataType, col arrow.Array) ([]string, bool) {
	var str func(i int) string
	switch a := col.(type) {
	case *array.Decimal128:
		scale := dt.(*arrow.Decimal128Type).Scale
		str = func(i int) string { return a.Value(i).ToString(scale) }
	case *array.Decimal256:
		scale := dt.(*arrow.Decimal256Type).Scale
		str = func(i int) string { return a.Value(i).ToString(scale) }
	default:
		return nil, false
	}
	out := make([]string, col.Len())
	for i := range out {
		if col.IsValid(i) {
			out[i] = str(i)
		}
	}
	return out, true
}

// emptyColumns returns a zero-length array per field (owned by the caller;
// array.NewRecordBatch retains them, so release after building).
func emptyColumns(mem memory.Allocator, s *arrow.Schema) []arrow.Array {
	cols := make([]arrow.Array, s.NumFields())
	for i := range cols {
		cols[i] = array.MakeArrayOfNull(mem, s.Field(i).Type, 0)
	}
	return cols
}

// writeBatches writes t in batches of up to 64 Ki rows, looking at ctx
// before each.
func writeBatches(ctx context.Context, t arrow.Table, write func(arrow.RecordBatch) error) error {
	tr := array.NewTableReader(t, 64<<10)
	defer tr.Release()
	for tr.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := write(tr.RecordBatch()); err != nil {
			return err
		}
	}
	return tr.Err()
}

// safeWrite runs write, turning a panic of arrow-go's writers (which panic
// on column types they do not support) into an error.
func safeWrite(write func(io.Writer) error, w io.Writer) (err error) {
	defer recoverPanic(&err, "write")
	return write(w)
}

func (f *Frame) writeFile(ctx context.Context, op, path string, write func(io.Writer) error) (string, error) {
	if !strings.Contains(path, RankPlaceholder) && f.Size() > 1 {
		return "", f.errorf(op, fmt.Errorf("path %q has no %s: the ranks would overwrite each other's file", path, RankPlaceholder))
	}
	if err := ctx.Err(); err != nil {
		return "", f.errorf(op, err)
	}
	tm := f.cfg.timer(op)
	name := strings.ReplaceAll(path, RankPlaceholder, strconv.Itoa(f.Rank()))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return "", f.errorf(op, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return "", f.errorf(op, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	// Only Write: some writers (Parquet's) close a sink that can be closed.
	if err := safeWrite(write, struct{ io.Writer }{tmp}); err != nil {
		tmp.Close()
		return "", f.errorf(op, withPath(name, err))
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", f.errorf(op, err)
	}
	if err := tmp.Close(); err != nil {
		return "", f.errorf(op, withPath(name, err))
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return "", f.errorf(op, err)
	}
	tm.done(ctx, "write", f.NumRows(), 0)
	return name, nil
}
