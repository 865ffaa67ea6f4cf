package frame

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// Randomized differential tests: every distributed operator, at several rank
// counts, against a sequential oracle written over the gathered input.
// FNMESH_PROP_ITERS raises the number of seeds per test (default small).

func propIters(def int) int {
	if s := os.Getenv("FNMESH_PROP_ITERS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	if testing.Short() {
		return 1
	}
	return def
}

var propRanks = []int{1, 2, 3, 5}

// Oracle values: int64 (signed integers, dates, timestamps), uint64,
// float64, bool, string (string kinds), obin (binary kinds), odec
// (decimals, unscaled), nil for null.
type (
	obin string
	odec int64
)

func ocell(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Dictionary:
		return ocell(a.Dictionary(), a.GetValueIndex(i))
	case *array.Decimal128:
		return odec(int64(a.Value(i).LowBits()))
	case *array.Binary:
		return obin(a.Value(i))
	case *array.LargeBinary:
		return obin(a.Value(i))
	case *array.FixedSizeBinary:
		return obin(a.Value(i))
	case *array.Date64:
		return int64(a.Value(i))
	case *array.Decimal32:
		return odec(a.Value(i))
	case *array.Decimal64:
		return odec(a.Value(i))
	case *array.Decimal256:
		return odec(int64(a.Value(i).LowBits()))
	case *array.Float16:
		return float64(a.Value(i).Float32())
	case *array.Time32:
		return int64(a.Value(i))
	case *array.Time64:
		return int64(a.Value(i))
	case *array.Duration:
		return int64(a.Value(i))
	}
	return cell(a, i)
}

func orows(t arrow.Table) []row {
	out := make([]row, t.NumRows())
	for i := range out {
		out[i] = make(row, t.NumCols())
	}
	for c := 0; c < int(t.NumCols()); c++ {
		r := 0
		for _, ch := range t.Column(c).Data().Chunks() {
			for i := 0; i < ch.Len(); i++ {
				out[r][c] = ocell(ch, i)
				r++
			}
		}
	}
	return out
}

// okey formats values so that equal ones (SQL group semantics: -0 as 0,
// every NaN alike) format alike.
func okey(vals ...any) string { return rowKey(row(vals)) }

// oeq: join-key equality of two non-null values.
func oeq(a, b any) bool {
	if x, ok := a.(float64); ok {
		y := b.(float64)
		return x == y || (x != x && y != y)
	}
	return a == b
}

// ocmp orders two non-null values of one kind: NaN after every number,
// -0 tied with +0.
func ocmp(a, b any) int {
	switch x := a.(type) {
	case int64:
		return cmp.Compare(x, b.(int64))
	case uint64:
		return cmp.Compare(x, b.(uint64))
	case float64:
		y := b.(float64)
		xn, yn := x != x, y != y
		switch {
		case xn && yn:
			return 0
		case xn:
			return 1
		case yn:
			return -1
		}
		return cmp.Compare(x, y) // -0 == +0 for cmp.Compare
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case string:
		return strings.Compare(x, b.(string))
	case obin:
		return strings.Compare(string(x), string(b.(obin)))
	case odec:
		return cmp.Compare(x, b.(odec))
	}
	panic(fmt.Sprintf("ocmp %T", a))
}

// Column generation.

var (
	dictStrType = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	decType     = &arrow.Decimal128Type{Precision: 12, Scale: 2}
	tsType      = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	fsbType     = &arrow.FixedSizeBinaryType{ByteWidth: 2}
	dictIntType = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Uint16, ValueType: arrow.PrimitiveTypes.Int64}
)

// propTypes are the key and value types the tests draw from.
var propTypes = []arrow.DataType{
	arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64,
	arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Uint64,
	arrow.PrimitiveTypes.Float32, arrow.PrimitiveTypes.Float64,
	arrow.FixedWidthTypes.Boolean,
	arrow.BinaryTypes.String, arrow.BinaryTypes.LargeString, arrow.BinaryTypes.Binary, arrow.BinaryTypes.LargeBinary,
	arrow.FixedWidthTypes.Date32, arrow.FixedWidthTypes.Date64, tsType,
	decType, dictStrType, fsbType,
	arrow.FixedWidthTypes.Float16, &arrow.Decimal256Type{Precision: 40, Scale: 3},
	&arrow.Decimal32Type{Precision: 7, Scale: 1}, &arrow.Decimal64Type{Precision: 15, Scale: 0},
	arrow.FixedWidthTypes.Time32ms, arrow.FixedWidthTypes.Time64us, arrow.FixedWidthTypes.Duration_ns,
	dictIntType,
}

// nestedTypes travel as values (joins, sorts, filters, files) but are not
// keys or aggregated.
var nestedTypes = []arrow.DataType{
	arrow.ListOf(arrow.PrimitiveTypes.Int32),
	arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		arrow.Field{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true}),
	arrow.LargeListOf(arrow.BinaryTypes.String),
	arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float64),
}

// pickValueType is a key type or a nested one.
func pickValueType(rng *rand.Rand) arrow.DataType {
	if rng.IntN(4) == 0 {
		return nestedTypes[rng.IntN(len(nestedTypes))]
	}
	return pickType(rng)
}

func isNumeric(dt arrow.DataType) bool {
	return arrow.IsInteger(dt.ID()) || dt.ID() == arrow.FLOAT32 || dt.ID() == arrow.FLOAT64
}

var specialFloats = []float64{math.NaN(), math.Copysign(0, -1), 0, math.Inf(1), math.Inf(-1), math.Float64frombits(0x7ff8000000000abc)}

