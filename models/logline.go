package models

import (
	"log/slog"
	"time"
)

// LogLine is one log record a plugin POSTs to the host's
// /api-server-plugin/v4/log: DRP's logger.Line, field for field. The plugin
// SDK sends it and the plugin host decodes it, so both use this one type.
type LogLine struct {
	// Group ties together the lines of one request (one per inbound call).
	Group int64
	// Seq increases by one for every line the plugin emits.
	Seq int64
	// Time is when the line was logged.
	Time time.Time
	// Service is the provider name.
	Service string
	// Principal is the user the line is about; plugins leave it empty.
	Principal string
	// Level is the text level: trace, debug, info, warn, error, fatal, panic or audit.
	Level string
	// File and Line locate the logging call.
	File string
	// Line is the source line of the logging call.
	Line int
	// Message is the text, followed by the record's attributes as key=value.
	Message string
	// Data carries extra values; the SDK sends an empty list.
	Data []any
	// IgnorePublish asks the host not to re-emit the line as an event; it is
	// set on lines logged while handling an event, to avoid feedback loops.
	IgnorePublish bool
}

// LogLevelText names an slog level with DRP's logger level names, the form
// LogLine.Level carries: below slog.LevelDebug is "trace", then "debug",
// "info", "warn" and "error". The plugin SDK and the server's log ring
// both use it, so a line's level reads the same wherever it was written.
func LogLevelText(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	default:
		return "error"
	}
}
