package frame

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/compute/exec"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// take gathers rows of a by index: out[k] = a[idx[k]], and a null where
// idx[k] < 0 (the unmatched side of an outer join). Fixed-width and string or
// binary columns are gathered here in one typed pass, dictionaries by their
// indices (sharing the dictionary); other types go through arrow's
// compute.Take. The typed gathers look at ctx every pollRows rows.
func take(ctx context.Context, mem memory.Allocator, a arrow.Array, idx []int32) (arrow.Array, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if w, ok := fixedWidth(a.DataType()); ok {
		switch w {
		case 1:
			return takeFixed[uint8](ctx, mem, a, idx)
		case 2:
			return takeFixed[uint16](ctx, mem, a, idx)
		case 4:
			return takeFixed[uint32](ctx, mem, a, idx)
		case 8:
			return takeFixed[uint64](ctx, mem, a, idx)
		case 16:
			return takeFixed[decimal128.Num](ctx, mem, a, idx)
		case 32:
			return takeFixed[decimal256.Num](ctx, mem, a, idx)
		}
	}
	switch a.DataType().ID() {
	case arrow.DICTIONARY:
		d := a.(*array.Dictionary)
		idx, err := take(ctx, mem, d.Indices(), idx)
		if err != nil {
			return nil, err
		}
		defer idx.Release()
		return array.NewDictionaryArray(a.DataType(), idx, d.Dictionary()), nil
	case arrow.STRING, arrow.BINARY:
		return takeVar[int32](ctx, mem, a, idx)
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		return takeVar[int64](ctx, mem, a, idx)
	}
	return takeCompute(ctx, mem, a, idx)
}

// takeValidity builds the validity bitmap of a gather: nil when every output
// slot is valid.
func takeValidity(mem memory.Allocator, a arrow.Array, idx []int32) (*memory.Buffer, int) {
	src := validityOf(a)
	nulls := 0
	for _, i := range idx {
		if i < 0 || (src.bits != nil && !src.valid(int(i))) {
			nulls++
		}
	}
	if nulls == 0 {
		return nil, 0
	}
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(int(bitutil.BytesForBits(int64(len(idx)))))
	bits := buf.Bytes()
	clear(bits)
	for k, i := range idx {
		if i >= 0 && (src.bits == nil || src.valid(int(i))) {
			bitutil.SetBit(bits, k)
		}
	}
	return buf, nulls
}

func takeFixed[T arrow.FixedWidthType](ctx context.Context, mem memory.Allocator, a arrow.Array, idx []int32) (arrow.Array, error) {
	validity, nulls := takeValidity(mem, a, idx)
	var zero T
	width := int(sizeOf(zero))
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(len(idx) * width)
	out := arrow.GetData[T](buf.Bytes())
	src := rawValues[T](a)
	negative := nulls > 0 && hasNegative(idx)
	for lo := 0; lo < len(idx); lo += pollRows {
		if err := ctx.Err(); err != nil {
			if validity != nil {
				validity.Release()
			}
			buf.Release()
			return nil, err
		}
		hi := min(lo+pollRows, len(idx))
		dst := out[lo:hi]
		if !negative {
			for k, i := range idx[lo:hi] {
				dst[k] = src[i]
			}
		} else {
			for k, i := range idx[lo:hi] {
				if i >= 0 {
					dst[k] = src[i]
				} else {
					dst[k] = zero
				}
			}
		}
	}
	data := array.NewData(a.DataType(), len(idx), []*memory.Buffer{validity, buf}, nil, nulls, 0)
	defer data.Release()
	if validity != nil {
		validity.Release()
	}
	buf.Release()
	return array.MakeFromData(data), nil
}

func hasNegative(idx []int32) bool {
	for _, i := range idx {
		if i < 0 {
			return true
		}
	}
	return false
}

func takeVar[O int32 | int64](ctx context.Context, mem memory.Allocator, a arrow.Array, idx []int32) (arrow.Array, error) {
	srcOff, srcData := varOffsets[O](a)
	validity, nulls := takeValidity(mem, a, idx)
	var total int64
	for _, i := range idx {
		if i >= 0 {
			total += int64(srcOff[i+1] - srcOff[i])
		}
	}
	var zero O
	if sizeOf(zero) == 4 && total > math.MaxInt32 {
		if validity != nil {
			validity.Release()
		}
		return nil, fmt.Errorf("gathering %d bytes of %s overflows its offsets", total, a.DataType())
	}
	offBuf := memory.NewResizableBuffer(mem)
	offBuf.Resize((len(idx) + 1) * int(sizeOf(zero)))
	offs := arrow.GetData[O](offBuf.Bytes())
	dataBuf := memory.NewResizableBuffer(mem)
	dataBuf.Resize(int(total))
	dst := dataBuf.Bytes()
	var pos O
	offs[0] = 0
	for lo := 0; lo < len(idx); lo += pollRows {
		if err := ctx.Err(); err != nil {
			if validity != nil {
				validity.Release()
			}
			offBuf.Release()
			dataBuf.Release()
			return nil, err
		}
		for k, i := range idx[lo:min(lo+pollRows, len(idx))] {
			if i >= 0 {
				v := srcData[srcOff[i]:srcOff[i+1]]
				copy(dst[pos:], v)
				pos += O(len(v))
			}
			offs[lo+k+1] = pos
		}
	}
	data := array.NewData(a.DataType(), len(idx), []*memory.Buffer{validity, offBuf, dataBuf}, nil, nulls, 0)
	defer data.Release()
	if validity != nil {
		validity.Release()
	}
	offBuf.Release()
	dataBuf.Release()
	return array.MakeFromData(data), nil
}

// takeCompute gathers with arrow's take kernel; negative indices become null
// indices, which that kernel turns into null values.
func takeCompute(ctx context.Context, mem memory.Allocator, a arrow.Array, idx []int32) (_ arrow.Array, err error) {
	defer recoverPanic(&err, "take")
	b := array.NewInt32Builder(mem)
	defer b.Release()
	b.Reserve(len(idx))
	for _, i := range idx {
		if i < 0 {
			b.AppendNull()
		} else {
			b.UnsafeAppend(i)
		}
	}
	indices := b.NewArray()
	defer indices.Release()
	out, err := compute.TakeArray(exec.WithAllocator(ctx, mem), a, indices)
	if err != nil {
		return nil, fmt.Errorf("take %s: %w", a.DataType(), err)
	}
	return out, nil
}

// takeColumns gathers every column by the same indices.
func takeColumns(ctx context.Context, mem memory.Allocator, cols []arrow.Array, idx []int32) ([]arrow.Array, error) {
	out := make([]arrow.Array, len(cols))
	for i, c := range cols {
		a, err := take(ctx, mem, c, idx)
		if err != nil {
			releaseAll(out)
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

func sizeOf[T any](v T) uintptr { return unsafe.Sizeof(v) }

// runTasks runs the tasks, at most par at a time, and returns their arrays
// in order; on an error it releases what was built, and starts no more
// tasks once one has failed.
func runTasks(tasks []func() (arrow.Array, error), par int) ([]arrow.Array, error) {
	out := make([]arrow.Array, len(tasks))
	errs := make([]error, len(tasks))
	sem := make(chan struct{}, max(par, 1))
	var wg sync.WaitGroup
	var failed atomic.Bool
	for i, t := range tasks {
		sem <- struct{}{}
		if failed.Load() {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if out[i], errs[i] = t(); errs[i] != nil {
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		releaseAll(out)
		return nil, err
	}
	return out, nil
}