// genColumn builds n values of dt drawn from a domain of about card values.
func genColumn(mem memory.Allocator, rng *rand.Rand, dt arrow.DataType, n, card int, nullFrac float64) arrow.Array {
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	card = max(card, 1)
	if d, ok := dt.(*arrow.DictionaryType); ok {
		// No more values than the index type holds: past them arrow-go's
		// builder wraps the indices (a dictionary<int8> of 462 values
		// with negative indices), an input no operator can take.
		card = min(card, maxDictionaryLen(d.IndexType))
	}
	for range n {
		if rng.Float64() < nullFrac {
			b.AppendNull()
			continue
		}
		k := rng.IntN(card)
		switch b := b.(type) {
		case *array.Int8Builder:
			b.Append(int8(k - card/2))
		case *array.Int16Builder:
			b.Append(int16(k - card/2))
		case *array.Int32Builder:
			b.Append(int32(k - card/2))
		case *array.Int64Builder:
			switch {
			case k%7 == 5 && card > 8:
				b.Append(math.MaxInt64 - int64(k)) // sums wrap
			case k%7 == 6 && card > 8:
				b.Append(math.MinInt64 + int64(k))
			default:
				b.Append(int64(k - card/2))
			}
		case *array.Uint8Builder:
			b.Append(uint8(k))
		case *array.Uint16Builder:
			b.Append(uint16(k))
		case *array.Uint32Builder:
			b.Append(uint32(k))
		case *array.Uint64Builder:
			if k%5 == 4 {
				b.Append(math.MaxUint64 - uint64(k)) // above MaxInt64
			} else {
				b.Append(uint64(k))
			}
		case *array.Float32Builder:
			if rng.IntN(6) == 0 {
				b.Append(float32(specialFloats[rng.IntN(len(specialFloats))]))
			} else {
				b.Append(float32(k-card/2) / 8)
			}
		case *array.Float64Builder:
			if rng.IntN(6) == 0 {
				b.Append(specialFloats[rng.IntN(len(specialFloats))])
			} else {
				b.Append(float64(k-card/2) / 8)
			}
		case *array.BooleanBuilder:
			b.Append(k%2 == 1)
		case *array.ListBuilder:
			b.Append(true)
			for j := range k % 4 {
				if j == 2 {
					b.ValueBuilder().AppendNull()
				} else {
					b.ValueBuilder().(*array.Int32Builder).Append(int32(k*10 + j))
				}
			}
		case *array.LargeListBuilder:
			b.Append(true)
			for j := range k % 3 {
				b.ValueBuilder().(*array.StringBuilder).Append(propString(k + j))
			}
		case *array.FixedSizeListBuilder:
			b.Append(true)
			vb := b.ValueBuilder().(*array.Float64Builder)
			vb.Append(float64(k))
			if k%3 == 0 {
				vb.AppendNull()
			} else {
				vb.Append(float64(-k) / 4)
			}
		case *array.StructBuilder:
			b.Append(true)
			if k%5 == 0 {
				b.FieldBuilder(0).AppendNull()
			} else {
				b.FieldBuilder(0).(*array.Int32Builder).Append(int32(k))
			}
			b.FieldBuilder(1).(*array.StringBuilder).Append(propString(k))
		case *array.StringBuilder:
			b.Append(propString(k))
		case *array.LargeStringBuilder:
			b.Append(propString(k))
		case *array.BinaryBuilder: // binary and large binary
			b.Append([]byte(propString(k) + "\x00"[:k%2]))
		case *array.FixedSizeBinaryBuilder:
			b.Append([]byte{byte(k), byte(k >> 8)})
		case *array.Date32Builder:
			b.Append(arrow.Date32(k - card/2))
		case *array.Date64Builder:
			b.Append(arrow.Date64(int64(k-card/2) * 86400000))
		case *array.TimestampBuilder:
			b.Append(arrow.Timestamp(k - card/2))
		case *array.Decimal128Builder:
			b.Append(decimal128.FromI64(int64(k - card/2)))
		case *array.BinaryDictionaryBuilder:
			if err := b.AppendString(propString(k)); err != nil {
				panic(err)
			}
		case *array.Int64DictionaryBuilder:
			if err := b.Append(int64(k - card/2)); err != nil {
				panic(err)
			}
		case *array.Float16Builder:
			if rng.IntN(6) == 0 {
				b.Append(float16.New(float32(specialFloats[rng.IntN(len(specialFloats))])))
			} else {
				b.Append(float16.New(float32(k-card/2) / 8))
			}
		case *array.Decimal256Builder:
			b.Append(decimal256.FromI64(int64(k - card/2)))
		case *array.Decimal32Builder:
			b.Append(decimal.Decimal32(k - card/2))
		case *array.Decimal64Builder:
			b.Append(decimal.Decimal64(k - card/2))
		case *array.Time32Builder:
			b.Append(arrow.Time32(k))
		case *array.Time64Builder:
			b.Append(arrow.Time64(k))
		case *array.DurationBuilder:
			b.Append(arrow.Duration(k - card/2))
		default:
			panic(fmt.Sprintf("genColumn: %T", b))
		}
	}
	return b.NewArray()
}

// awkwardStrings are values a CSV writer must quote or a reader might take
// for something else.
var awkwardStrings = []string{"a,b", `"q"`, "x\ny", " s ", "NULL", "null", "N/A", "NaN", "#c", "\t", "1e3", "true"}

func propString(k int) string {
	if k == 0 {
		return ""
	}
	if k%4 == 3 {
		return awkwardStrings[k*5%len(awkwardStrings)]
	}
	return "v" + strconv.Itoa(k*7919%1000)
}

// chunked cuts a into random chunks, the first few with non-zero offsets
// (a is generated with extra rows in front).
func chunked(rng *rand.Rand, a arrow.Array, from int) *arrow.Chunked {
	n := a.Len() - from
	var chunks []arrow.Array
	lo := from
	for lo < a.Len() || len(chunks) == 0 {
		hi := a.Len()
		if rng.IntN(2) == 0 && n > 0 {
			hi = min(a.Len(), lo+rng.IntN(n+1))
		}
		chunks = append(chunks, array.NewSlice(a, int64(lo), int64(hi)))
		if rng.IntN(4) == 0 && hi > lo { // an empty chunk now and then
			chunks = append(chunks, array.NewSlice(a, int64(hi), int64(hi)))
		}
		lo = hi
	}
	ch := arrow.NewChunked(a.DataType(), chunks)
	releaseAll(chunks)
	return ch
}

type propCol struct {
	name string
	dt   arrow.DataType
	card int
}

