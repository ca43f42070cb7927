package pluginhost

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/provisionhq/provision/models"
)

// maxPluginRequest bounds one request body a plugin sends to the host.
const maxPluginRequest = 16 << 20

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// serverAPI is the host side of the §3 outbound socket
// (/api-server-plugin/v4/...).
func (p *process) serverAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api-server-plugin/v4/log", p.handleLog)
	mux.HandleFunc("POST /api-server-plugin/v4/publish", p.handlePublish)
	mux.HandleFunc("POST /api-server-plugin/v4/leaving", p.handleLeaving)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// v4 has no /objects helpers (DRP removed them in 2018: "USE
		// THE REAL API"); plugins use the REST API with RS_TOKEN.
		writeJSON(w, http.StatusNotFound, &models.Error{Model: "plugin", Key: r.URL.Path, Type: r.Method, Code: http.StatusNotFound,
			Messages: []string{"No route: use the REST API at RS_ENDPOINT with RS_TOKEN"}})
	})
	return http.MaxBytesHandler(mux, maxPluginRequest)
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(r.Body)
	if err == nil && len(strings.TrimSpace(string(body))) > 0 {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, &models.Error{Model: "plugin", Type: r.Method, Code: http.StatusBadRequest,
			Messages: []string{"invalid body: " + err.Error()}})
		return false
	}
	return true
}

func (p *process) handleLog(w http.ResponseWriter, r *http.Request) {
	var l models.LogLine
	if !decodeBody(w, r, &l) {
		return
	}
	// DRP downgrades fatal/panic from plugins to error: a plugin must not
	// be able to take the server's logger down.
	lvl := slog.LevelInfo
	switch strings.ToLower(l.Level) {
	case "trace", "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error", "fatal", "panic":
		lvl = slog.LevelError
	}
	attrs := []any{"service", l.Service}
	if l.File != "" {
		attrs = append(attrs, "source", l.File+":"+strconv.Itoa(l.Line))
	}
	if len(l.Data) > 0 {
		attrs = append(attrs, "data", l.Data)
	}
	if p.h.logs.allow(p.name, p.log) {
		p.log.Log(r.Context(), lvl, l.Message, attrs...)
	}
	// A dropped line is still acknowledged: the plugin's logger must not
	// fail or retry because the host is rate-limiting it.
	w.WriteHeader(http.StatusNoContent)
}

func (p *process) handlePublish(w http.ResponseWriter, r *http.Request) {
	var e models.Event
	if !decodeBody(w, r, &e) {
		return
	}
	if e.Type == "" || e.Action == "" {
		writeJSON(w, http.StatusBadRequest, &models.Error{Model: "events", Type: "POST", Code: http.StatusBadRequest,
			Messages: []string{"event needs Type and Action"}})
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Principal == "" {
		e.Principal = "plugin:" + p.name
	}
	p.h.deps.Bus.Publish(e)
	writeJSON(w, http.StatusOK, &models.Error{Code: http.StatusOK})
}

func (p *process) handleLeaving(w http.ResponseWriter, r *http.Request) {
	var e models.Error
	if !decodeBody(w, r, &e) {
		return
	}
	p.log.Warn("plugin is leaving", "reason", e.Error())
	w.WriteHeader(http.StatusNoContent)
	// Stop after the reply is on its way; the stop waits for the plugin.
	go p.inst.leaving(p, &e)
}
