package rendezvous

import "fmt"

// Code classifies an error the server (or a client) sends before closing a
// connection. The values are part of the wire format.
type Code uint16

const (
	CodeMalformed  Code = 1  // a frame or payload that does not decode
	CodeVersion    Code = 2  // a protocol version this side does not speak
	CodeTooLarge   Code = 3  // a frame over the size limit
	CodeAuth       Code = 4  // a MAC that does not verify: wrong secret, or a forged message
	CodeReplay     Code = 5  // a challenge that is stale, or a relay ticket that is not valid now (unknown, used, or its job not setting up links)
	CodeBadRequest Code = 6  // valid frame, invalid request: rank taken or out of range, world mismatch, unexpected message
	CodeMemberLeft Code = 7  // a member of the job disconnected; Rank names it
	CodeTimeout    Code = 8  // the job did not complete (or finish its links) in time
	CodeShutdown   Code = 9  // the server is shutting down
	CodeOverloaded Code = 10 // the server is at its connection limit
	CodeRelay      Code = 11 // a relay with a valid ticket could not be set up: the partner never came, gave up or is unreachable
)

var codeNames = map[Code]string{
	CodeMalformed: "malformed", CodeVersion: "version", CodeTooLarge: "too-large", CodeAuth: "auth",
	CodeReplay: "replay", CodeBadRequest: "bad-request", CodeMemberLeft: "member-left",
	CodeTimeout: "timeout", CodeShutdown: "shutdown", CodeOverloaded: "overloaded",
	CodeRelay: "relay",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code-%d", uint16(c))
}

// Error is an error sent over the protocol: by the server to a client (Join
// returns it, wrapped) or found while decoding a frame. Rank is the rank the
// error is about (the member that left, the rank that was taken), or -1.
type Error struct {
	Code Code
	Rank int
	Msg  string
}

// Error reads "code: message"; Join's own prefix ("rendezvous: join job
// ...") says where it came from.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Msg)
}

// Is makes errors.Is(err, &Error{Code: c}) match any *Error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Msg == "" || t.Msg == e.Msg)
}

// ErrMemberLeft matches (with errors.Is) the error Join returns when another
// member of the job disconnects before the mesh is complete; errors.As to
// *Error gives the rank.
var ErrMemberLeft error = &Error{Code: CodeMemberLeft}

// ErrJobTimeout matches the error Join returns when the job did not
// complete within the server's job timeout.
var ErrJobTimeout error = &Error{Code: CodeTimeout}