// genTables builds one table per rank of the columns; some ranks are
// empty, sizes skewed.
func genTables(rng *rand.Rand, p, rows int, cols []propCol, nullFrac float64) []arrow.Table {
	mem := memory.NewGoAllocator()
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.dt, Nullable: true}
	}
	s := arrow.NewSchema(fields, nil)
	out := make([]arrow.Table, p)
	for r := range p {
		n := rng.IntN(rows + 1)
		switch {
		case p > 2 && r == p-1:
			n = 0
		case r == 0 && rng.IntN(3) == 0:
			n = rows * 3 // skew
		}
		chs := make([]*arrow.Chunked, len(cols))
		from := []int{0, 1, 2, 8, 16}[rng.IntN(5)] // rows in front of every column's first chunk
		single := rng.IntN(3) == 0                 // every column one slice
		for i, c := range cols {
			if c.dt.ID() == arrow.DICTIONARY && rng.IntN(2) == 0 {
				// Chunks with dictionaries of their own.
				var parts []arrow.Array
				for left := n; left > 0 || len(parts) == 0; {
					m := min(left, 1+rng.IntN(n+1))
					parts = append(parts, genColumn(mem, rng, c.dt, m, c.card, nullFrac))
					left -= m
				}
				chs[i] = arrow.NewChunked(c.dt, parts)
				releaseAll(parts)
				continue
			}
			a := genColumn(mem, rng, c.dt, n+from, c.card, nullFrac)
			if single {
				s := array.NewSlice(a, int64(from), int64(a.Len()))
				chs[i] = arrow.NewChunked(c.dt, []arrow.Array{s})
				s.Release()
				a.Release()
				continue
			}
			chs[i] = chunked(rng, a, from)
			a.Release()
		}
		cs := make([]arrow.Column, len(cols))
		for i := range cols {
			cs[i] = *arrow.NewColumn(fields[i], chs[i])
			chs[i].Release()
		}
		out[r] = array.NewTable(s, cs, int64(n))
		for i := range cs {
			cs[i].Release()
		}
	}
	return out
}

func releaseTablesAll(ts []arrow.Table) {
	for _, t := range ts {
		t.Release()
	}
}

func allRows(ts []arrow.Table) []row {
	var out []row
	for _, t := range ts {
		out = append(out, orows(t)...)
	}
	return out
}

func okeys(rs []row) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = rowKey(r)
	}
	return out
}

// runOp runs op on every rank over the ranks' tables (in frames) and returns
// the rows gathered at rank 0 and the result's schema.
func runOp(t *testing.T, p int, tables [][]arrow.Table, op func(ctx context.Context, fs []*Frame) (*Frame, error)) ([]row, *arrow.Schema) {
	t.Helper()
	var got []row
	var schema *arrow.Schema
	runRanks(t, p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
		fs := make([]*Frame, len(tables))
		for i, ts := range tables {
			f, err := New(c, ts[c.Rank()], WithAllocator(mem), WithParallelism(2))
			if err != nil {
				return err
			}
			defer f.Release()
			fs[i] = f
		}
		res, err := op(ctx, fs)
		if err != nil {
			return err
		}
		defer res.Release()
		tbl, err := res.Gather(ctx, 0)
		if err != nil {
			return err
		}
		if tbl != nil {
			got, schema = orows(tbl), tbl.Schema()
			tbl.Release()
		}
		return nil
	})
	return got, schema
}

func pickType(rng *rand.Rand) arrow.DataType { return propTypes[rng.IntN(len(propTypes))] }

// ---- Join ----

func TestPropJoin(t *testing.T) {
	iters := propIters(6)
	for it := range iters {
		for _, p := range propRanks {
			seed := uint64(it*100 + p)
			rng := rand.New(rand.NewPCG(seed, 7))
			nk := 1 + rng.IntN(2)
			card := 2 + rng.IntN(12)
			var lcols, rcols []propCol
			var lkeys, rkeys []string
			named := rng.IntN(3) == 0 // LeftOn/RightOn with other names
			var commonUnsigned []bool
			for k := range nk {
				dt := pickType(rng)
				rdt := partnerType(rng, dt)
				lname, rname := fmt.Sprintf("k%d", k), fmt.Sprintf("k%d", k)
				if named {
					rname = fmt.Sprintf("r%d", k)
				}
				lkeys, rkeys = append(lkeys, lname), append(rkeys, rname)
				lcols = append(lcols, propCol{lname, dt, card})
				rcols = append(rcols, propCol{rname, rdt, card})
				commonUnsigned = append(commonUnsigned, arrow.IsUnsignedInteger(valueType(dt).ID()) && arrow.IsUnsignedInteger(valueType(rdt).ID()))
			}
			lcols = append(lcols, propCol{"a", pickValueType(rng), 10})
			rcols = append(rcols, propCol{"b", pickValueType(rng), 10})
			nullFrac := []float64{0, 0.1, 0.4}[rng.IntN(3)]
			lt := genTables(rng, p, 30, lcols, nullFrac)
			rt := genTables(rng, p, 30, rcols, nullFrac)
			lrows, rrows := allRows(lt), allRows(rt)
			for _, how := range []JoinType{Inner, LeftOuter, RightOuter, FullOuter} {
				for _, sm := range []bool{false, true} {
					name := fmt.Sprintf("seed%d/p%d/%s/sm=%v/left=%v/right=%v", seed, p, how, sm, lcols, rcols)
					opts := []JoinOption{LeftOn(lkeys...), RightOn(rkeys...)}
					if sm {
						opts = append(opts, SortMerge())
					}
					got, schema := runOp(t, p, [][]arrow.Table{lt, rt}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
						return fs[0].Join(ctx, fs[1], how, opts...)
					})
					want := propJoinOracle(lrows, rrows, nk, how, !named, commonUnsigned)
					require.Equal(t, slices.Sorted(slices.Values(okeys(want))), slices.Sorted(slices.Values(okeys(got))), name)
					lo, ro := how.outer()
					var wantFields []arrow.Field
					if !named {
						for k := range nk {
							ct, err := commonKeyType(lcols[k].dt, rcols[k].dt)
							require.NoError(t, err)
							wantFields = append(wantFields, arrow.Field{Name: lkeys[k], Type: ct, Nullable: true})
						}
					} else {
						for k := range nk {
							wantFields = append(wantFields, arrow.Field{Name: lkeys[k], Type: lcols[k].dt, Nullable: true})
						}
					}
					wantFields = append(wantFields, arrow.Field{Name: "a", Type: lcols[nk].dt, Nullable: true})
					if named {
						for k := range nk {
							wantFields = append(wantFields, arrow.Field{Name: rkeys[k], Type: rcols[k].dt, Nullable: true})
						}
					}
					wantFields = append(wantFields, arrow.Field{Name: "b", Type: rcols[nk].dt, Nullable: true})
					_, _ = lo, ro
					require.True(t, arrow.NewSchema(wantFields, nil).Equal(schema), "%s\nwant %s\ngot %s", name, arrow.NewSchema(wantFields, nil), schema)
				}
			}
			releaseTablesAll(lt)
			releaseTablesAll(rt)
		}
	}
}

