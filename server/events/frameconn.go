package events

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// frameConn is a hijacked websocket connection shared by two writers:
// coder/websocket, which writes its control frames (pong, close) through
// it, and the connection's event writer, which writes batches of
// complete, pre-encoded event frames with writeFrames. One mutex
// serialises both, and each of the library's frames reaches Write in one
// call (its 4 KiB buffer holds any control frame), so frames never
// interleave.
type frameConn struct {
	net.Conn
	mu sync.Mutex
}

// Write is the library's path to the connection.
func (c *frameConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Write(p)
}

// writeFrames writes complete frames in one write under one deadline,
// timeout from now. The deadline is cleared afterwards so it cannot cut
// short a later control frame, which the library bounds itself.
func (c *frameConn) writeFrames(frames []byte, timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.Conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := c.Conn.Write(frames); err != nil {
		return fmt.Errorf("write %d bytes of event frames: %w", len(frames), err)
	}
	if err := c.Conn.SetWriteDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clear write deadline: %w", err)
	}
	return nil
}

// hijackWriter hands websocket.Accept a frameConn instead of the raw
// connection, so the handler can write event frames beside the library.
type hijackWriter struct {
	http.ResponseWriter
	fc *frameConn // set by Hijack
}

// Hijack hijacks the underlying connection (following Unwrap like
// http.ResponseController) and wraps it in a frameConn.
func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack websocket connection: %w", err)
	}
	// Whatever the server still buffers (the 101 response) goes out
	// before any frame.
	if err := brw.Writer.Flush(); err != nil {
		_ = nc.Close()
		return nil, nil, fmt.Errorf("flush websocket handshake: %w", err)
	}
	h.fc = &frameConn{Conn: nc}
	return h.fc, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(h.fc, 4096)), nil
}

// WriteHeaderNow forwards gin's WriteHeaderNow, which websocket.Accept
// calls to make gin send the 101 response before hijacking.
func (h *hijackWriter) WriteHeaderNow() {
	if g, ok := h.ResponseWriter.(interface{ WriteHeaderNow() }); ok {
		g.WriteHeaderNow()
	}
}

// Unwrap returns the wrapped ResponseWriter (for http.ResponseController).
func (h *hijackWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }
