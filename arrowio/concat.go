package arrowio

import (
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// ConcatTables returns the rows of tables, in order, as one table: zero copy, its columns are the
// tables' chunks one after another. Every table must have the schema of the first (nil entries are
// skipped); an empty list, or only nil entries, is an error. The caller keeps ownership of tables and
// releases the result.
func ConcatTables(tables []arrow.Table) (arrow.Table, error) {
	var schema *arrow.Schema
	for i, t := range tables {
		if t == nil {
			continue
		}
		if schema == nil {
			schema = t.Schema()
			continue
		}
		if !t.Schema().Equal(schema) {
			return nil, fmt.Errorf("arrowio: concat tables: table %d: %s", i, schemaDiff(t.Schema(), schema))
		}
	}
	if schema == nil {
		return nil, errors.New("arrowio: concat tables: no tables")
	}
	chunks := make([][]arrow.Array, schema.NumFields())
	rows := int64(0) // a table of no columns has rows all the same
	for _, t := range tables {
		if t == nil {
			continue
		}
		rows += t.NumRows()
		for c := range chunks {
			chunks[c] = append(chunks[c], t.Column(c).Data().Chunks()...)
		}
	}
	return newTableRows(schema, chunks, rows), nil
}

// schemaDiff describes how schema got differs from want, for errors.
func schemaDiff(got, want *arrow.Schema) string {
	if got.NumFields() != want.NumFields() {
		return fmt.Sprintf("%d columns %v where %d %v were expected", got.NumFields(), fieldNames(got), want.NumFields(), fieldNames(want))
	}
	for i := range got.NumFields() {
		g, w := got.Field(i), want.Field(i)
		if g.Equal(w) {
			continue
		}
		switch {
		case g.Name != w.Name:
			return fmt.Sprintf("column %d is %q where %q was expected", i, g.Name, w.Name)
		case !arrow.TypeEqual(g.Type, w.Type, arrow.CheckMetadata()):
			return fmt.Sprintf("column %d (%q) has type %s where %s was expected", i, g.Name, g.Type, w.Type)
		case g.Nullable != w.Nullable:
			return fmt.Sprintf("column %d (%q) has nullable=%v where %v was expected", i, g.Name, g.Nullable, w.Nullable)
		default:
			return fmt.Sprintf("column %d (%q) has field metadata %v where %v was expected", i, g.Name, g.Metadata, w.Metadata)
		}
	}
	return fmt.Sprintf("schema %s where %s was expected", got, want)
}

func releaseTables(ts []arrow.Table) {
	for _, t := range ts {
		if t != nil {
			t.Release()
		}
	}
}
