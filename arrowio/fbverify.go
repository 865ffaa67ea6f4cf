package arrowio

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A verifier for the flatbuffer metadata of Arrow IPC messages (format/Message.fbs, Schema.fbs).
// arrow-go reads metadata without checking it: a vector whose length field says four billion makes it
// allocate accordingly, which ends the process. Every message is checked here before arrow-go sees it:
// each table, vtable, string and vector the Arrow schema can reach lies inside the buffer, nesting is
// bounded, and so is the total work (a buffer can point many times at one subtree).

type fbKind uint8

const (
	fbScalar    fbKind = iota + 1 // a fixed-size value inline in the table
	fbString                      // offset to a length-prefixed byte string
	fbTable                       // offset to a table
	fbTableVec                    // offset to a vector of offsets to tables
	fbStructVec                   // offset to a vector of fixed-size structs (or scalars)
	fbUnion                       // offset to a table whose type is the ubyte in the previous slot
)

type fbField struct {
	kind  fbKind
	size  int            // scalar or struct size
	table *fbTableSpec   // fbTable, fbTableVec
	union []*fbTableSpec // fbUnion: by type code (nil: no table to check beyond bounds)
}

type fbTableSpec struct {
	name   string
	fields []fbField // by vtable slot
}

func scalar(size int) fbField { return fbField{kind: fbScalar, size: size} }

var (
	fbKeyValue = &fbTableSpec{name: "KeyValue", fields: []fbField{{kind: fbString}, {kind: fbString}}}
	fbInt      = &fbTableSpec{name: "Int", fields: []fbField{scalar(4), scalar(1)}}
	fbEmpty    = &fbTableSpec{name: "type"}
	fbField_   = &fbTableSpec{name: "Field"}
	fbRecord   = &fbTableSpec{name: "RecordBatch", fields: []fbField{
		scalar(8),                     // length
		{kind: fbStructVec, size: 16}, // nodes: FieldNode{length, null_count}
		{kind: fbStructVec, size: 16}, // buffers: Buffer{offset, length}
		{kind: fbTable, table: &fbTableSpec{name: "BodyCompression", fields: []fbField{scalar(1), scalar(1)}}},
		{kind: fbStructVec, size: 8}, // variadicBufferCounts
	}}
	fbSchema = &fbTableSpec{name: "Schema", fields: []fbField{
		scalar(2),                             // endianness
		{kind: fbTableVec, table: fbField_},   // fields
		{kind: fbTableVec, table: fbKeyValue}, // custom_metadata
		{kind: fbStructVec, size: 8},          // features
	}}
	fbDictBatch = &fbTableSpec{name: "DictionaryBatch", fields: []fbField{scalar(8), {kind: fbTable, table: fbRecord}, scalar(1)}}
	fbMessage   = &fbTableSpec{name: "Message", fields: []fbField{
		scalar(2), // version
		scalar(1), // header_type
		{kind: fbUnion, union: []*fbTableSpec{nil, fbSchema, fbDictBatch, fbRecord}}, // Tensor and SparseTensor: bounds only
		scalar(8),                             // bodyLength
		{kind: fbTableVec, table: fbKeyValue}, // custom_metadata
	}}
)

