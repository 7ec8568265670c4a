package main

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"cotd/configs"
	"cotd/engine/logsink"
)

// newLogger writes to w in the configured format: console for a person at a
// terminal, JSON for a log collector; "auto" picks by whether w is a
// terminal. Durations are written as Go durations ("1.5s"), never as bare
// numbers whose unit the reader has to guess.
func newLogger(c configs.Log, w io.Writer) zerolog.Logger {
	return buildLogger(c, formatted(c, w))
}

// newAsyncLogger is newLogger through a logsink.Sink: the server's loops
// and shards never wait on a slow log output; lines it cannot take are
// dropped and counted. Close the sink at exit to write what is queued.
func newAsyncLogger(c configs.Log, w io.Writer) (zerolog.Logger, *logsink.Sink) {
	sink := logsink.New(formatted(c, w), 0)
	return buildLogger(c, sink), sink
}

// formatted is w in the configured format, chosen by what w is.
func formatted(c configs.Log, w io.Writer) io.Writer {
	if consoleLog(c.Format, w) {
		return zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return w
}

func buildLogger(c configs.Log, w io.Writer) zerolog.Logger {
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
