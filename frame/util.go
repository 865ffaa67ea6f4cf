package frame

import (
	"fmt"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// sliceArray returns a zero-copy view of the rows [lo, hi) of a (release it).
func sliceArray(a arrow.Array, lo, hi int) arrow.Array {
	return array.NewSlice(a, int64(lo), int64(hi))
}

// releaseAll releases every non-nil array.
func releaseAll(as []arrow.Array) {
	for _, a := range as {
		if a != nil {
			a.Release()
		}
	}
}

// unsafeBytes views the memory of a slice of plain values as bytes.
func unsafeBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(zero)))
}

// recoverPanic turns a panic inside arrow-go (whose kernels index buffers
// without checking them, and panic on some empty inputs) into an error, so
// that bad input never crashes the caller.
func recoverPanic(err *error, what string) {
	if r := recover(); r != nil {
		if e, ok := r.(error); ok {
			*err = fmt.Errorf("%s: arrow-go panicked: %w", what, e) // arrowio.ErrAllocationLimit, say
			return
		}
		*err = fmt.Errorf("%s: arrow-go panicked: %v", what, r)
	}
}
