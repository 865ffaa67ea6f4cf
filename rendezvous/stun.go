package rendezvous

import (
	"bytes"
	"errors"
	"io"
	"net"
	"time"

	"github.com/fnmesh/fnmesh/punch"
)

// STUN on the rendezvous port: anyone may learn its reflexive address with a
// Binding request over TCP (RFC 5389 framing: messages back to back on the
// stream) or UDP. punch encodes the answers; the server counts them.

// maxSTUNPerStream bounds the requests answered on one TCP connection.
const maxSTUNPerStream = 16

// serveSTUNTCP answers Binding requests on a TCP connection whose first 8
// bytes (hb) were already read. The whole connection, every request on it,
// gets one handshake timeout: a client without the secret must not hold a
// connection longer by trickling requests.
func (s *Server) serveSTUNTCP(c net.Conn, hb []byte) {
	src := addrPortOf(c.RemoteAddr())
	s.setDeadline(c.SetDeadline, time.Now().Add(s.cfg.handshakeTimeout))
	if !s.setPhase(c, phaseIdle) {
		return // shutting down
	}
	r := io.MultiReader(bytes.NewReader(append([]byte(nil), hb...)), c)
	for i := 0; i < maxSTUNPerStream; i++ {
		req, err := punch.ReadSTUNMessage(r)
		if err != nil {
			// A client that closes the connection between requests or
			// resets it (Join's discovery resets it once answered, to
			// free its punch port's 4-tuple), or that stays silent, sent
			// nothing malformed.
			if !errors.Is(err, io.EOF) && !connReset(err) && !isTimeout(err) {
				s.met.rejected(CodeMalformed)
			}
			return
		}
		resp, err := punch.STUNResponse(req, src)
		if err != nil {
			s.met.rejected(CodeMalformed)
			return
		}
		s.met.stunTCP.Add(1)
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// serveSTUNUDP answers Binding requests on pc until it is closed. Anything
// else is dropped: a datagram socket has no connection to close.
func (s *Server) serveSTUNUDP(pc net.PacketConn) {
	buf := make([]byte, punch.MaxSTUNMessage)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if !s.isClosing() && !isNetClosed(err) {
				s.cfg.log.Warn("STUN over UDP: read failed; stopping", "err", err)
			}
			return
		}
		resp, err := punch.STUNResponse(buf[:n], addrPortOf(from))
		if err != nil {
			s.met.rejected(CodeMalformed)
			continue
		}
		s.met.stunUDP.Add(1)
		pc.WriteTo(resp, from)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