// partnerType is a type a join key of type dt may be matched with: dt, or
// another of its family (integer widths, float widths, string kinds).
func partnerType(rng *rand.Rand, dt arrow.DataType) arrow.DataType {
	if rng.IntN(2) == 0 {
		return dt
	}
	var fam []arrow.DataType
	switch vt := valueType(dt); {
	case dt.ID() == arrow.DICTIONARY && vt.ID() != arrow.STRING:
		return vt
	case arrow.IsSignedInteger(dt.ID()):
		fam = []arrow.DataType{arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64,
			arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Uint32}
	case dt.ID() == arrow.UINT64:
		fam = []arrow.DataType{arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Uint64}
	case arrow.IsUnsignedInteger(dt.ID()):
		fam = []arrow.DataType{arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Uint64,
			arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64}
	case arrow.IsFloating(dt.ID()):
		fam = []arrow.DataType{arrow.PrimitiveTypes.Float32, arrow.PrimitiveTypes.Float64}
	case dt.ID() == arrow.STRING || dt.ID() == arrow.LARGE_STRING || dt.ID() == arrow.DICTIONARY:
		fam = []arrow.DataType{arrow.BinaryTypes.String, arrow.BinaryTypes.LargeString, dictStrType}
	case dt.ID() == arrow.BINARY || dt.ID() == arrow.LARGE_BINARY:
		fam = []arrow.DataType{arrow.BinaryTypes.Binary, arrow.BinaryTypes.LargeBinary}
	default:
		return dt
	}
	return fam[rng.IntN(len(fam))]
}

// okeyNum compares integers of either signedness by value.
func okeyNum(v any) any {
	if u, ok := v.(uint64); ok && u <= math.MaxInt64 {
		return int64(u)
	}
	return v
}

// propJoinOracle: nested loops; rows are keys first then one value column a
// side. With coalesce (On) the output is keys, left value, right value, the
// keys as the common type (unsigned when both sides are); otherwise every
// column of both sides.
func propJoinOracle(l, r []row, nk int, how JoinType, coalesce bool, unsigned []bool) []row {
	match := func(a, b row) bool {
		for k := range nk {
			if a[k] == nil || b[k] == nil || !oeq(okeyNum(a[k]), okeyNum(b[k])) {
				return false
			}
		}
		return true
	}
	key := func(x row) row {
		out := slices.Clone(x[:nk])
		for k := range out {
			if !unsigned[k] {
				out[k] = okeyNum(out[k])
			}
		}
		return out
	}
	nulls := func(n int) row { return make(row, n) }
	emit := func(a, b row) row {
		switch {
		case !coalesce && a == nil:
			return slices.Concat(nulls(nk+1), b)
		case !coalesce && b == nil:
			return slices.Concat(a, nulls(nk+1))
		case !coalesce:
			return slices.Concat(a, b)
		case a == nil:
			return slices.Concat(key(b), nulls(1), b[nk:])
		case b == nil:
			return slices.Concat(key(a), a[nk:], nulls(1))
		}
		return slices.Concat(key(a), a[nk:], b[nk:])
	}
	lo, ro := how.outer()
	var out []row
	rmatched := make([]bool, len(r))
	for _, a := range l {
		m := false
		for j, b := range r {
			if match(a, b) {
				m, rmatched[j] = true, true
				out = append(out, emit(a, b))
			}
		}
		if !m && lo {
			out = append(out, emit(a, nil))
		}
	}
	if ro {
		for j, b := range r {
			if !rmatched[j] {
				out = append(out, emit(nil, b))
			}
		}
	}
	return out
}

// ---- GroupBy / Distinct ----

type oacc struct {
	n       int64
	count   []int64
	sumI    []int64
	sumU    []uint64
	sumF    []float64
	seen    []bool
	min     []any
	max     []any
	keyVals row
}

func TestPropGroupBy(t *testing.T) {
	iters := propIters(8)
	for it := range iters {
		for _, p := range propRanks {
			seed := uint64(it*100 + p)
			rng := rand.New(rand.NewPCG(seed, 11))
			nk := rng.IntN(3) // 0: a global aggregate
			card := 1 + rng.IntN(20)
			if rng.IntN(4) == 0 {
				card = 1000 // nearly distinct keys: the per-row path
			}
			var cols []propCol
			var keys []string
			for k := range nk {
				name := fmt.Sprintf("k%d", k)
				keys = append(keys, name)
				cols = append(cols, propCol{name, pickType(rng), card})
			}
			nv := 1 + rng.IntN(3)
			var aggs []Agg
			var vdts []arrow.DataType
			for v := range nv {
				dt := pickType(rng)
				for dt.ID() == arrow.DICTIONARY {
					dt = pickType(rng)
				}
				name := fmt.Sprintf("v%d", v)
				cols = append(cols, propCol{name, dt, 15})
				vdts = append(vdts, dt)
				aggs = append(aggs, Count(name), Min(name), Max(name))
				if isNumeric(dt) || dt.ID() == arrow.FLOAT16 {
					aggs = append(aggs, Sum(name))
					if dt.ID() != arrow.INT64 && dt.ID() != arrow.UINT64 { // values near the limits: a float sum depends on the order
						aggs = append(aggs, Mean(name))
					}
				}
			}
			aggs = append(aggs, CountRows())
			nullFrac := []float64{0, 0.1, 0.5}[rng.IntN(3)]
			rows := []int{0, 5, 40, 300}[rng.IntN(4)]
			ts := genTables(rng, p, rows, cols, nullFrac)
			in := allRows(ts)
			name := fmt.Sprintf("seed%d/p%d/cols=%v/aggs=%v", seed, p, cols, aggs)
			got, _ := runOp(t, p, [][]arrow.Table{ts}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
				return fs[0].GroupBy(keys...).Agg(ctx, aggs...)
			})
			want := propGroupByOracle(in, nk, vdts, aggs)
			require.Equal(t, slices.Sorted(slices.Values(okeys(want))), slices.Sorted(slices.Values(okeys(got))), name)

			// Distinct over the keys and the first value.
			dcols := append(slices.Clone(keys), "v0")
			got, _ = runOp(t, p, [][]arrow.Table{ts}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
				return fs[0].Distinct(ctx, dcols...)
			})
			seen := map[string]bool{}
			var wantD []row
			for _, r := range in {
				k := okey(r[:nk+1]...)
				if !seen[k] {
					seen[k] = true
					wantD = append(wantD, slices.Clone(r[:nk+1]))
				}
			}
			require.Equal(t, slices.Sorted(slices.Values(okeys(wantD))), slices.Sorted(slices.Values(okeys(got))), "distinct "+name)
			releaseTablesAll(ts)
		}
	}
}

