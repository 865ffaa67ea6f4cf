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

// Labels that separate the keys and tags derived from one secret.
const (
	labelDeployment = "fnmesh/deployment/v2\x00"
	labelJobTag     = "fnmesh/job/v2\x00"
	labelLink       = "fnmesh/link/v1\x00"
	labelJoin       = "fnmesh/join/v1\x00"
	labelProof      = "fnmesh/proof/v1\x00"
)

// tagLen is the length of each of the two tags of a hello.
const tagLen = 16

// helloTags are the two tags by which a hello names its sender's deployment
// and job without revealing either to whoever lacks the secret: the
// deployment tag is HKDF-SHA256(secret, label), the same for every job of a
// deployment, and the job tag is HKDF-SHA256(secret, label | job ID), 16
// bytes each. Both depend on the secret, so a stranger who connects to a
// punch port (and gets its hello back) cannot test guesses of the job ID
// against the job tag, as it could against an unkeyed hash. Between holders
// of the secret they still tell another job (job tags differ) apart from
// another secret (deployment tags differ).
func helloTags(secret []byte, job string) (deployment, jobTag [tagLen]byte, err error) {
	d, err := deriveKey(secret, labelDeployment, "", tagLen)
	if err != nil {
		return deployment, jobTag, err
	}
	j, err := deriveKey(secret, labelJobTag, job, tagLen)
	if err != nil {
		return deployment, jobTag, err
	}
	copy(deployment[:], d)
	copy(jobTag[:], j)
	return deployment, jobTag, nil
}

// deriveKey derives an n-byte key for purpose label and job from secret
// with HKDF-SHA256 (RFC 5869). It fails only where the FIPS 140-only mode
// forbids a secret shorter than 14 bytes.
func deriveKey(secret []byte, label, job string, n int) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, secret, nil, label+job, n)
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
	return deriveKey(secret, labelJoin, job, 32)
}

// linkKey is the HMAC key of the link handshakes of one job.
func linkKey(secret []byte, job string) ([]byte, error) {
	return deriveKey(secret, labelLink, job, 32)
}
