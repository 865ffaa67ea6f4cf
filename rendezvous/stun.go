package rendezvous

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v4"
)

// STUN on the rendezvous port: a member (or anyone) may learn its reflexive
// address with a Binding request over TCP (RFC 5389 framing: messages
// back to back on the stream) or UDP.
const (
	stunHeaderSize   = 20
	maxSTUNMessage   = 548 // requests are small; anything larger is not a binding request
	maxSTUNPerStream = 16  // requests answered on one TCP connection
)

// bindingResponse answers a STUN message from src; ok is false if it is not
// a valid Binding request.
func bindingResponse(raw []byte, src netip.AddrPort) ([]byte, bool) {
	req := &stun.Message{Raw: append([]byte(nil), raw...)}
	if err := req.Decode(); err != nil || req.Type != stun.BindingRequest {
		return nil, false
	}
	resp, err := stun.Build(
		stun.NewTransactionIDSetter(req.TransactionID),
		stun.BindingSuccess,
		&stun.XORMappedAddress{IP: src.Addr().AsSlice(), Port: int(src.Port())},
		stun.Fingerprint,
	)
	if err != nil {
		return nil, false
	}
	return resp.Raw, true
}

// serveSTUNTCP answers Binding requests on a TCP connection whose first 8
// bytes (hb) were already read.
func (s *Server) serveSTUNTCP(c net.Conn, hb []byte) {
	src := addrPortOf(c.RemoteAddr())
	buf := make([]byte, stunHeaderSize, maxSTUNMessage)
	copy(buf, hb)
	have := len(hb)
	for i := 0; i < maxSTUNPerStream; i++ {
		if _, err := io.ReadFull(c, buf[have:stunHeaderSize]); err != nil {
			return
		}
		n := stunHeaderSize + int(binary.BigEndian.Uint16(buf[2:4]))
		if !isSTUNHeader(buf) || n > maxSTUNMessage {
			s.met.rejected(CodeMalformed)
			return
		}
		buf = buf[:n]
		if _, err := io.ReadFull(c, buf[stunHeaderSize:]); err != nil {
			return
		}
		resp, ok := bindingResponse(buf, src)
		if !ok {
			s.met.rejected(CodeMalformed)
			return
		}
		s.met.stunTCP.Add(1)
		c.SetWriteDeadline(time.Now().Add(s.cfg.handshakeTimeout))
		if _, err := c.Write(resp); err != nil {
			return
		}
		c.SetReadDeadline(time.Now().Add(s.cfg.handshakeTimeout))
		buf, have = buf[:stunHeaderSize], 0
	}
}

// serveSTUNUDP answers Binding requests on pc until it is closed. Anything
// else is dropped: a datagram socket has no connection to close.
func (s *Server) serveSTUNUDP(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if s.isClosing() || isNetClosed(err) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.cfg.log.Warn("STUN over UDP: read failed; stopping", "err", err)
			return
		}
		if n < stunHeaderSize || !isSTUNHeader(buf[:n]) {
			s.met.rejected(CodeMalformed)
			continue
		}
		resp, ok := bindingResponse(buf[:n], addrPortOf(from))
		if !ok {
			s.met.rejected(CodeMalformed)
			continue
		}
		s.met.stunUDP.Add(1)
		pc.WriteTo(resp, from)
	}
}
