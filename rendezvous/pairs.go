package rendezvous

// pairTable is a punching job's per-pair state: one byte for every
// unordered pair of ranks {a, b}, a < b, stored as a triangle of
// n(n-1)/2 bytes (8 MiB for a 4096-rank job). Each byte holds
//
//	bits 0-1  the lower rank's report about the higher: 0 none, else 1+outcome
//	bits 2-3  the higher rank's report about the lower: the same
//	bits 4-5  the pair's tier: 0 undecided, else the Tier (1..3)
//
// Outcomes (0..2) and tiers (1..3) fit in two bits each.
type pairTable struct {
	n int
	b []uint8
}

const (
	pairReportBits = 2
	pairFieldMask  = 1<<pairReportBits - 1
	pairTierShift  = 2 * pairReportBits
)

func newPairTable(n int) pairTable {
	return pairTable{n: n, b: make([]uint8, n*(n-1)/2)}
}

// index is the position of the pair {a, b} (a != b, both in [0, n)).
func (t pairTable) index(a, b int) int {
	lo, hi := min(a, b), max(a, b)
	return lo*(2*t.n-lo-1)/2 + hi - lo - 1
}

// reportShift is where from's report about the pair {from, about} lives.
func reportShift(from, about int) uint {
	if from < about {
		return 0
	}
	return pairReportBits
}

// report returns from's report about about: 0 if none yet, else 1+outcome.
func (t pairTable) report(from, about int) uint8 {
	return t.b[t.index(from, about)] >> reportShift(from, about) & pairFieldMask
}

// setReport records from's report about about; v is 1+outcome.
func (t pairTable) setReport(from, about int, v uint8) {
	i, sh := t.index(from, about), reportShift(from, about)
	t.b[i] = t.b[i]&^(pairFieldMask<<sh) | (v&pairFieldMask)<<sh
}

// tier returns the pair's decided tier, 0 if undecided.
func (t pairTable) tier(a, b int) Tier {
	return Tier(t.b[t.index(a, b)] >> pairTierShift & pairFieldMask)
}

// setTier decides the pair's tier (TierDirect, TierPunched or TierRelay).
func (t pairTable) setTier(a, b int, tier Tier) {
	i := t.index(a, b)
	t.b[i] = t.b[i]&^(pairFieldMask<<pairTierShift) | (uint8(tier)&pairFieldMask)<<pairTierShift
}
