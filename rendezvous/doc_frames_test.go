package rendezvous

import (
	"encoding/hex"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocExampleFrames reads the example frames of docs/rendezvous.md and
// checks each against the codec both ways: the doc's bytes decode to the
// message its label names, and that message encodes to the doc's bytes. A
// protocol change that leaves the doc's examples behind (the version byte,
// a field added to a payload) fails here.
func TestDocExampleFrames(t *testing.T) {
	want := map[string]message{
		"hello":                      hello{},
		"ping seq=0x01020304, 12":    ping{Seq: 0x01020304, Joined: 12},
		"report peer=5, public":      report{Peer: 5, Outcome: outcomePublic},
		"verdict peer=1, punched":    verdict{Peer: 1, Tier: TierPunched},
		"error member-left, no rank": errorMsg{Code: CodeMemberLeft, Rank: -1, Msg: "x"},
		"peers, one member": peers{Members: []peerEntry{{Observed: netip.MustParseAddrPort("203.0.113.1:258"),
			Private: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:1")}}}},
	}

	doc, err := os.ReadFile("../docs/rendezvous.md")
	require.NoError(t, err)
	_, block, ok := strings.Cut(string(doc), "Example frames:\n\n```\n")
	require.True(t, ok, "docs/rendezvous.md has no example frames block")
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok, "the example frames block does not end")

	// a label, then the frame's bytes in hex from its magic on
	line := regexp.MustCompile(`^(\S.*?)\s+(46 4D(?:\s+[0-9A-F]{2})*)\b`)
	seen := map[string]bool{}
	for _, l := range strings.Split(block, "\n") {
		sub := line.FindStringSubmatch(l)
		if sub == nil {
			continue
		}
		label := sub[1]
		t.Run(label, func(t *testing.T) {
			frame, err := hex.DecodeString(strings.Join(strings.Fields(sub[2]), ""))
			require.NoError(t, err)
			m, ok := want[label]
			require.True(t, ok, "the doc shows a frame the test does not know: %q", label)
			seen[label] = true
			require.Greater(t, len(frame), 2)
			assert.Equal(t, byte(ProtoVersion), frame[2], "the version byte")
			got, err := decodeFrame(frame, MaxPayload)
			require.NoError(t, err)
			assert.Equal(t, m, got)
			assert.Equal(t, frame, encodeFrame(m))
		})
	}
	for label := range want {
		assert.True(t, seen[label], "the doc no longer shows %q", label)
	}
}
