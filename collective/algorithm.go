package collective

import "fmt"

// Algorithm names one algorithm of one collective. The zero value, Auto,
// lets the communicator choose by message size and rank count (see Tuning).
type Algorithm uint8

// The algorithms. Each belongs to one collective; docs/collectives.md gives
// their costs and when Auto picks them.
const (
	Auto Algorithm = iota

	BarrierDissemination // ceil(lg p) rounds of zero-byte messages

	BcastBinomial         // binomial tree
	BcastScatterAllgather // binomial scatter, then ring allgather (van de Geijn)

	GatherBinomial // binomial tree
	GatherLinear   // every rank sends to the root

	ScatterBinomial // binomial tree
	ScatterLinear   // the root sends to every rank

	AllgatherRing              // p-1 steps around a ring
	AllgatherRecursiveDoubling // lg p exchanges; extra ranks folded in when p is not a power of two
	AllgatherBruck             // ceil(lg p) rounds for any p

	AlltoallBruck     // ceil(lg p) rounds of packed blocks; small blocks
	AlltoallScattered // receives and sends posted in batches of Tuning.AlltoallBatch peers, staggered
	AlltoallPairwise  // p-1 steps, one peer at a time

	AlltoallvScattered // as AlltoallScattered
	AlltoallvPairwise  // as AlltoallPairwise

	ReduceBinomial      // binomial tree
	ReduceScatterGather // recursive-halving reduce-scatter, then gather to the root (Rabenseifner)

	AllreduceRecursiveDoubling // lg p exchanges of the whole vector
	AllreduceRabenseifner      // recursive-halving reduce-scatter + recursive-doubling allgather
	AllreduceRing              // ring reduce-scatter + ring allgather, pipelined in chunks

	ReduceScatterRecursiveHalving // lg p exchanges of halving size
	ReduceScatterPairwise         // p-1 steps, one peer at a time
	ReduceScatterRing             // p-1 steps around a ring, pipelined in chunks

	numAlgorithms
)

// Collective identifies a collective operation, for Tuning.Force.
type Collective uint8

// The collectives that have a choice of algorithm.
const (
	OpBarrier Collective = iota
	OpBcast
	OpGather
	OpScatter
	OpAllgather
	OpAlltoall
	OpAlltoallv
	OpReduce
	OpAllreduce
	OpReduceScatter
	numCollectives
)

var collectiveNames = [numCollectives]string{
	"barrier", "bcast", "gather", "scatter", "allgather", "alltoall", "alltoallv", "reduce", "allreduce", "reduce-scatter",
}

// String returns the collective's name, e.g. "allreduce" or
// "reduce-scatter" (the names Algorithm.String uses before the slash).
func (o Collective) String() string {
	if o < numCollectives {
		return collectiveNames[o]
	}
	return fmt.Sprintf("Collective(%d)", uint8(o))
}

var algorithmInfo = [numAlgorithms]struct {
	name string
	op   Collective
}{
	Auto:                          {"auto", numCollectives},
	BarrierDissemination:          {"dissemination", OpBarrier},
	BcastBinomial:                 {"binomial", OpBcast},
	BcastScatterAllgather:         {"scatter-allgather", OpBcast},
	GatherBinomial:                {"binomial", OpGather},
	GatherLinear:                  {"linear", OpGather},
	ScatterBinomial:               {"binomial", OpScatter},
	ScatterLinear:                 {"linear", OpScatter},
	AllgatherRing:                 {"ring", OpAllgather},
	AllgatherRecursiveDoubling:    {"recursive-doubling", OpAllgather},
	AllgatherBruck:                {"bruck", OpAllgather},
	AlltoallBruck:                 {"bruck", OpAlltoall},
	AlltoallScattered:             {"scattered", OpAlltoall},
	AlltoallPairwise:              {"pairwise", OpAlltoall},
	AlltoallvScattered:            {"scattered", OpAlltoallv},
	AlltoallvPairwise:             {"pairwise", OpAlltoallv},
	ReduceBinomial:                {"binomial", OpReduce},
	ReduceScatterGather:           {"reduce-scatter-gather", OpReduce},
	AllreduceRecursiveDoubling:    {"recursive-doubling", OpAllreduce},
	AllreduceRabenseifner:         {"rabenseifner", OpAllreduce},
	AllreduceRing:                 {"ring", OpAllreduce},
	ReduceScatterRecursiveHalving: {"recursive-halving", OpReduceScatter},
	ReduceScatterPairwise:         {"pairwise", OpReduceScatter},
	ReduceScatterRing:             {"ring", OpReduceScatter},
}

// String returns the algorithm's name, e.g. "allreduce/ring".
func (a Algorithm) String() string {
	if a == Auto {
		return "auto"
	}
	if a < numAlgorithms {
		return algorithmInfo[a].op.String() + "/" + algorithmInfo[a].name
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

// Collective returns the collective a belongs to (false for Auto and
// unknown values).
func (a Algorithm) Collective() (Collective, bool) {
	if a == Auto || a >= numAlgorithms {
		return 0, false
	}
	return algorithmInfo[a].op, true
}

// Algorithms returns every algorithm of op, in declaration order.
func Algorithms(op Collective) []Algorithm {
	var out []Algorithm
	for a := Algorithm(1); a < numAlgorithms; a++ {
		if algorithmInfo[a].op == op {
			out = append(out, a)
		}
	}
	return out
}
