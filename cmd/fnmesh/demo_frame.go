package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fnmesh/fnmesh/collective"
	"github.com/fnmesh/fnmesh/frame"
)

// The data-frame step: each worker holds a share of two generated tables,
// customers (id, name, region) and orders (id, customer, quantity, amount),
// as each would after reading its own files. Together they join the orders
// with their customers, total them by region, sort the totals and gather
// them on rank 0, which prints them; the step then checks them against an
// oracle computed with plain Go maps from the generated rows, and shows
// where the time went, phase by phase.

// demoRegions are the customers' regions, with how many customers of a
// hundred live in each: a skewed key.
var demoRegions = []struct {
	name   string
	weight int
}{
	{"eu-west", 30}, {"us-east", 25}, {"us-west", 15}, {"eu-north", 10},
	{"ap-south", 8}, {"ap-northeast", 6}, {"sa-east", 4}, {"af-south", 2},
}

// demoCustomer and demoOrder are the generated rows.
type demoCustomer struct {
	id     int64
	name   string
	region string
}

type demoOrder struct {
	id       int64
	customer int64 // 0: a guest checkout, null in the table
	quantity int64
	amount   float64
}

// regionTotal is one row of the result.
type regionTotal struct {
	region   string
	orders   int64
	items    int64
	revenue  float64
	avgOrder float64
}

// framePhase is one phase of the job: its slowest rank's time, and rows
// and bytes summed over the ranks.
type framePhase struct {
	Op, Name string
	Took     time.Duration
	Rows     int64
	Bytes    int64
}

// frameResult is what the step found.
type frameResult struct {
	Customers, Orders int64 // input rows over all ranks
	Joined            int64 // rows the join produced over all ranks
	Totals            []regionTotal
	Phases            []framePhase
	OpTimes           []framePhase // per operator: the slowest rank's wall time
	Took              time.Duration
	Err               string // empty when the result matched the oracle
}

// demoData generates every rank's customers and orders from the seed:
// customers split in contiguous ranges, orders per rank with skewed
// customer ids (a few customers order far more than most), 1% guest
// checkouts (null customer) and 1% unknown customers, which the inner join
// drops.
func demoData(p, customers, orders int, seed uint64) (cust [][]demoCustomer, ord [][]demoOrder) {
	rng := rand.New(rand.NewPCG(seed, 0xc057))
	var cdf []int
	total := 0
	for _, r := range demoRegions {
		total += r.weight
		cdf = append(cdf, total)
	}
	cust = make([][]demoCustomer, p)
	for id := 1; id <= customers; id++ {
		x := rng.IntN(total)
		reg := 0
		for cdf[reg] <= x {
			reg++
		}
		r := (id - 1) * p / customers
		cust[r] = append(cust[r], demoCustomer{id: int64(id), name: fmt.Sprintf("customer-%05d", id), region: demoRegions[reg].name})
	}
	ids := uint64(customers + max(customers/100, 1)) // the last 1% are no customers
	ord = make([][]demoOrder, p)
	for r := range ord {
		rng := rand.New(rand.NewPCG(seed, uint64(r)+1))
		zipf := rand.NewZipf(rng, 1.2, 8, ids-1)
		ord[r] = make([]demoOrder, orders)
		for i := range ord[r] {
			o := demoOrder{id: int64(r*orders + i + 1), quantity: 1 + rng.Int64N(10)}
			if rng.IntN(100) > 0 {
				// Spread the hot customers over the id range (7919 is prime).
				o.customer = int64(zipf.Uint64()*7919%ids) + 1
			}
			o.amount = float64(o.quantity*(99+rng.Int64N(20000))) / 100
			ord[r][i] = o
		}
	}
	return cust, ord
}

