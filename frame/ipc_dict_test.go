package frame

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/stretchr/testify/require"
)

// WriteIPC of dictionary columns leaves nothing allocated in the frame's
// allocator once the frames are released (arrow-go's IPC file writer keeps
// the dictionaries it wrote), and the file reads back value for value.
func TestWriteIPCDictionariesReleased(t *testing.T) {
	vals := []any{"a", nil, "b", "a", "c", nil, "d"}
	for _, tc := range []struct {
		p       int
		shuffle bool // chunks with different dictionaries, unified by WriteIPC
	}{{1, false}, {2, false}, {2, true}, {3, true}} {
		t.Run(fmt.Sprintf("p%d/shuffle=%v", tc.p, tc.shuffle), func(t *testing.T) {
			dir := t.TempDir()
			var want, got []string
			for r := range tc.p {
				for i := range 10 + r {
					want = append(want, fmt.Sprintf("%d/%v", 100*r+i, vals[(i+r)%len(vals)]))
				}
			}
			runRanks(t, tc.p, func(ctx context.Context, c *collective.Comm, mem memory.Allocator) error {
				var ids []int64
				var ds []any
				for i := range 10 + c.Rank() {
					ids = append(ids, int64(100*c.Rank()+i))
					ds = append(ds, vals[(i+c.Rank())%len(vals)])
				}
				d := dictOf(mem, arrow.PrimitiveTypes.Int32, ds...)
				defer d.Release()
				ib := array.NewInt64Builder(mem)
				ib.AppendValues(ids, nil)
				id := ib.NewArray()
				ib.Release()
				defer id.Release()
				s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: id.DataType()}, {Name: "d", Type: d.DataType(), Nullable: true}}, nil)
				rec := array.NewRecordBatch(s, []arrow.Array{id, d}, int64(d.Len()))
				defer rec.Release()
				f, err := FromRecords(c, s, []arrow.RecordBatch{rec}, WithAllocator(mem))
				if err != nil {
					return err
				}
				defer f.Release()
				if tc.shuffle {
					sh, err := f.Shuffle(ctx, "d")
					if err != nil {
						return err
					}
					defer sh.Release()
					f = sh
				}
				path := filepath.Join(dir, "d-{rank}.arrow")
				if _, err := f.WriteIPC(ctx, path); err != nil {
					return err
				}
				back, err := ReadIPC(ctx, c, []string{path}, WithAllocator(mem))
				if err != nil {
					return err
				}
				defer back.Release()
				all, err := back.Gather(ctx, 0)
				if err != nil || all == nil {
					return err
				}
				defer all.Release()
				for _, r := range rowsOf(all) {
					got = append(got, fmt.Sprintf("%v/%v", r[0], r[1]))
				}
				return nil
			})
			slices.Sort(want)
			slices.Sort(got)
			require.Equal(t, want, got)
		})
	}
}
