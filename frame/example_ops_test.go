package frame_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/fnmesh/fnmesh/collective"
	"github.com/fnmesh/fnmesh/frame"
)

// Every example below runs its function on each of two ranks (runLocal,
// with collective.Local) and prints on rank 0 only, after gathering there,
// or after the ranks are done.

// Shuffle moves every row to the rank its key hashes to: afterwards all the
// orders of one customer are on one rank, and the frame knows it.
func ExampleFrame_Shuffle() {
	ids := [][]int64{{1, 3, 3}, {1, 2, 3, 4}}
	amounts := [][]float64{{10, 5, 7}, {2.5, 4, 1, 8}}
	parts := make([]string, 2)
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		orders, err := newFrame(c, "id", ids[c.Rank()], "amount", amounts[c.Rank()])
		if err != nil {
			return err
		}
		defer orders.Release()
		byID, err := orders.Shuffle(ctx, "id")
		if err != nil {
			return err
		}
		defer byID.Release()
		parts[c.Rank()] = fmt.Sprintf("rank %d: %s (partitioned by %v)",
			byID.Rank(), strings.Join(rows(byID.Table()), ", "), byID.PartitionedBy())
		return nil
	})
	for _, p := range parts {
		fmt.Println(p)
	}
	// Output:
	// rank 0: 2 4 (partitioned by [id])
	// rank 1: 1 10, 3 5, 3 7, 1 2.5, 3 1, 4 8 (partitioned by [id])
}

// An inner join keeps the rows whose keys match on both sides. With On the
// key column appears once, followed by the left and then the right columns.
func ExampleFrame_Join() {
	orderIDs := [][]int64{{1, 3, 3}, {1, 2, 3, 4}}
	amounts := [][]float64{{10, 5, 7}, {2.5, 4, 1, 8}}
	custIDs := [][]int64{{1, 2}, {3, 5}}
	names := [][]string{{"ann", "bob"}, {"cy", "dee"}}
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		r := c.Rank()
		orders, err := newFrame(c, "id", orderIDs[r], "amount", amounts[r])
		if err != nil {
			return err
		}
		defer orders.Release()
		customers, err := newFrame(c, "id", custIDs[r], "name", names[r])
		if err != nil {
			return err
		}
		defer customers.Release()

		joined, err := orders.Join(ctx, customers, frame.Inner, frame.On("id"))
		if err != nil {
			return err
		}
		defer joined.Release()
		return showSorted(ctx, joined)
	})
	// Output:
	// id amount name
	// 1 10 ann
	// 1 2.5 ann
	// 2 4 bob
	// 3 1 cy
	// 3 5 cy
	// 3 7 cy
}

// A full outer join also keeps the rows of either side that match nothing,
// with nulls for the other side's columns; the key comes from whichever side
// has the row. (LeftOuter keeps only the left side's, RightOuter the right
// side's.)
func ExampleFrame_Join_fullOuter() {
	orderIDs := [][]int64{{1, 3, 3}, {1, 2, 3, 4}}
	amounts := [][]float64{{10, 5, 7}, {2.5, 4, 1, 8}}
	custIDs := [][]int64{{1, 2}, {3, 5}}
	names := [][]string{{"ann", "bob"}, {"cy", "dee"}}
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		r := c.Rank()
		orders, err := newFrame(c, "id", orderIDs[r], "amount", amounts[r])
		if err != nil {
			return err
		}
		defer orders.Release()
		customers, err := newFrame(c, "id", custIDs[r], "name", names[r])
		if err != nil {
			return err
		}
		defer customers.Release()

		joined, err := orders.Join(ctx, customers, frame.FullOuter, frame.On("id"))
		if err != nil {
			return err
		}
		defer joined.Release()
		return showSorted(ctx, joined)
	})
	// Output:
	// id amount name
	// 1 10 ann
	// 1 2.5 ann
	// 2 4 bob
	// 3 1 cy
	// 3 5 cy
	// 3 7 cy
	// 4 8 null
	// 5 null dee
}

// LeftOn and RightOn join on keys that are named differently on the two
// sides; both key columns are kept. Columns that both sides have get the
// Suffixes (by default "_x" and "_y").
func ExampleFrame_Join_leftOnRightOn() {
	custIDs := [][]int64{{1, 3}, {2, 4}}
	items := [][]string{{"tea", "jam"}, {"oil", "pen"}}
	ids := [][]int64{{1, 2}, {3}}
	names := [][]string{{"ann", "bob"}, {"cy"}}
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		r := c.Rank()
		orders, err := newFrame(c, "customer", custIDs[r], "name", items[r])
		if err != nil {
			return err
		}
		defer orders.Release()
		customers, err := newFrame(c, "id", ids[r], "name", names[r])
		if err != nil {
			return err
		}
		defer customers.Release()

		joined, err := orders.Join(ctx, customers, frame.LeftOuter,
			frame.LeftOn("customer"), frame.RightOn("id"), frame.Suffixes("_order", "_customer"))
		if err != nil {
			return err
		}
		defer joined.Release()
		return showSorted(ctx, joined)
	})
	// Output:
	// customer name_order id name_customer
	// 1 tea 1 ann
	// 2 oil 2 bob
	// 3 jam 3 cy
	// 4 pen null null
}

