package rendezvous

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"

	"github.com/fnmesh/fnmesh/punch"
)

// Keys and MACs (see "Security model" in docs/rendezvous.md). The secret
// itself never crosses the wire: each job has its own key, the join token
// punch.JoinToken derives from it (HKDF-SHA256 under a label of its own, so
// it does not open link handshakes), and every MAC is HMAC-SHA256 under that
// key with a label that binds it to one message type, so no MAC can be
// replayed as another.
const (
	labelJoin   = "fnmesh/2 join\x00" // the protocol version, as in the frame header
	labelJoined = "fnmesh/2 joined\x00"
	labelRelay  = "fnmesh/2 relay\x00"
)

// jobKey derives a job's key from the deployment secret.
func jobKey(secret []byte, job string) ([]byte, error) {
	return punch.JoinToken(secret, job)
}

func mac(key []byte, label string, parts ...[]byte) (out [macSize]byte) {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	for _, p := range parts {
		m.Write(p)
	}
	m.Sum(out[:0])
	return out
}

// signJoin sets j.MAC for the job key.
func signJoin(key []byte, j *join) { j.MAC = mac(key, labelJoin, j.signedPart(nil)) }

func verifyJoin(key []byte, j *join) bool {
	want := mac(key, labelJoin, j.signedPart(nil))
	return hmac.Equal(want[:], j.MAC[:])
}

// joinedMAC is the server's proof that it holds the secret: a MAC over both
// nonces of the connection, the world size and the members joined.
func joinedMAC(key []byte, clientNonce, serverNonce [nonceSize]byte, world, joined int) [macSize]byte {
	return mac(key, labelJoined, clientNonce[:], serverNonce[:],
		binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(world)), uint32(joined)))
}

func signRelay(key []byte, r *relayHello) { r.MAC = mac(key, labelRelay, r.signedPart(nil)) }

func verifyRelay(key []byte, r *relayHello) bool {
	want := mac(key, labelRelay, r.signedPart(nil))
	return hmac.Equal(want[:], r.MAC[:])
}

func newNonce() (n [nonceSize]byte) {
	rand.Read(n[:]) // never fails (crypto/rand since Go 1.24)
	return n
}
