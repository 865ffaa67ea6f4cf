package arrowio

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnmesh/fnmesh/collective"
)

// hugeRow is more values that store nothing than DefaultMaxDatalessRows allows in one message.
const hugeRow = 2 * DefaultMaxDatalessRows

// datalessRowTable is a table of an int64 key column "k" and a column "l" of type dt, of rows rows,
// built from col (whose reference it takes). Nothing of it is allocated per value.
func datalessRowTable(col arrow.ArrayData) arrow.Table {
	defer col.Release()
	keys := array.NewData(arrow.PrimitiveTypes.Int64, col.Len(),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(make([]int64, col.Len())))}, nil, 0, 0)
	defer keys.Release()
	k, l := array.MakeFromData(keys), array.MakeFromData(col)
	defer k.Release()
	defer l.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64}, {Name: "l", Type: col.DataType(), Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{k, l}, int64(col.Len()))
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

// listOfNulls is a list<null> column whose rows hold lens[i] nulls each.
func listOfNulls(lens ...int) arrow.ArrayData {
	offs := make([]int32, len(lens)+1)
	for i, n := range lens {
		offs[i+1] = offs[i] + int32(n)
	}
	nulls := array.NewNull(int(offs[len(lens)]))
	defer nulls.Release()
	return array.NewData(arrow.ListOf(arrow.Null), len(lens),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offs))}, []arrow.ArrayData{nulls.Data()}, 0, 0)
}

// unsendableRowTables are tables with one row of more dataless values than a message may carry
// (hugeRow), which no cut by rows brings within the receiver's limit; row says which.
var unsendableRowTables = []struct {
	name  string
	row   int
	build func() arrow.Table
}{
	{"list of nulls", 1, func() arrow.Table { return datalessRowTable(listOfNulls(3, hugeRow, 0)) }},
	{"fixed-size list of nulls", 0, func() arrow.Table {
		nulls := array.NewNull(hugeRow)
		defer nulls.Release()
		return datalessRowTable(array.NewData(arrow.FixedSizeListOf(hugeRow, arrow.Null), 1, []*memory.Buffer{nil}, []arrow.ArrayData{nulls.Data()}, 0, 0))
	}},
	{"list of run-end encoded", 2, func() arrow.Table {
		ends := array.NewData(arrow.PrimitiveTypes.Int32, 2, []*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes([]int32{2, hugeRow + 2}))}, nil, 0, 0)
		defer ends.Release()
		vals := array.NewData(arrow.PrimitiveTypes.Int64, 2, []*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes([]int64{7, 8}))}, nil, 0, 0)
		defer vals.Release()
		ree := array.NewData(arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64), hugeRow+2, []*memory.Buffer{nil}, []arrow.ArrayData{ends, vals}, 0, 0)
		defer ree.Release()
		offs := []int32{0, 1, 2, hugeRow + 2}
		return datalessRowTable(array.NewData(arrow.ListOf(ree.DataType()), 3,
			[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offs))}, []arrow.ArrayData{ree}, 0, 0))
	}},
}