// frameOracle computes the result with Go maps: the orders of known
// customers, totalled per region, by revenue from the largest.
func frameOracle(cust [][]demoCustomer, ord [][]demoOrder) (joined int64, totals []regionTotal) {
	region := map[int64]string{}
	for _, part := range cust {
		for _, c := range part {
			region[c.id] = c.region
		}
	}
	by := map[string]*regionTotal{}
	for _, part := range ord {
		for _, o := range part {
			reg, ok := region[o.customer]
			if o.customer == 0 || !ok {
				continue
			}
			joined++
			t := by[reg]
			if t == nil {
				t = &regionTotal{region: reg}
				by[reg] = t
			}
			t.orders++
			t.items += o.quantity
			t.revenue += o.amount
		}
	}
	for _, t := range by {
		t.avgOrder = t.revenue / float64(t.orders)
		totals = append(totals, *t)
	}
	slices.SortFunc(totals, func(a, b regionTotal) int {
		switch {
		case a.revenue > b.revenue:
			return -1
		case a.revenue < b.revenue:
			return 1
		}
		return 0
	})
	return joined, totals
}

var (
	customerSchema = arrow.NewSchema([]arrow.Field{
		{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String},
		{Name: "region", Type: arrow.BinaryTypes.String},
	}, nil)
	orderSchema = arrow.NewSchema([]arrow.Field{
		{Name: "order_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "quantity", Type: arrow.PrimitiveTypes.Int64},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
)

// customerTable and orderTable build a rank's share as an Arrow table.
func customerTable(rows []demoCustomer) arrow.Table {
	b := array.NewRecordBuilder(memory.DefaultAllocator, customerSchema)
	defer b.Release()
	for _, c := range rows {
		b.Field(0).(*array.Int64Builder).Append(c.id)
		b.Field(1).(*array.StringBuilder).Append(c.name)
		b.Field(2).(*array.StringBuilder).Append(c.region)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(customerSchema, []arrow.RecordBatch{rec})
}

func orderTable(rows []demoOrder) arrow.Table {
	b := array.NewRecordBuilder(memory.DefaultAllocator, orderSchema)
	defer b.Release()
	for _, o := range rows {
		b.Field(0).(*array.Int64Builder).Append(o.id)
		if o.customer == 0 {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.Int64Builder).Append(o.customer)
		}
		b.Field(2).(*array.Int64Builder).Append(o.quantity)
		b.Field(3).(*array.Float64Builder).Append(o.amount)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(orderSchema, []arrow.RecordBatch{rec})
}

// frameRank is what one rank did.
type frameRank struct {
	joined  int64
	opTimes []framePhase // name and wall time of each operator
	phases  []frame.Phase
	result  arrow.Table // rank 0 only
	err     error
}

// frameJob is the job every rank runs: join, group-by, sort, gather.
func frameJob(ctx context.Context, c *collective.Comm, cust []demoCustomer, ord []demoOrder) (out frameRank) {
	prof := &frame.Profile{}
	defer func() { out.phases = prof.Phases() }()
	timed := func(op string, fn func() error) error {
		start := time.Now()
		err := fn()
		out.opTimes = append(out.opTimes, framePhase{Op: op, Took: time.Since(start)})
		return err
	}
	ct, ot := customerTable(cust), orderTable(ord)
	defer ct.Release()
	defer ot.Release()
	customers, err := frame.New(c, ct, frame.WithProfile(prof))
	if err != nil {
		return frameRank{err: err}
	}
	defer customers.Release()
	orders, err := frame.New(c, ot, frame.WithProfile(prof))
	if err != nil {
		return frameRank{err: err}
	}
	defer orders.Release()

	var joined, totals, sorted *frame.Frame
	defer func() {
		for _, f := range []*frame.Frame{joined, totals, sorted} {
			if f != nil {
				f.Release()
			}
		}
	}()
	steps := []struct {
		op string
		fn func() error
	}{
		{"join", func() (err error) {
			joined, err = orders.Join(ctx, customers, frame.Inner, frame.On("customer_id"))
			return err
		}},
		{"groupby", func() (err error) {
			totals, err = joined.GroupBy("region").Agg(ctx,
				frame.CountRows().As("orders"), frame.Sum("quantity").As("items"),
				frame.Sum("amount").As("revenue"), frame.Mean("amount").As("avg_order"))
			return err
		}},
		{"sort", func() (err error) {
			sorted, err = totals.Sort(ctx, frame.Desc("revenue"))
			return err
		}},
		{"gather", func() (err error) {
			out.result, err = sorted.Gather(ctx, 0)
			return err
		}},
	}
	for _, s := range steps {
		if err := timed(s.op, s.fn); err != nil {
			out.err = err
			return out
		}
	}
	out.joined = joined.NumRows()
	return out
}

// demoFrame runs the job on every worker, prints the result gathered on
// rank 0 and where the time went, and checks the result against the
// oracle.
func demoFrame(ctx context.Context, env *demoEnv) error {
	comms, err := env.communicators()
	if err != nil {
		fmt.Fprintf(env.out, "\ndata frames: no communicator: %v\n", err)
		return err
	}
	p := len(comms)
	cust, ord := demoData(p, env.cfg.customers, env.cfg.orders, env.cfg.seed)
	fmt.Fprintf(env.out, "\ndata frames over the mesh: %d customers in %d regions and %d orders (%d per worker; skewed, 1%% without\n"+
		"a customer) spread over the workers; join on customer_id, group by region, sort by revenue, gather on rank 0\n\n",
		env.cfg.customers, len(demoRegions), p*env.cfg.orders, env.cfg.orders)

	ranks := make([]frameRank, p)
	began := time.Now()
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() { ranks[r] = frameJob(ctx, c, cust[r], ord[r]) })
	}
	wg.Wait()
	res := &frameResult{Customers: int64(env.cfg.customers), Orders: int64(p * env.cfg.orders), Took: time.Since(began)}
	if ranks[0].result != nil {
		defer ranks[0].result.Release()
	}
	for _, rk := range ranks {
		if rk.err != nil {
			res.Err = rk.err.Error() // frame's errors name the rank
			fmt.Fprintf(env.out, "the job FAILED: %s\n", res.Err)
			return fmt.Errorf("the job failed: %s", res.Err)
		}
		res.Joined += rk.joined
	}
	res.Phases, res.OpTimes = framePhases(ranks)

	totals, err := readTotals(ranks[0].result)
	if err != nil {
		res.Err = fmt.Sprintf("rank 0's result: %v", err)
	} else {
		res.Totals = totals
		joined, want := frameOracle(cust, ord)
		if err := checkTotals(totals, want); err != nil {
			res.Err = err.Error()
		} else if res.Joined != joined {
			res.Err = fmt.Sprintf("the join made %d rows, want %d", res.Joined, joined)
		}
	}
	printFrameResult(env, res)
	if res.Err != "" {
		return fmt.Errorf("result differs from the oracle: %s", res.Err)
	}
	return nil
}

// framePhases sums each rank's phases by (operator, phase), in the order
// they first ran, and combines the ranks: the slowest rank's time, and the
// rows and bytes of all.
func framePhases(ranks []frameRank) (phases, ops []framePhase) {
	type key struct{ op, name string }
	var order []key
	took := map[key][]time.Duration{} // per rank
	sums := map[key]*framePhase{}
	for r, rk := range ranks {
		for _, ph := range rk.phases {
			k := key{ph.Op, ph.Name}
			if sums[k] == nil {
				order = append(order, k)
				sums[k] = &framePhase{Op: ph.Op, Name: ph.Name}
				took[k] = make([]time.Duration, len(ranks))
			}
			took[k][r] += ph.Duration
			sums[k].Rows += ph.Rows
			sums[k].Bytes += ph.Bytes
		}
	}
	for _, k := range order {
		ph := *sums[k]
		ph.Took = slices.Max(took[k])
		phases = append(phases, ph)
	}
	for i, op := range ranks[0].opTimes {
		o := framePhase{Op: op.Op}
		for _, rk := range ranks {
			if i < len(rk.opTimes) {
				o.Took = max(o.Took, rk.opTimes[i].Took)
			}
		}
		ops = append(ops, o)
	}
	return phases, ops
}

// readTotals reads the gathered result table.
func readTotals(t arrow.Table) ([]regionTotal, error) {
	if t == nil {
		return nil, fmt.Errorf("no table")
	}
	want := []string{"region", "orders", "items", "revenue", "avg_order"}
	var got []string
	for _, f := range t.Schema().Fields() {
		got = append(got, f.Name)
	}
	if !slices.Equal(got, want) {
		return nil, fmt.Errorf("columns %v, want %v", got, want)
	}
	tr := array.NewTableReader(t, -1)
	defer tr.Release()
	var out []regionTotal
	for tr.Next() {
		rec := tr.RecordBatch()
		reg, ok1 := rec.Column(0).(*array.String)
		orders, ok2 := rec.Column(1).(*array.Int64)
		items, ok3 := rec.Column(2).(*array.Int64)
		rev, ok4 := rec.Column(3).(*array.Float64)
		avg, ok5 := rec.Column(4).(*array.Float64)
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
			return nil, fmt.Errorf("column types %v", rec.Schema())
		}
		for i := range int(rec.NumRows()) {
			for _, c := range rec.Columns() {
				if c.IsNull(i) {
					return nil, fmt.Errorf("row %d has a null", len(out))
				}
			}
			out = append(out, regionTotal{region: strings.Clone(reg.Value(i)), orders: orders.Value(i), items: items.Value(i),
				revenue: rev.Value(i), avgOrder: avg.Value(i)})
		}
	}
	return out, tr.Err()
}

// checkTotals compares the result with the oracle's, row by row and in
// order: counts exactly, sums of amounts to 1e-9 (they were added up in a
// different order).
func checkTotals(got, want []regionTotal) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d rows, want %d", len(got), len(want))
	}
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }
	for i, g := range got {
		w := want[i]
		if g.region != w.region || g.orders != w.orders || g.items != w.items ||
			!close(g.revenue, w.revenue) || !close(g.avgOrder, w.avgOrder) {
			return fmt.Errorf("row %d is %+v, want %+v", i, g, w)
		}
	}
	return nil
}

