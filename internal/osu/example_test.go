package osu_test

import (
	"fmt"
	"os"

	"github.com/fnmesh/fnmesh/internal/osu"
)

func ExampleCompare() {
	ours := []osu.Result{
		{Op: "allreduce", Ranks: 2, Size: 1 << 20, AvgUs: 400},
		{Op: "latency", Ranks: 2, Size: 8, AvgUs: 15},
	}
	openmpi := []osu.Result{
		{Op: "allreduce", Ranks: 2, Size: 1 << 20, AvgUs: 500},
		{Op: "latency", Ranks: 2, Size: 8, AvgUs: 6},
	}
	ratios := osu.Compare(ours, openmpi)
	_ = osu.WriteRatios(os.Stdout, "fnmesh", "openmpi", ratios)
	fmt.Println()
	_ = osu.WriteVerdicts(os.Stdout, osu.DefaultTargets().Check(ratios, ours, 0))
	// Output:
	// op         np  size  fnmesh us  openmpi us  ratio
	// allreduce   2    1M     400.00      500.00  0.800
	//
	// latency     2     8      15.00        6.00  2.500  slower
	//
	// MET     np=2  allreduce >= 1M: ratio <= 1.00  worst 0.800 at 1M over 1 sizes
	// BEHIND  np=2  latency 8 B: ratio <= 2.00      15.00 us vs 6.00 us: 2.500
}
