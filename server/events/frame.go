package events

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/provisionhq/provision/models"
)

// maxFrameHeader is the longest header of an unmasked server frame
// (RFC 6455 §5.2: 2 bytes plus an 8-byte extended payload length).
const maxFrameHeader = 10

// opText is the websocket opcode of a text frame (RFC 6455 §5.2).
const opText = 0x1

// encodeFrame returns e as one complete websocket frame ready to be
// written as is to any number of connections: FIN set, text opcode, no
// extension bits, unmasked (server to client), payload the event's JSON
// exactly as json.Marshal encodes it. This is byte for byte the frame
// coder/websocket's Conn.Write sends for the same payload when compression
// is off (it is never negotiated by this handler), so DRP clients see
// exactly one text message per event as before.
func encodeFrame(e *models.Event) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(maxFrameHeader + 512)
	buf.Write(make([]byte, maxFrameHeader)) // room for the header
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("encode event %s.%s.%s: %w", e.Type, e.Action, e.Key, err)
	}
	b := buf.Bytes()
	b = b[:len(b)-1] // Encode appends '\n'; json.Marshal does not
	n := len(b) - maxFrameHeader
	var hdr [maxFrameHeader]byte
	hdr[0] = 0x80 | opText // FIN + opcode
	h := 2
	switch {
	case n <= 125:
		hdr[1] = byte(n)
	case n <= 0xffff:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
		h = 4
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
		h = 10
	}
	start := maxFrameHeader - h
	copy(b[start:], hdr[:h])
	return b[start:], nil
}