// SortMerge joins each rank's partitions by sorting and merging them
// instead of hashing: the result is the same, and each rank's rows come
// out in key order.
func ExampleFrame_Join_sortMerge() {
	leftIDs := [][]int64{{4, 1, 3}, {2, 5, 6}}
	rightIDs := [][]int64{{6, 5, 4}, {3, 2, 1}}
	parts := make([]string, 2)
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		r := c.Rank()
		left, err := newFrame(c, "id", leftIDs[r])
		if err != nil {
			return err
		}
		defer left.Release()
		right, err := newFrame(c, "id", rightIDs[r], "square", squares(rightIDs[r]))
		if err != nil {
			return err
		}
		defer right.Release()

		joined, err := left.Join(ctx, right, frame.Inner, frame.On("id"), frame.SortMerge())
		if err != nil {
			return err
		}
		defer joined.Release()
		parts[r] = fmt.Sprintf("rank %d: %s", r, strings.Join(rows(joined.Table()), ", "))
		return nil
	})
	for _, p := range parts {
		fmt.Println(p)
	}
	// Output:
	// rank 0: 2 4
	// rank 1: 1 1, 3 9, 4 16, 5 25, 6 36
}

func squares(xs []int64) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = x * x
	}
	return out
}

// GroupBy and Agg: one row per customer, with the aggregations' columns
// after the key. Count counts the values that are not null, CountRows the
// rows; result columns are named by As, or by default as "sum_amount".
func ExampleFrame_GroupBy() {
	ids := [][]int64{{1, 3, 3}, {1, 2, 3, 3}}
	amounts := [][]any{{10.0, 5.0, 7.0}, {2.5, 4.0, 3.0, nil}}
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		orders, err := newFrame(c, "id", ids[c.Rank()], "amount", amounts[c.Rank()])
		if err != nil {
			return err
		}
		defer orders.Release()

		perCustomer, err := orders.GroupBy("id").Agg(ctx,
			frame.CountRows().As("orders"),
			frame.Count("amount").As("priced"),
			frame.Sum("amount"),
			frame.Mean("amount"),
			frame.Min("amount"),
			frame.Max("amount"))
		if err != nil {
			return err
		}
		defer perCustomer.Release()
		return showSorted(ctx, perCustomer)
	})
	// Output:
	// id orders priced sum_amount mean_amount min_amount max_amount
	// 1 2 2 12.5 6.25 2.5 10
	// 2 1 1 4 4 4 4
	// 3 4 3 15 5 3 7
}

// With no keys, Agg aggregates the whole frame into one row, on rank 0.
func ExampleGrouped_Agg() {
	amounts := [][]float64{{10, 5, 7}, {2.5, 4}}
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		orders, err := newFrame(c, "amount", amounts[c.Rank()])
		if err != nil {
			return err
		}
		defer orders.Release()
		total, err := orders.GroupBy().Agg(ctx, frame.Sum("amount").As("total"), frame.CountRows())
		if err != nil {
			return err
		}
		defer total.Release()
		return show(ctx, total)
	})
	// Output:
	// total count
	// 28.5 5
}

// Sort orders the whole frame: rank 0 holds the first rows, rank 1 the
// next, and each partition is sorted. Here by amount, largest first, and
// equal amounts by id.
func ExampleFrame_Sort() {
	ids := [][]int64{{1, 2, 3}, {4, 5, 6}}
	amounts := [][]float64{{5, 9, 1}, {7, 5, 3}}
	parts := make([]string, 2)
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		orders, err := newFrame(c, "id", ids[c.Rank()], "amount", amounts[c.Rank()])
		if err != nil {
			return err
		}
		defer orders.Release()
		sorted, err := orders.Sort(ctx, frame.Desc("amount"), frame.Asc("id"))
		if err != nil {
			return err
		}
		defer sorted.Release()
		parts[c.Rank()] = fmt.Sprintf("rank %d: %s", c.Rank(), strings.Join(rows(sorted.Table()), ", "))
		return nil
	})
	for _, p := range parts {
		fmt.Println(p)
	}
	// Output:
	// rank 0: 2 9, 4 7, 1 5, 5 5
	// rank 1: 6 3, 3 1
}

// Distinct keeps each distinct row (of the named columns, or of all) once.
func ExampleFrame_Distinct() {
	ids := [][]int64{{1, 3, 3}, {1, 2, 3}}
	cities := [][]string{{"oslo", "rome", "rome"}, {"oslo", "oslo", "lima"}}
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		visits, err := newFrame(c, "id", ids[c.Rank()], "city", cities[c.Rank()])
		if err != nil {
			return err
		}
		defer visits.Release()
		pairs, err := visits.Distinct(ctx) // all columns
		if err != nil {
			return err
		}
		defer pairs.Release()
		if err := showSorted(ctx, pairs); err != nil {
			return err
		}
		cityNames, err := visits.Distinct(ctx, "city")
		if err != nil {
			return err
		}
		defer cityNames.Release()
		return showSorted(ctx, cityNames)
	})
	// Output:
	// id city
	// 1 oslo
	// 2 oslo
	// 3 lima
	// 3 rome
	// city
	// lima
	// oslo
	// rome
}

