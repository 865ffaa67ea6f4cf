package punch

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/netip"
)

// Identity is what a link handshake proves: that this end holds the job's
// secret, belongs to the job and is the rank it claims.
type Identity struct {
	// Secret is the job's shared secret. Every rank of a job and the
	// rendezvous server hold it; links and join tokens use keys derived from
	// it, never the secret itself. Use at least 32 random bytes.
	Secret []byte
	// Job names the job. Ranks of different jobs never link, even when
	// they share a secret.
	Job string
	// Rank is this end's rank in the job, from 0.
	Rank int
}

// MaxJobLen is the longest job ID accepted, in bytes.
const MaxJobLen = 256

// Validate reports whether id can be used for a handshake.
func (id Identity) Validate() error {
	switch {
	case len(id.Secret) == 0:
		return errors.New("identity: empty secret")
	case id.Job == "":
		return errors.New("identity: empty job ID")
	case len(id.Job) > MaxJobLen:
		return fmt.Errorf("identity: job ID of %d bytes, at most %d", len(id.Job), MaxJobLen)
	}
	return validRank("identity: rank", id.Rank)
}

func validRank(what string, r int) error {
	if r < 0 || r > math.MaxInt32 {
		return fmt.Errorf("%s %d out of range [0, %d]", what, r, math.MaxInt32)
	}
	return nil
}

// Peer is a rank to link with and the endpoints it may be reached at, best
// first: typically its public (reflexive) endpoint and, when both ends may
// share a network, its private one.
type Peer struct {
	Rank      int
	Endpoints []netip.AddrPort
}

// Labels that separate the keys and hashes derived from one secret.
const (
	labelJob   = "fnmesh/job/v1\x00"
	labelLink  = "fnmesh/link/v1\x00"
	labelJoin  = "fnmesh/join/v1\x00"
	labelProof = "fnmesh/proof/v1\x00"
)

// jobHash names a job on the wire without its secret: SHA-256 over a label
// and the job ID. It lets a link to another job be told apart from a link
// with a wrong secret.
func jobHash(job string) [32]byte {
	return sha256.Sum256([]byte(labelJob + job))
}

// deriveKey derives a 32-byte key for purpose label and job from secret with
// HKDF-SHA256 (RFC 5869). It fails only where the FIPS 140-only mode forbids
// a secret shorter than 14 bytes.
func deriveKey(secret []byte, label, job string) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, secret, nil, label+job, 32)
	if err != nil {
		return nil, fmt.Errorf("deriving key: %w", err)
	}
	return k, nil
}

// JoinToken derives the token a worker shows the rendezvous server to join
// job: 32 bytes, HKDF-SHA256 of secret with a label and the job ID. The
// server, which holds the secret, derives the same token to check it. The
// token is specific to the job and does not reveal the secret or the keys
// that authenticate links (they are derived under other labels), so a server
// log or a captured join does not let anyone pass a link handshake.
//
// A token is a bearer credential: send it only where the rendezvous protocol
// protects it against replay (e.g. as the key of a MAC over a server
// challenge). It fails only for an empty secret or where the FIPS 140-only
// mode forbids a secret shorter than 14 bytes.
func JoinToken(secret []byte, job string) ([]byte, error) {
	if len(secret) == 0 {
		return nil, errors.New("join token: empty secret")
	}
	return deriveKey(secret, labelJoin, job)
}

// linkKey is the HMAC key of the link handshakes of one job.
func linkKey(secret []byte, job string) ([]byte, error) {
	return deriveKey(secret, labelLink, job)
}