func init() {
	// The Type union (Schema.fbs), by type code: every member is a table of scalars, except Timestamp
	// (a timezone string) and Union (a vector of int type ids).
	t := func(name string, fields ...fbField) *fbTableSpec { return &fbTableSpec{name: name, fields: fields} }
	types := make([]*fbTableSpec, 27)
	for i := 1; i < len(types); i++ {
		types[i] = fbEmpty // Null, Binary, Utf8, Bool, List, Struct_, the large and view kinds, RunEndEncoded
	}
	types[2] = fbInt
	types[3] = t("FloatingPoint", scalar(2))
	types[7] = t("Decimal", scalar(4), scalar(4), scalar(4))
	types[8] = t("Date", scalar(2))
	types[9] = t("Time", scalar(2), scalar(4))
	types[10] = t("Timestamp", scalar(2), fbField{kind: fbString})
	types[11] = t("Interval", scalar(2))
	types[14] = t("Union", scalar(2), fbField{kind: fbStructVec, size: 4})
	types[15] = t("FixedSizeBinary", scalar(4))
	types[16] = t("FixedSizeList", scalar(4))
	types[17] = t("Map", scalar(1))
	types[18] = t("Duration", scalar(2))
	fbField_.fields = []fbField{
		{kind: fbString}, // name
		scalar(1),        // nullable
		scalar(1),        // type_type
		{kind: fbUnion, union: types},
		{kind: fbTable, table: &fbTableSpec{name: "DictionaryEncoding", fields: []fbField{scalar(8), {kind: fbTable, table: fbInt}, scalar(1), scalar(2)}}},
		{kind: fbTableVec, table: fbField_},   // children
		{kind: fbTableVec, table: fbKeyValue}, // custom_metadata
	}
}

const (
	fbMaxDepth = 128 // arrow-go itself allows nesting 64 deep
)

type fbVerifier struct {
	buf    []byte
	budget int // tables and vector elements left to visit
}

// verifyMessageMeta checks the metadata of one IPC message.
func verifyMessageMeta(buf []byte) error {
	v := &fbVerifier{buf: buf, budget: 64 + 4*len(buf)}
	root, err := v.offset(0)
	if err != nil {
		return fmt.Errorf("message metadata: %w", err)
	}
	if err := v.table(root, fbMessage, 0); err != nil {
		return fmt.Errorf("message metadata: %w", err)
	}
	return nil
}

var errFBBounds = errors.New("out of bounds")

func (v *fbVerifier) in(pos, n int) bool {
	return pos >= 0 && n >= 0 && pos <= len(v.buf) && n <= len(v.buf)-pos
}

// offset follows the uoffset at pos.
func (v *fbVerifier) offset(pos int) (int, error) {
	if !v.in(pos, 4) {
		return 0, fmt.Errorf("offset at %d: %w", pos, errFBBounds)
	}
	target := pos + int(binary.LittleEndian.Uint32(v.buf[pos:]))
	if !v.in(target, 0) {
		return 0, fmt.Errorf("offset at %d points to %d: %w", pos, target, errFBBounds)
	}
	return target, nil
}