func propGroupByOracle(in []row, nk int, vdts []arrow.DataType, aggs []Agg) []row {
	groups := map[string]*oacc{}
	var order []string
	nv := len(vdts)
	for _, r := range in {
		k := okey(r[:nk]...)
		g := groups[k]
		if g == nil {
			g = &oacc{count: make([]int64, nv), sumI: make([]int64, nv), sumU: make([]uint64, nv), sumF: make([]float64, nv),
				seen: make([]bool, nv), min: make([]any, nv), max: make([]any, nv), keyVals: slices.Clone(r[:nk])}
			groups[k] = g
			order = append(order, k)
		}
		g.n++
		for v := range nv {
			x := r[nk+v]
			if x == nil {
				continue
			}
			g.count[v]++
			g.seen[v] = true
			switch x := x.(type) {
			case int64:
				g.sumI[v] += x
				g.sumF[v] += float64(x)
			case uint64:
				g.sumU[v] += x
				g.sumF[v] += float64(x)
			case float64:
				g.sumF[v] += x
			}
			if g.min[v] == nil || ocmp(x, g.min[v]) < 0 {
				g.min[v] = x
			}
			if g.max[v] == nil || ocmp(x, g.max[v]) > 0 {
				g.max[v] = x
			}
		}
	}
	if nk == 0 && len(order) == 0 {
		groups[""] = &oacc{count: make([]int64, nv), sumI: make([]int64, nv), sumU: make([]uint64, nv), sumF: make([]float64, nv),
			seen: make([]bool, nv), min: make([]any, nv), max: make([]any, nv)}
		order = append(order, "")
	}
	var out []row
	for _, k := range order {
		g := groups[k]
		r := slices.Clone(g.keyVals)
		if r == nil {
			r = row{}
		}
		for _, a := range aggs {
			v := -1
			if a.Column != "" {
				v, _ = strconv.Atoi(strings.TrimPrefix(a.Column, "v"))
			}
			switch a.Func {
			case AggCountAll:
				r = append(r, g.n)
			case AggCount:
				r = append(r, g.count[v])
			case AggMin:
				r = append(r, g.min[v])
			case AggMax:
				r = append(r, g.max[v])
			case AggSum:
				switch {
				case !g.seen[v]:
					r = append(r, nil)
				case arrow.IsSignedInteger(vdts[v].ID()):
					r = append(r, g.sumI[v])
				case arrow.IsUnsignedInteger(vdts[v].ID()):
					r = append(r, g.sumU[v])
				default:
					r = append(r, g.sumF[v])
				}
			case AggMean:
				if !g.seen[v] {
					r = append(r, nil)
				} else {
					r = append(r, g.sumF[v]/float64(g.count[v]))
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// ---- Sort, Head, Rebalance ----

func TestPropSort(t *testing.T) {
	iters := propIters(8)
	for it := range iters {
		for _, p := range propRanks {
			seed := uint64(it*100 + p)
			rng := rand.New(rand.NewPCG(seed, 13))
			nk := 1 + rng.IntN(3)
			var cols []propCol
			var keys []SortKey
			var kspec []SortKey
			for k := range nk {
				dt := pickType(rng)
				name := fmt.Sprintf("k%d", k)
				cols = append(cols, propCol{name, dt, 1 + rng.IntN(30)})
				sk := Asc(name)
				if rng.IntN(2) == 0 {
					sk = Desc(name)
				}
				if rng.IntN(2) == 0 {
					sk = sk.WithNullsFirst()
				}
				keys = append(keys, sk)
				kspec = append(kspec, sk)
			}
			cols = append(cols, propCol{"id", arrow.PrimitiveTypes.Int64, 1 << 30}, propCol{"payload", pickValueType(rng), 10})
			nullFrac := []float64{0, 0.1, 0.5}[rng.IntN(3)]
			rows := []int{0, 5, 40, 300}[rng.IntN(4)]
			ts := genTables(rng, p, rows, cols, nullFrac)
			in := allRows(ts)
			name := fmt.Sprintf("seed%d/p%d/cols=%v/keys=%v", seed, p, cols, kspec)
			got, _ := runOp(t, p, [][]arrow.Table{ts}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
				return fs[0].Sort(ctx, keys...)
			})
			want := slices.Clone(in)
			slices.SortStableFunc(want, func(a, b row) int {
				for k, sk := range kspec {
					x, y := a[k], b[k]
					switch {
					case x == nil && y == nil:
						continue
					case x == nil || y == nil:
						c := 1
						if x == nil == sk.NullsFirst {
							c = -1
						}
						return c
					}
					c := ocmp(x, y)
					if sk.Descending {
						c = -c
					}
					if c != 0 {
						return c
					}
				}
				return 0
			})
			require.Equal(t, okeys(want), okeys(got), name)

			// Head and Rebalance keep the order.
			n := int64(rng.IntN(len(in) + 2))
			got, _ = runOp(t, p, [][]arrow.Table{ts}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
				return fs[0].Head(ctx, n)
			})
			require.Equal(t, okeys(in[:min(int(n), len(in))]), okeys(got), "head %d %s", n, name)
			got, _ = runOp(t, p, [][]arrow.Table{ts}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
				return fs[0].Rebalance(ctx)
			})
			require.Equal(t, okeys(in), okeys(got), "rebalance "+name)
			releaseTablesAll(ts)
		}
	}
}

func (c propCol) String() string { return fmt.Sprintf("%s:%s/%d", c.name, c.dt, c.card) }

// ---- Files ----

// Every rank writes its partition and the ranks read the files back: the
// same rows (in order), the same schema, for Parquet, IPC and CSV (with the
// schema given; CSV reads an empty string as a null).
func TestPropFileRoundTrip(t *testing.T) {
	iters := propIters(3)
	formats := []string{"parquet", "ipc", "csv"}
	for it := range iters {
		for _, p := range propRanks {
			for _, format := range formats {
				seed := uint64(it*100 + p)
				rng := rand.New(rand.NewPCG(seed, 17))
				var cols []propCol
				for c := range 1 + rng.IntN(4) {
					dt := pickValueType(rng)
					for !fileCanHold(format, dt) {
						dt = pickValueType(rng)
					}
					cols = append(cols, propCol{fmt.Sprintf("c%d", c), dt, 1 + rng.IntN(20)})
				}
				nullFrac := []float64{0, 0.2}[rng.IntN(2)]
				ts := genTables(rng, p, []int{0, 10, 100}[rng.IntN(3)], cols, nullFrac)
				dir := t.TempDir()
				path := dir + "/part-{rank}." + format
				name := fmt.Sprintf("%s seed%d/p%d/cols=%v", format, seed, p, cols)
				var want []row
				for _, tb := range ts {
					want = append(want, orows(tb)...)
				}
				if format == "csv" {
					for _, r := range want {
						for c, v := range r {
							if v == "" || v == obin("") {
								r[c] = nil
							}
						}
					}
				}
				var gotSchema *arrow.Schema
				got, _ := runOp(t, p, [][]arrow.Table{ts}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
					f := fs[0]
					var err error
					switch format {
					case "parquet":
						_, err = f.WriteParquet(ctx, path)
					case "ipc":
						_, err = f.WriteIPC(ctx, path)
					case "csv":
						_, err = f.WriteCSV(ctx, path)
					}
					if err != nil {
						return nil, err
					}
					if err := f.Comm().Barrier(ctx); err != nil {
						return nil, err
					}
					opts := []Option{WithAllocator(f.cfg.mem)}
					var g *Frame
					switch format {
					case "parquet":
						g, err = ReadParquet(ctx, f.Comm(), []string{path}, opts...)
					case "ipc":
						g, err = ReadIPC(ctx, f.Comm(), []string{path}, opts...)
					case "csv":
						g, err = ReadCSV(ctx, f.Comm(), []string{path}, f.Schema(), opts...)
					}
					if err == nil && f.Rank() == 0 {
						gotSchema = g.Schema()
					}
					return g, err
				})
				require.Equal(t, okeys(want), okeys(got), name)
				require.True(t, ts[0].Schema().Equal(gotSchema), "%s\nwant %s\ngot %s", name, ts[0].Schema(), gotSchema)
				releaseTablesAll(ts)
			}
		}
	}
}

// fileCanHold: the types each writer takes (arrow-go's Parquet writer has no
// durations, decimal32 or decimal64; its CSV writer no nested types).
func fileCanHold(format string, dt arrow.DataType) bool {
	switch format {
	case "parquet":
		switch dt.ID() {
		case arrow.DURATION, arrow.DECIMAL32, arrow.DECIMAL64:
			return false
		case arrow.LARGE_LIST, arrow.FIXED_SIZE_LIST:
			// arrow-go's writer: "index out of range" (recovered) on a
			// large list; no nulls in a fixed-size list.
			return false
		}
	case "csv":
		switch dt.ID() {
		case arrow.FIXED_SIZE_BINARY, arrow.FLOAT16, arrow.DECIMAL32, arrow.DECIMAL64, arrow.TIME32, arrow.TIME64, arrow.DURATION, arrow.DICTIONARY,
			arrow.LIST, arrow.LARGE_LIST, arrow.FIXED_SIZE_LIST, arrow.STRUCT:
			return false
		}
	}
	return true
}

// ---- Filter ----

// tri is a three-valued boolean: -1 null, 0 false, 1 true.
type tri int

type predGen struct {
	e    Expr
	eval func(r row) tri
}

// randPred builds a random predicate over x (int32), y (float64), s
// (string), b (bool) and w (int32, column 5), with the oracle of each node.
func randPred(rng *rand.Rand, depth int) predGen {
	cmpOp := func(c int, fn int) bool {
		switch fn {
		case 0:
			return c == 0
		case 1:
			return c != 0
		case 2:
			return c < 0
		case 3:
			return c <= 0
		case 4:
			return c > 0
		}
		return c >= 0
	}
	call := func(e Expr, fn int, v any) Expr {
		return [...]func(any) Expr{e.Eq, e.Ne, e.Lt, e.Le, e.Gt, e.Ge}[fn](v)
	}
	if depth == 0 || rng.IntN(3) == 0 {
		fn := rng.IntN(6)
		switch rng.IntN(7) {
		case 0:
			v := int64(rng.IntN(10) - 5)
			return predGen{call(Col("x"), fn, v), func(r row) tri {
				if r[0] == nil {
					return -1
				}
				return boolTri(cmpOp(cmp.Compare(r[0].(int64), v), fn))
			}}
		case 1:
			v := float64(rng.IntN(10)-5) / 8
			return predGen{call(Col("y"), fn, v), func(r row) tri {
				if r[1] == nil {
					return -1
				}
				y := r[1].(float64)
				if y != y { // IEEE: NaN is unordered, unequal to everything
					return boolTri(fn == 1)
				}
				return boolTri(cmpOp(cmp.Compare(y, v), fn))
			}}
		case 2:
			v := propString(rng.IntN(6))
			return predGen{call(Col("s"), fn, v), func(r row) tri {
				if r[2] == nil {
					return -1
				}
				return boolTri(cmpOp(strings.Compare(r[2].(string), v), fn))
			}}
		case 3:
			return predGen{Col("b"), func(r row) tri {
				if r[3] == nil {
					return -1
				}
				return boolTri(r[3].(bool))
			}}
		case 4:
			c := rng.IntN(4)
			if rng.IntN(2) == 0 {
				return predGen{Col([]string{"x", "y", "s", "b"}[c]).IsValid(), func(r row) tri { return boolTri(r[c] != nil) }}
			}
			return predGen{Col([]string{"x", "y", "s", "b"}[c]).IsNull(), func(r row) tri { return boolTri(r[c] == nil) }}
		case 5:
			return predGen{call(Col("x"), fn, Col("w")), func(r row) tri {
				if r[0] == nil || r[5] == nil {
					return -1
				}
				return boolTri(cmpOp(cmp.Compare(r[0].(int64), r[5].(int64)), fn))
			}}
		default:
			return predGen{Col("x").Lt(Col("y")), func(r row) tri {
				if r[0] == nil || r[1] == nil {
					return -1
				}
				return boolTri(float64(r[0].(int64)) < r[1].(float64))
			}}
		}
	}
	a := randPred(rng, depth-1)
	switch rng.IntN(3) {
	case 0:
		b := randPred(rng, depth-1)
		return predGen{a.e.And(b.e), func(r row) tri {
			x, y := a.eval(r), b.eval(r)
			switch {
			case x == 0 || y == 0:
				return 0
			case x < 0 || y < 0:
				return -1
			}
			return 1
		}}
	case 1:
		b := randPred(rng, depth-1)
		return predGen{a.e.Or(b.e), func(r row) tri {
			x, y := a.eval(r), b.eval(r)
			switch {
			case x == 1 || y == 1:
				return 1
			case x < 0 || y < 0:
				return -1
			}
			return 0
		}}
	}
	return predGen{a.e.Not(), func(r row) tri {
		if x := a.eval(r); x >= 0 {
			return 1 - x
		}
		return -1
	}}
}

func boolTri(b bool) tri {
	if b {
		return 1
	}
	return 0
}

func TestPropFilter(t *testing.T) {
	iters := propIters(10)
	for it := range iters {
		for _, p := range propRanks {
			seed := uint64(it*100 + p)
			rng := rand.New(rand.NewPCG(seed, 19))
			cols := []propCol{{"x", arrow.PrimitiveTypes.Int32, 10}, {"y", arrow.PrimitiveTypes.Float64, 10},
				{"s", arrow.BinaryTypes.String, 6}, {"b", arrow.FixedWidthTypes.Boolean, 2}, {"z", pickValueType(rng), 10},
				{"w", arrow.PrimitiveTypes.Int32, 10}}
			ts := genTables(rng, p, []int{0, 10, 100}[rng.IntN(3)], cols, []float64{0, 0.2}[rng.IntN(2)])
			in := allRows(ts)
			pred := randPred(rng, 3)
			name := fmt.Sprintf("seed%d/p%d/%s/z=%s", seed, p, pred.e, cols[4].dt)
			got, _ := runOp(t, p, [][]arrow.Table{ts}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
				return fs[0].Filter(ctx, pred.e)
			})
			var want []row
			for _, r := range in {
				if pred.eval(r) == 1 {
					want = append(want, r)
				}
			}
			require.Equal(t, okeys(want), okeys(got), name)
			releaseTablesAll(ts)
		}
	}
}

