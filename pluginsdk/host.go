package pluginsdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/provisionhq/provision/models"
)

// HostAPIPrefix is the base path of the host's outbound socket API
// (served by the host on the fromPlugin socket).
const HostAPIPrefix = "/api-server-plugin/v4"

// defaultHostTimeout bounds a call to the host when the caller's context
// has no deadline.
const defaultHostTimeout = 30 * time.Second

// host is the plugin's connection to the host's fromPlugin socket.
type host struct {
	hc *http.Client
}

// newHost returns a host client that dials the unix socket at path for
// every request; URLs are http://unix/api-server-plugin/v4/... (HTTP/1.1).
func newHost(path string) *host {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: defaultHostTimeout,
	}
	return &host{hc: &http.Client{Transport: tr}}
}

// post sends body as JSON to HostAPIPrefix+path. A status >= 400 is
// returned as the *models.Error in the body (or one describing the status
// when the body is not an Error).
func (h *host) post(ctx context.Context, path string, body any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultHostTimeout)
		defer cancel()
	}
	buf, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encoding %s body: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://unix"+HostAPIPrefix+path, bytes.NewReader(buf))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.hc.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s to host: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("POST %s to host: reading answer: %w", path, err)
	}
	if resp.StatusCode >= 400 {
		me := &models.Error{}
		if json.Unmarshal(data, me) != nil || me.Code == 0 {
			me = &models.Error{Type: "POST", Key: path, Code: resp.StatusCode,
				Messages: []string{strings.TrimSpace(string(data))}}
		}
		return me
	}
	return nil
}

func (h *host) close() { h.hc.CloseIdleConnections() }

// hostKey is the context key under which the SDK stores the host
// connection in every context it passes to a plugin.
type hostKey struct{}

func withHost(ctx context.Context, h *host) context.Context {
	return context.WithValue(ctx, hostKey{}, h)
}

// ErrNoHost is returned by Publish and Leaving when the context does not
// carry a host connection: it was not derived from a context the SDK passed
// to an interface method of a listening plugin (define and unpack have no
// host connection).
var ErrNoHost = errors.New("pluginsdk: no host connection in context; pass (a context derived from) the ctx the SDK gave your method while listening")

func hostFrom(ctx context.Context) (*host, error) {
	if h, ok := ctx.Value(hostKey{}).(*host); ok && h != nil {
		return h, nil
	}
	return nil, ErrNoHost
}

// Publish sends an event to the host's event bus through POST
// /api-server-plugin/v4/publish. ctx must be (derived from) a context the
// SDK passed to one of the plugin's methods: that is how Publish finds the
// host connection. The context of a call is cancelled when the call
// returns; keep the connection for background work with
// context.WithoutCancel(ctx). A zero e.Time is set to now.
func Publish(ctx context.Context, e *models.Event) error {
	h, err := hostFrom(ctx)
	if err != nil {
		return err
	}
	if e == nil {
		return errors.New("pluginsdk: Publish of a nil event")
	}
	if e.Time.IsZero() {
		ev := *e
		ev.Time = time.Now()
		e = &ev
	}
	return h.post(ctx, "/publish", e)
}

// Leaving asks the host to stop this plugin instance (POST
// /api-server-plugin/v4/leaving). reason.Code 403 makes the host remove the
// whole provider (license denial in DRP). ctx must carry the host
// connection, as for Publish.
func Leaving(ctx context.Context, reason *models.Error) error {
	h, err := hostFrom(ctx)
	if err != nil {
		return err
	}
	if reason == nil {
		reason = &models.Error{Type: "plugin", Code: http.StatusOK, Messages: []string{"leaving"}}
	}
	return h.post(ctx, "/leaving", reason)
}
