package frame

import (
	"context"
	"fmt"
	"slices"
)

// pollRows is how many rows a local kernel handles between two looks at its
// context (ctx.Err): often enough that a cancelled operator stops within
// about a millisecond of work, rarely enough that the look costs nothing
// measurable. Kernels loop over blocks of pollRows rows and check once per
// block, never per row.
const pollRows = 16 << 10

// ctxErr returns ctx's error, saying where it was seen, or nil while ctx is
// live.
func ctxErr(ctx context.Context, where string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// sortRun is the length of the runs sortStable sorts in place before it
// merges them.
const sortRun = 256

// sortStable sorts s stably by cmp, looking at ctx every pollRows elements:
// runs of sortRun elements are sorted in place, then merged pairwise through
// a buffer of len(s) elements. A comparator cannot report cancellation, so
// the sort is cut into pieces that can. It returns ctx's error, s then in
// no particular order.
func sortStable[E any](ctx context.Context, s []E, cmp func(a, b E) int) error {
	n := len(s)
	for lo := 0; lo < n; lo += sortRun {
		if lo%pollRows == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		slices.SortStableFunc(s[lo:min(lo+sortRun, n)], cmp)
	}
	if n <= sortRun {
		return nil
	}
	buf := make([]E, n)
	src, dst := s, buf
	for width := sortRun; width < n; width *= 2 {
		for lo := 0; lo < n; lo += 2 * width {
			mid, hi := min(lo+width, n), min(lo+2*width, n)
			if err := mergeInto(ctx, dst[lo:hi], src[lo:mid], src[mid:hi], cmp); err != nil {
				return err
			}
		}
		src, dst = dst, src
	}
	if &src[0] != &s[0] {
		copy(s, src)
	}
	return nil
}

// mergeInto merges the sorted a and b into dst (len(a)+len(b) long), a's
// elements first among equal ones, looking at ctx every pollRows elements.
func mergeInto[E any](ctx context.Context, dst, a, b []E, cmp func(a, b E) int) error {
	i, j, k := 0, 0, 0
	for i < len(a) && j < len(b) {
		if err := ctx.Err(); err != nil {
			return err
		}
		for end := min(k+pollRows, len(dst)); k < end && i < len(a) && j < len(b); k++ {
			if cmp(b[j], a[i]) < 0 {
				dst[k] = b[j]
				j++
			} else {
				dst[k] = a[i]
				i++
			}
		}
	}
	k += copy(dst[k:], a[i:])
	copy(dst[k:], b[j:])
	return nil
}