// Filter keeps the rows where a boolean expression of columns (Col) and
// constants (Lit, or plain Go values) is true. It is local: no row moves.
func ExampleFrame_Filter() {
	ids := [][]int64{{1, 2, 3}, {4, 5, 6}}
	amounts := [][]any{{10.0, 2.0, nil}, {7.0, 30.0, 4.0}}
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		orders, err := newFrame(c, "id", ids[c.Rank()], "amount", amounts[c.Rank()])
		if err != nil {
			return err
		}
		defer orders.Release()
		// 5 <= amount < 20, or no amount at all
		pred := frame.Col("amount").Ge(frame.Lit(5.0)).And(frame.Col("amount").Lt(20)).
			Or(frame.Col("amount").IsNull())
		picked, err := orders.Filter(ctx, pred)
		if err != nil {
			return err
		}
		defer picked.Release()
		return show(ctx, picked)
	})
	// Output:
	// id amount
	// 1 10
	// 3 null
	// 4 7
}

// Select keeps columns by name, in the order given, without copying data.
func ExampleFrame_Select() {
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		orders, err := newFrame(c, "id", []int64{int64(c.Rank())}, "amount", []float64{10}, "note", []string{"gift"})
		if err != nil {
			return err
		}
		defer orders.Release()
		slim, err := orders.Select("amount", "id")
		if err != nil {
			return err
		}
		defer slim.Release()
		return show(ctx, slim)
	})
	// Output:
	// amount id
	// 10 0
	// 10 1
}

// WithColumn adds (or replaces) a column computed from the others.
func ExampleFrame_WithColumn() {
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		items, err := newFrame(c, "price", []float64{2.5, 4}, "qty", []int64{int64(c.Rank()) + 1, 10})
		if err != nil {
			return err
		}
		defer items.Release()
		withTotal, err := items.WithColumn(ctx, "total", frame.Col("price").Mul(frame.Col("qty")))
		if err != nil {
			return err
		}
		defer withTotal.Release()
		return show(ctx, withTotal)
	})
	// Output:
	// price qty total
	// 2.5 1 2.5
	// 4 10 40
	// 2.5 2 5
	// 4 10 40
}

// Head takes the first rows of the frame in rank order: here rank 0's two
// rows and the first of rank 1's. Sort first for the top rows by a key.
func ExampleFrame_Head() {
	ids := [][]int64{{1, 2}, {3, 4, 5}}
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		f, err := newFrame(c, "id", ids[c.Rank()])
		if err != nil {
			return err
		}
		defer f.Release()
		first, err := f.Head(ctx, 3)
		if err != nil {
			return err
		}
		defer first.Release()
		return show(ctx, first)
	})
	// Output:
	// id
	// 1
	// 2
	// 3
}

// Gather brings every rank's partition, in rank order, to one rank as an
// arrow.Table; the other ranks get nil. Collect gives the table to every
// rank, and Count just counts.
func ExampleFrame_Gather() {
	names := [][]string{{"ann", "bob"}, {"cy"}}
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		f, err := newFrame(c, "name", names[c.Rank()])
		if err != nil {
			return err
		}
		defer f.Release()
		n, err := f.Count(ctx)
		if err != nil {
			return err
		}
		all, err := f.Gather(ctx, 0)
		if err != nil {
			return err
		}
		if all == nil { // not the root
			return nil
		}
		defer all.Release()
		fmt.Println(n, "rows:", rows(all))
		return nil
	})
	// Output:
	// 3 rows: [ann bob cy]
}

// Rebalance evens out the partitions and keeps the rows' order: after a
// filter left rank 0 with four rows and rank 1 with none, each has two.
func ExampleFrame_Rebalance() {
	ids := [][]int64{{1, 2, 3, 4}, {5, 6}}
	parts := make([]string, 2)
	runLocal(2, func(ctx context.Context, c *collective.Comm) error {
		f, err := newFrame(c, "id", ids[c.Rank()])
		if err != nil {
			return err
		}
		defer f.Release()
		small, err := f.Filter(ctx, frame.Col("id").Le(4))
		if err != nil {
			return err
		}
		defer small.Release()
		even, err := small.Rebalance(ctx)
		if err != nil {
			return err
		}
		defer even.Release()
		parts[c.Rank()] = fmt.Sprintf("rank %d: %d rows %v, then %v", c.Rank(), small.NumRows(), rows(small.Table()), rows(even.Table()))
		return nil
	})
	for _, p := range parts {
		fmt.Println(p)
	}
	// Output:
	// rank 0: 4 rows [1 2 3 4], then [1 2]
	// rank 1: 0 rows [], then [3 4]
}
