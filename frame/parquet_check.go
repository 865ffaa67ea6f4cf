package frame

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// checkDictionaries checks the dictionary-encoded column chunks of a Parquet
// file before arrow-go decodes them, for the two claims it allocates by
// without checking them (with make, past any allocator): a dictionary page's
// value count (a slice of that many values), and a dictionary index in a
// data page (the dictionary decoded up to that index: a damaged index of two
// billion makes it allocate tens of gigabytes). A dictionary page must have
// room for the values it claims, and every index must fall inside its
// dictionary. Other chunks are not read here.
func checkDictionaries(pf *file.Reader) error {
	sc := pf.MetaData().Schema
	for rg := range pf.NumRowGroups() {
		rgr := pf.RowGroup(rg)
		for col := range sc.NumColumns() {
			cc, err := rgr.MetaData().ColumnChunk(col)
			if err != nil {
				return fmt.Errorf("row group %d, column %d: %w", rg, col, err)
			}
			if !cc.HasDictionaryPage() {
				continue
			}
			if err := checkChunkDictionary(rgr, col, sc.Column(col)); err != nil {
				return fmt.Errorf("row group %d, column %d (%s): %w", rg, col, sc.Column(col).Path(), err)
			}
		}
	}
	return nil
}

func checkChunkDictionary(rgr *file.RowGroupReader, col int, descr *schema.Column) error {
	pr, err := rgr.GetColumnPageReader(col)
	if err != nil {
		return err
	}
	defer pr.Close()
	dictSize := -1 // no dictionary page yet
	for pr.Next() {
		switch p := pr.Page().(type) {
		case *file.DictionaryPage:
			n, data := int(p.NumValues()), p.Data()
			if width := dictValueBytes(descr); n < 0 || (width > 0 && n > len(data)/width) {
				return fmt.Errorf("a dictionary page of %d bytes claims %d values", len(data), n)
			}
			dictSize = n
		case *file.DataPageV1:
			if !dictEncoded(parquet.Encoding(p.Encoding())) || dictSize < 0 {
				continue
			}
			data := p.Data()
			off := 0
			for _, lv := range []int16{descr.MaxRepetitionLevel(), descr.MaxDefinitionLevel()} {
				if lv == 0 {
					continue
				}
				// RLE levels, behind their length (arrow-go reads no other kind)
				if len(data)-off < 4 {
					return errors.New("a data page ends in its levels")
				}
				n := int64(binary.LittleEndian.Uint32(data[off:]))
				if n > int64(len(data)-off-4) {
					return errors.New("a data page ends in its levels")
				}
				off += 4 + int(n)
			}
			if err := checkIndices(data[off:], dictSize); err != nil {
				return err
			}
		case *file.DataPageV2:
			if !dictEncoded(parquet.Encoding(p.Encoding())) || dictSize < 0 {
				continue
			}
			data := p.Data()
			off := int64(p.RepetitionLevelByteLen()) + int64(p.DefinitionLevelByteLen())
			if p.RepetitionLevelByteLen() < 0 || p.DefinitionLevelByteLen() < 0 || off > int64(len(data)) {
				return errors.New("a data page ends in its levels")
			}
			if err := checkIndices(data[off:], dictSize); err != nil {
				return err
			}
		}
	}
	return pr.Err()
}

// dictEncoded reports whether a data page's values are dictionary indices.
func dictEncoded(e parquet.Encoding) bool {
	return e == parquet.Encodings.RLEDict || e == parquet.Encodings.PlainDict
}

// dictValueBytes is the least number of bytes a value of a PLAIN-encoded
// dictionary page takes (a byte array: its 4-byte length); 0 if unknown.
func dictValueBytes(descr *schema.Column) int {
	switch descr.PhysicalType() {
	case parquet.Types.Int32, parquet.Types.Float, parquet.Types.ByteArray:
		return 4
	case parquet.Types.Int64, parquet.Types.Double:
		return 8
	case parquet.Types.Int96:
		return 12
	case parquet.Types.FixedLenByteArray:
		return max(int(descr.TypeLength()), 0)
	}
	return 0
}

// checkIndices checks the dictionary indices of a data page, a bit width
// (one byte) and runs of the RLE / bit-packing hybrid encoding: none may be
// dictSize or more (index 0 is always let through: bit-packed runs are
// padded with zeros).
func checkIndices(v []byte, dictSize int) error {
	if len(v) == 0 {
		return nil
	}
	width := int(v[0])
	if width > 32 {
		return fmt.Errorf("dictionary indices of %d bits", width)
	}
	if width == 0 {
		return nil // every index is 0
	}
	limit := uint64(max(dictSize, 1))
	bad := func(idx uint64) error {
		return fmt.Errorf("dictionary index %d outside the dictionary of %d values", idx, dictSize)
	}
	for pos := 1; pos < len(v); {
		h, k := binary.Uvarint(v[pos:])
		if k <= 0 {
			return errors.New("malformed dictionary index run")
		}
		pos += k
		if h&1 == 0 { // RLE run: a count, then the value in whole bytes
			nb := (width + 7) / 8
			if len(v)-pos < nb {
				return errors.New("truncated dictionary index run")
			}
			if h>>1 > 0 {
				var b [8]byte
				copy(b[:], v[pos:pos+nb])
				if idx := binary.LittleEndian.Uint64(b[:]); idx >= limit {
					return bad(idx)
				}
			}
			pos += nb
			continue
		}
		// bit-packed run: groups of 8 values of width bits, LSB first; a run
		// cut short by the end of the page is checked as far as it goes
		n := len(v) - pos
		if groups := h >> 1; groups <= uint64(n/width) {
			n = int(groups) * width
		}
		run := v[pos : pos+n]
		mask := uint64(1)<<width - 1
		for bit := 0; bit+width <= len(run)*8; bit += width {
			var w [8]byte
			copy(w[:], run[bit/8:])
			if idx := binary.LittleEndian.Uint64(w[:]) >> (bit % 8) & mask; idx >= limit {
				return bad(idx)
			}
		}
		pos += n
	}
	return nil
}