// ---- Pipelines: operators that skip a shuffle ----

// A shuffle, a group-by on the same keys (aggregated in place) and a join
// of its result (partitioned by the keys: not moved) with another frame
// whose keys may be of another width or kind.
func TestPropPipeline(t *testing.T) {
	iters := propIters(4)
	for it := range iters {
		for _, p := range propRanks {
			seed := uint64(it*100 + p)
			rng := rand.New(rand.NewPCG(seed, 23))
			nk := 1 + rng.IntN(2)
			card := 2 + rng.IntN(10)
			var lcols, rcols []propCol
			var keys []string
			var unsigned []bool
			for k := range nk {
				dt := pickType(rng)
				rdt := partnerType(rng, dt)
				name := fmt.Sprintf("k%d", k)
				keys = append(keys, name)
				lcols = append(lcols, propCol{name, dt, card})
				rcols = append(rcols, propCol{name, rdt, card})
				unsigned = append(unsigned, arrow.IsUnsignedInteger(valueType(dt).ID()) && arrow.IsUnsignedInteger(valueType(rdt).ID()))
			}
			lcols = append(lcols, propCol{"a", pickType(rng), 10})
			rcols = append(rcols, propCol{"b", pickValueType(rng), 10})
			nullFrac := []float64{0, 0.2}[rng.IntN(2)]
			lt := genTables(rng, p, 40, lcols, nullFrac)
			rt := genTables(rng, p, 40, rcols, nullFrac)
			how := []JoinType{Inner, LeftOuter, RightOuter, FullOuter}[rng.IntN(4)]
			name := fmt.Sprintf("seed%d/p%d/%s/left=%v/right=%v", seed, p, how, lcols, rcols)
			got, _ := runOp(t, p, [][]arrow.Table{lt, rt}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
				s, err := fs[0].Shuffle(ctx, keys...)
				if err != nil {
					return nil, err
				}
				defer s.Release()
				g, err := s.GroupBy(keys...).Agg(ctx, CountRows())
				if err != nil {
					return nil, err
				}
				defer g.Release()
				if !slices.Equal(g.PartitionedBy(), keys) {
					return nil, fmt.Errorf("group-by partitioned by %v", g.PartitionedBy())
				}
				return g.Join(ctx, fs[1], how, On(keys...))
			})
			grouped := propGroupByOracle(allRows(lt), nk, nil, []Agg{CountRows()})
			want := propJoinOracle(grouped, allRows(rt), nk, how, true, unsigned)
			require.Equal(t, slices.Sorted(slices.Values(okeys(want))), slices.Sorted(slices.Values(okeys(got))), name)
			releaseTablesAll(lt)
			releaseTablesAll(rt)
		}
	}
}