func (v *fbVerifier) table(pos int, spec *fbTableSpec, depth int) error {
	if depth > fbMaxDepth {
		return fmt.Errorf("%s at %d: nested more than %d deep", spec.name, pos, fbMaxDepth)
	}
	if v.budget--; v.budget < 0 {
		return errors.New("too many objects for the metadata's size")
	}
	if !v.in(pos, 4) {
		return fmt.Errorf("%s at %d: %w", spec.name, pos, errFBBounds)
	}
	vt := pos - int(int32(binary.LittleEndian.Uint32(v.buf[pos:])))
	if !v.in(vt, 4) {
		return fmt.Errorf("%s at %d: vtable at %d: %w", spec.name, pos, vt, errFBBounds)
	}
	// The vtable also holds the table's size, but Go's flatbuffers builder shares a vtable between
	// tables whose fields sit at the same offsets whatever their sizes, so fields are checked against
	// the buffer instead.
	vtLen := int(binary.LittleEndian.Uint16(v.buf[vt:]))
	if vtLen < 4 || vtLen%2 != 0 || !v.in(vt, vtLen) {
		return fmt.Errorf("%s at %d: vtable of %d bytes: %w", spec.name, pos, vtLen, errFBBounds)
	}
	slots := (vtLen - 4) / 2
	fieldAt := func(slot int) int {
		if slot >= slots {
			return 0
		}
		return int(binary.LittleEndian.Uint16(v.buf[vt+4+2*slot:]))
	}
	for slot := range slots {
		fo := fieldAt(slot)
		if fo == 0 {
			continue
		}
		if slot >= len(spec.fields) {
			continue // a field newer than this verifier: arrow-go does not read it
		}
		f := spec.fields[slot]
		size := 4
		if f.kind == fbScalar {
			size = f.size
		}
		if !v.in(pos+fo, size) {
			return fmt.Errorf("%s at %d: field %d: %w", spec.name, pos, slot, errFBBounds)
		}
		if f.kind == fbScalar {
			continue
		}
		target, err := v.offset(pos + fo)
		if err != nil {
			return fmt.Errorf("%s field %d: %w", spec.name, slot, err)
		}
		switch f.kind {
		case fbString:
			err = v.vector(target, 1)
		case fbStructVec:
			err = v.vector(target, f.size)
		case fbTable:
			err = v.table(target, f.table, depth+1)
		case fbTableVec:
			if err = v.vector(target, 4); err == nil {
				n := int(binary.LittleEndian.Uint32(v.buf[target:]))
				for i := range n {
					var elem int
					if elem, err = v.offset(target + 4 + 4*i); err == nil {
						err = v.table(elem, f.table, depth+1)
					}
					if err != nil {
						break
					}
				}
			}
		case fbUnion:
			typ := 0
			if to := fieldAt(slot - 1); to != 0 {
				if !v.in(pos+to, 1) {
					return fmt.Errorf("%s at %d: union type: %w", spec.name, pos, errFBBounds)
				}
				typ = int(v.buf[pos+to])
			}
			if typ > 0 && typ < len(f.union) && f.union[typ] != nil {
				err = v.table(target, f.union[typ], depth+1)
			} else if !v.in(target, 4) {
				err = errFBBounds
			}
		}
		if err != nil {
			return fmt.Errorf("%s field %d: %w", spec.name, slot, err)
		}
	}
	if spec == fbRecord {
		return v.variadicCounts(pos, fieldAt(2), fieldAt(4))
	}
	return nil
}

// variadicCounts checks a RecordBatch's variadicBufferCounts (the number of data buffers of each view
// column) against its buffers: arrow-go sizes a slice by each count before it looks for the buffers,
// so a count of 2^40 would end the process. Every count must be one the buffers can satisfy.
// buffersAt and countsAt are the fields' offsets in the table at pos (0 when absent), already checked.
func (v *fbVerifier) variadicCounts(pos, buffersAt, countsAt int) error {
	if countsAt == 0 {
		return nil
	}
	buffers := 0
	if buffersAt != 0 {
		vec := pos + buffersAt + int(binary.LittleEndian.Uint32(v.buf[pos+buffersAt:]))
		buffers = int(binary.LittleEndian.Uint32(v.buf[vec:]))
	}
	vec := pos + countsAt + int(binary.LittleEndian.Uint32(v.buf[pos+countsAt:]))
	n := int(binary.LittleEndian.Uint32(v.buf[vec:]))
	left := int64(buffers)
	for i := range n {
		c := int64(binary.LittleEndian.Uint64(v.buf[vec+4+8*i:]))
		if c < 0 || c > left {
			return fmt.Errorf("RecordBatch at %d: variadic buffer count %d of view column %d, with %d of the message's %d buffers left", pos, c, i, left, buffers)
		}
		left -= c
	}
	return nil
}

// vector checks a length-prefixed vector of elements of size bytes at pos.
func (v *fbVerifier) vector(pos, size int) error {
	if !v.in(pos, 4) {
		return fmt.Errorf("vector at %d: %w", pos, errFBBounds)
	}
	n := int(binary.LittleEndian.Uint32(v.buf[pos:]))
	if n > (len(v.buf)-pos-4)/size {
		return fmt.Errorf("vector of %d elements of %d bytes at %d: %w", n, size, pos, errFBBounds)
	}
	if v.budget -= n / 8; v.budget < 0 {
		return errors.New("too many objects for the metadata's size")
	}
	return nil
}