// TestUnsendableRowRefusedBySender: a row holding more values that store nothing (nulls, a run-end
// encoded array's logical values) than a message may carry under the receiver's limit
// (WithMaxDatalessRows) cannot be cut, a row being the unit of a cut. The sender refuses it before
// sending anything of the table, with an error naming the row and the column and wrapping
// ErrDecodeLimit; every rank that receives from it gets the error as the sender's abort (no rank
// hangs), and the communicator stays usable. Before, the send succeeded and the receiver refused the
// message. Only rank 0 holds the row: every rank of the collectives that exchange with every other
// (shuffle, allgather, alltoall, bcast) fails, and so does the root of a gather; a sender with the
// receivers' raised limit sends the row, and it arrives.
func TestUnsendableRowRefusedBySender(t *testing.T) {
	comms := newWorld(t, pipeLinks, 3)
	for _, tt := range unsendableRowTables {
		t.Run(tt.name, func(t *testing.T) {
			want := fmt.Sprintf("row %d, column 1 (\"l\"): over the receive limit", tt.row)
			cases := []struct {
				name string
				// run runs the call on rank c.Rank() with tbl (rank 0's holds the row) and reports
				// whether this rank must fail.
				run func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) (bool, error)
			}{
				{"send/recv", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) (bool, error) {
					switch c.Rank() {
					case 0:
						return true, SendTable(ctx, c, 1, 9, tbl, opts...)
					case 1:
						got, err := RecvTable(ctx, c, 0, 9, opts...)
						releaseTables([]arrow.Table{got})
						return true, err
					}
					return false, nil
				}},
				{"stream writer", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) (bool, error) {
					switch c.Rank() {
					case 0:
						w, err := NewStreamWriter(ctx, c, 1, 9, tbl.Schema(), opts...)
						if err != nil {
							return true, err
						}
						rec := array.NewTableReader(tbl, -1)
						defer rec.Release()
						rec.Next()
						if err := w.Write(rec.RecordBatch()); err != nil {
							return true, errors.Join(err, w.Close())
						}
						return true, w.Close()
					case 1:
						r, err := NewStreamReader(ctx, c, 0, 9, opts...)
						if err != nil {
							return true, err
						}
						defer r.Release()
						for r.Next() {
						}
						return true, r.Err()
					}
					return false, nil
				}},
				{"shuffle", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) (bool, error) {
					got, err := Shuffle(ctx, c, tbl, []string{"k"}, opts...)
					releaseTables([]arrow.Table{got})
					return true, err
				}},
				{"allgather", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) (bool, error) {
					got, err := AllgatherTable(ctx, c, tbl, opts...)
					releaseTables([]arrow.Table{got})
					return true, err
				}},
				{"alltoall", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) (bool, error) {
					parts := []arrow.Table{tbl, tbl, tbl}
					if c.Rank() == 0 {
						parts = []arrow.Table{nil, nil, tbl} // only rank 2 gets the row
					}
					got, err := AlltoallTables(ctx, c, parts, opts...)
					releaseTables(got)
					return true, err
				}},
				{"gather", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) (bool, error) {
					got, err := GatherTable(ctx, c, 1, tbl, opts...)
					releaseTables([]arrow.Table{got})
					return c.Rank() != 2, err // rank 2's part of a gather is its own send, which succeeds
				}},
				{"bcast", func(ctx context.Context, c *collective.Comm, tbl arrow.Table, opts []Option) (bool, error) {
					got, err := BcastTable(ctx, c, 0, tbl, opts...)
					releaseTables([]arrow.Table{got})
					return true, err
				}},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					errs := runRanks(t, comms, 20*time.Second, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
						tbl := tt.build()
						if c.Rank() != 0 { // the others send rows of the same schema
							empty := emptyTable(tbl.Schema())
							tbl.Release()
							tbl = empty
						}
						defer tbl.Release()
						fails, err := tc.run(ctx, c, tbl, []Option{WithAllocator(mem)})
						var outcome error
						switch {
						case !fails && err != nil:
							outcome = fmt.Errorf("rank %d: %w", c.Rank(), err)
						case !fails:
						case err == nil:
							outcome = fmt.Errorf("rank %d: no error", c.Rank())
						default:
							assert.ErrorContains(t, err, want, "rank %d", c.Rank())
							if c.Rank() == 0 {
								assert.ErrorIs(t, err, ErrDecodeLimit, "rank 0")
							}
						}
						// The communicator still works.
						ok := rankTable(t, mem, 5, 0, 0)
						defer ok.Release()
						got, err := AllgatherTable(ctx, c, ok, WithAllocator(mem))
						if err == nil {
							got.Release()
						}
						return errors.Join(outcome, err)
					})
					requireNoErrors(t, errs)
				})
			}
		})
	}

	// With the limit raised on both sides, the row travels.
	tbl := unsendableRowTables[0].build()
	defer tbl.Release()
	raised := WithMaxDatalessRows(2 * hugeRow)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sent := make(chan error, 1)
	go func() { sent <- SendTable(ctx, comms[0], 1, 4, tbl, raised) }()
	got, err := RecvTable(ctx, comms[1], 0, 4, raised)
	require.NoError(t, <-sent)
	require.NoError(t, err)
	defer got.Release()
	require.Equal(t, int64(3), got.NumRows())
	var lens []int
	for _, c := range got.Column(1).Data().Chunks() {
		list := c.(*array.List)
		for i := range list.Len() {
			lo, hi := list.ValueOffsets(i)
			lens = append(lens, int(hi-lo))
		}
	}
	assert.Equal(t, []int{3, hugeRow, 0}, lens)
}

// TestUnsendableDictionaryRefusedBySender: a dictionary is sent whole, in a message of its own, so
// one whose values hold more values that store nothing than its bytes allow under WithMaxDatalessRows
// (a dictionary of lists of nulls, one of 2^29) cannot be cut either: the sender refuses it before
// sending anything, naming the column, and the receiver gets its error. Before, the send succeeded
// and the receiver refused the dictionary batch. With the limit raised on both sides, it travels.
func TestUnsendableDictionaryRefusedBySender(t *testing.T) {
	build := func(mem memory.Allocator) arrow.Table {
		dictData := listOfNulls(hugeRow, 3)
		dict := array.MakeFromData(dictData)
		dictData.Release()
		defer dict.Release()
		ib := array.NewInt8Builder(mem)
		defer ib.Release()
		ib.AppendValues([]int8{1, 0, 1}, nil)
		idx := ib.NewArray()
		defer idx.Release()
		dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: dict.DataType()}
		col := array.NewDictionaryArray(dt, idx, dict)
		defer col.Release()
		schema := arrow.NewSchema([]arrow.Field{{Name: "d", Type: dt, Nullable: true}}, nil)
		rec := array.NewRecordBatch(schema, []arrow.Array{col}, 3)
		defer rec.Release()
		return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
	}
	comms := newWorld(t, pipeLinks, 2)
	for _, raised := range []bool{false, true} {
		t.Run(fmt.Sprintf("raised=%v", raised), func(t *testing.T) {
			mem := checkedMem(t)
			tbl := build(mem)
			defer tbl.Release()
			opts := []Option{WithAllocator(mem)}
			if raised {
				opts = append(opts, WithMaxDatalessRows(2*hugeRow))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			sent := make(chan error, 1)
			go func() { sent <- SendTable(ctx, comms[0], 1, 4, tbl, opts...) }()
			got, err := RecvTable(ctx, comms[1], 0, 4, opts...)
			serr := <-sent
			if raised {
				require.NoError(t, serr)
				require.NoError(t, err)
				defer got.Release()
				assert.Equal(t, int64(3), got.NumRows())
				return
			}
			releaseTables([]arrow.Table{got})
			want := `column 0 ("d"): over the receive limit: its dictionary`
			assert.ErrorContains(t, err, "the sender aborted the stream: "+want)
			require.ErrorIs(t, serr, ErrDecodeLimit)
			assert.ErrorContains(t, serr, want)
		})
	}
}