// ---- Larger tables: the radix join's partitions, blocks of 16 Ki rows ----

func TestPropLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large tables")
	}
	iters := propIters(1)
	ranks, hows := []int{3}, []JoinType{FullOuter}
	if os.Getenv("FNMESH_PROP_ITERS") != "" {
		ranks, hows = []int{1, 3}, []JoinType{Inner, LeftOuter, FullOuter}
	}
	// Types with many distinct values (strings here have about 1000, floats
	// many NaNs: their joins explode).
	keyTypes := []arrow.DataType{arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Uint16,
		arrow.FixedWidthTypes.Date32, decType}
	for it := range iters {
		for _, p := range ranks {
			seed := uint64(it*100 + p)
			rng := rand.New(rand.NewPCG(seed, 29))
			dt := keyTypes[(it*2+p/3)%len(keyTypes)]
			rdt := partnerType(rng, dt)
			card := 40000
			lt := genTables(rng, p, 20000, []propCol{{"k", dt, card}, {"a", arrow.PrimitiveTypes.Int32, 100}}, 0.05)
			rt := genTables(rng, p, 20000, []propCol{{"k", rdt, card}, {"b", arrow.PrimitiveTypes.Int64, 100}}, 0.05)
			lrows, rrows := allRows(lt), allRows(rt)
			unsigned := []bool{arrow.IsUnsignedInteger(valueType(dt).ID()) && arrow.IsUnsignedInteger(valueType(rdt).ID())}
			for _, how := range hows {
				for _, sm := range []bool{false, true} {
					name := fmt.Sprintf("seed%d/p%d/%s/sm=%v/%s-%s", seed, p, how, sm, dt, rdt)
					opts := []JoinOption{On("k")}
					if sm {
						opts = append(opts, SortMerge())
					}
					got, _ := runOp(t, p, [][]arrow.Table{lt, rt}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
						return fs[0].Join(ctx, fs[1], how, opts...)
					})
					want := hashJoinOracle(lrows, rrows, how, unsigned[0])
					require.Equal(t, len(want), len(got), name)
					require.Equal(t, slices.Sorted(slices.Values(okeys(want))), slices.Sorted(slices.Values(okeys(got))), name)
				}
			}
			got, _ := runOp(t, p, [][]arrow.Table{lt}, func(ctx context.Context, fs []*Frame) (*Frame, error) {
				return fs[0].GroupBy("k").Agg(ctx, CountRows(), Sum("a"), Min("a"), Max("a"), Count("a"))
			})
			want := propGroupByOracle(lrows, 1, []arrow.DataType{arrow.PrimitiveTypes.Int32},
				[]Agg{CountRows(), Sum("v0"), Min("v0"), Max("v0"), Count("v0")})
			require.Equal(t, slices.Sorted(slices.Values(okeys(want))), slices.Sorted(slices.Values(okeys(got))), "group-by seed%d/p%d/%s", seed, p, dt)
			releaseTablesAll(lt)
			releaseTablesAll(rt)
		}
	}
}

