// Package logging sets up zerolog the same way in every service: JSON lines
// on stderr (console format on a terminal or with LOG_FORMAT=console), a
// "service" field on every line, level from LOG_LEVEL.
package logging

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// Milliseconds: a job's steps (probe, verify, upload) take fractions of a
// second, and whole-second stamps hide where the time goes.
func init() { zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00" }

// New returns the service's root logger.
func New(service string) zerolog.Logger {
	return NewTo(os.Stderr, service, os.Getenv("LOG_LEVEL"), os.Getenv("LOG_FORMAT"))
}

// NewTo builds a logger on w; level "" means info; format "console" or
// "json" ("" picks console on a terminal).
func NewTo(w io.Writer, service, level, format string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	if format == "console" || (format == "" && IsTerminal(w)) {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("service", service).Logger()
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
