package main

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"cotd/configs"
)

// newLogger writes to w in the configured format: console for a person at a
// terminal, JSON for a log collector; "auto" picks by whether w is a
// terminal. Durations are written as Go durations ("1.5s"), never as bare
// numbers whose unit the reader has to guess.
func newLogger(c configs.Log, w io.Writer) zerolog.Logger {
	if consoleLog(c.Format, w) {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

func consoleLog(format string, w io.Writer) bool {
	switch format {
	case configs.LogConsole:
		return true
	case configs.LogAuto:
		f, ok := w.(*os.File)
		return ok && term.IsTerminal(int(f.Fd()))
	}
	return false
}