// hashJoinOracle joins rows (key, value) by a map: for large inputs.
func hashJoinOracle(l, r []row, how JoinType, unsigned bool) []row {
	norm := func(v any) any {
		if !unsigned {
			v = okeyNum(v)
		}
		return v
	}
	byKey := map[string][]int{}
	for j, b := range r {
		if b[0] != nil {
			k := okey(okeyNum(b[0]))
			byKey[k] = append(byKey[k], j)
		}
	}
	lo, ro := how.outer()
	matched := make([]bool, len(r))
	var out []row
	for _, a := range l {
		var js []int
		if a[0] != nil {
			js = byKey[okey(okeyNum(a[0]))]
		}
		for _, j := range js {
			matched[j] = true
			out = append(out, row{norm(a[0]), a[1], r[j][1]})
		}
		if len(js) == 0 && lo {
			out = append(out, row{norm(a[0]), a[1], nil})
		}
	}
	if ro {
		for j, b := range r {
			if !matched[j] {
				out = append(out, row{norm(b[0]), nil, b[1]})
			}
		}
	}
	return out
}

// ---- Arithmetic ----

// Project's integer arithmetic over random columns (sliced, with nulls,
// mixed widths promoted) against big-integer arithmetic: the values, and an
// error exactly when a row overflows the result type.
func TestPropArithmetic(t *testing.T) {
	iters := propIters(20)
	ints := []arrow.DataType{arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64}
	for it := range iters {
		seed := uint64(it)
		rng := rand.New(rand.NewPCG(seed, 31))
		xt, yt := ints[rng.IntN(len(ints))], ints[rng.IntN(len(ints))]
		ts := genTables(rng, 1, []int{10, 100}[rng.IntN(2)], []propCol{{"x", xt, 1 + rng.IntN(200)}, {"y", yt, 1 + rng.IntN(200)}}, 0.2)
		in := allRows(ts)
		fn := rng.IntN(3)
		e := [...]func(any) Expr{Col("x").Add, Col("x").Sub, Col("x").Mul}[fn](Col("y"))
		// arrow promotes to the wider type
		rt := xt
		if yt.(arrow.FixedWidthDataType).BitWidth() > rt.(arrow.FixedWidthDataType).BitWidth() {
			rt = yt
		}
		bits := rt.(arrow.FixedWidthDataType).BitWidth()
		lo := new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), uint(bits-1)))
		hi := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(bits-1)), big.NewInt(1))
		var want []row
		overflow := false
		for _, r := range in {
			if r[0] == nil || r[1] == nil {
				want = append(want, row{nil})
				continue
			}
			a, b := big.NewInt(r[0].(int64)), big.NewInt(r[1].(int64))
			v := new(big.Int)
			switch fn {
			case 0:
				v.Add(a, b)
			case 1:
				v.Sub(a, b)
			default:
				v.Mul(a, b)
			}
			if v.Cmp(lo) < 0 || v.Cmp(hi) > 0 {
				overflow = true
			}
			want = append(want, row{v.Int64()})
		}
		name := fmt.Sprintf("seed%d %s %s %s", seed, e, xt, yt)
		var runErr error
		var got []row
		runRanks(t, 1, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
			f, err := New(c, ts[0], WithAllocator(mem))
			if err != nil {
				return err
			}
			defer f.Release()
			g, err := f.Project(ctx, e.As("r"))
			if err != nil {
				runErr = err
				return nil
			}
			defer g.Release()
			got = orows(g.Table())
			return nil
		})
		if overflow {
			require.ErrorContains(t, runErr, "overflow", name)
		} else {
			require.NoError(t, runErr, name)
			require.Equal(t, okeys(want), okeys(got), name)
		}
		releaseTablesAll(ts)
	}
}