// printFrameResult writes the result table, the phases and the verdict.
func printFrameResult(env *demoEnv, res *frameResult) {
	w := len("region")
	for _, t := range res.Totals {
		w = max(w, len(t.region))
	}
	fmt.Fprintf(env.out, "%-*s  %8s  %8s  %14s  %9s\n", w, "region", "orders", "items", "revenue", "avg order")
	for _, t := range res.Totals {
		fmt.Fprintf(env.out, "%-*s  %8d  %8d  %14.2f  %9.2f\n", w, t.region, t.orders, t.items, t.revenue, t.avgOrder)
	}

	fmt.Fprintf(env.out, "\nwhere the time went (time: the slowest rank; rows and bytes sent: all ranks)\n\n")
	tw := tabwriter.NewWriter(env.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "operator\tphase\ttime\trows\tsent")
	prev := ""
	for _, ph := range res.Phases {
		op := ph.Op
		if op == prev {
			op = ""
		}
		prev = ph.Op
		sent := "-" // a local phase
		if ph.Bytes > 0 {
			sent = humanBytes(ph.Bytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", op, ph.Name, humanDuration(ph.Took), ph.Rows, sent)
	}
	tw.Flush()

	var parts string
	for i, o := range res.OpTimes {
		if i > 0 {
			parts += ", "
		}
		parts += o.Op + " " + humanDuration(o.Took)
	}
	verdict := "matches the oracle (Go maps over the generated rows)"
	if res.Err != "" {
		verdict = "DIFFERS from the oracle: " + res.Err
	}
	fmt.Fprintf(env.out, "\n%s; %s in all. %d orders joined to %d rows: the result %s\n",
		parts, humanDuration(res.Took), res.Orders, res.Joined, verdict)
}
