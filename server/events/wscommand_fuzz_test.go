package events

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
)

// FuzzWebsocketCommands sends arbitrary request lines (what any logged-in
// client can write on /api/v3/ws) to one connection's command handler.
// Every line must get exactly one acknowledgement, a refused one carrying
// a 400 models.Error and an applied one none, and the connection's filters
// must stay within their cap.
func FuzzWebsocketCommands(f *testing.F) {
	for _, s := range []string{
		"register *.*.*", "deregister *.*.*", "register machines.create,update.*", "register", "register  ",
		"subscribe *.*.*", "register a..b", "register params.*.a.b\nregister x.y.z", "\x00", "deregister nothing.here.x",
		"register " + strings.Repeat("x,", 5000) + "x.y.z",
	} {
		f.Add(s)
	}
	const maxFilters = 4
	f.Fuzz(func(t *testing.T, input string) {
		h := &WebsocketHandler{opts: WSOptions{MaxFilters: maxFilters}}
		w := &wsConn{h: h, acks: make(chan models.Event, 64), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		lines := strings.Split(input, "\n")
		if len(lines) > 32 {
			lines = lines[:32]
		}
		for _, line := range lines {
			before := w.filters.Len()
			if !w.handle(context.Background(), line) {
				t.Fatalf("handle(%q) gave up with a live context", line)
			}
			var ack models.Event
			select {
			case ack = <-w.acks:
			default:
				t.Fatalf("no acknowledgement for %q", line)
			}
			if len(w.acks) != 0 {
				t.Fatalf("more than one acknowledgement for %q", line)
			}
			if ack.Type != AckType {
				t.Fatalf("ack type %q for %q", ack.Type, line)
			}
			cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
			_, perr := models.ParseEventFilter(strings.TrimSpace(arg))
			refused, _ := ack.Object.(*models.Error)
			valid := (cmd == "register" || cmd == "deregister") && perr == nil
			switch {
			case !valid && (refused == nil || refused.Code != 400 || len(refused.Messages) == 0):
				t.Fatalf("%q was not refused with a 400: %+v", line, ack.Object)
			case valid && cmd == "deregister" && refused != nil:
				t.Fatalf("valid deregister %q refused: %+v", line, refused)
			case valid && cmd == "register" && refused != nil && before < maxFilters:
				t.Fatalf("valid register %q refused below the cap: %+v", line, refused)
			}
			if n := w.filters.Len(); n > maxFilters {
				t.Fatalf("%d filters registered, cap %d", n, maxFilters)
			}
		}
	})
}
