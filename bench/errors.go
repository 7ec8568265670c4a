package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
)

// Sentinel errors; callers test them with errors.Is. A command line maps ErrScenario,
// ErrTarget and ErrSpawn to "usage or configuration error" (exit 2).
var (
	// ErrScenario: the scenario file does not decode or does not validate.
	ErrScenario = errors.New("bench: invalid scenario")
	// ErrTarget: no usable address, certificate or process to measure.
	ErrTarget = errors.New("bench: bad target")
	// ErrSpawn: the cotd to spawn could not be built, started or made ready.
	ErrSpawn = errors.New("bench: spawned cotd failed")
	// ErrReport: a report file cannot be read.
	ErrReport = errors.New("bench: bad report")
	// ErrMetrics: the server's /metrics lacks a series the report needs, or it makes no
	// sense (a histogram without its +Inf bucket, counters that went back).
	ErrMetrics = errors.New("bench: bad server metrics")
)

// ErrorKind classifies what went wrong on one simulated client's connection. Every error a
// client meets is counted under exactly one kind; a kind never changes once counted.
type ErrorKind uint8

// The error kinds. The dial and handshake kinds count failed connects; the others end an
// established connection, except RxTimeout, which only counts (as commo would drop the
// connection after 25 s without input, cotbench notes it and keeps the connection).
const (
	ErrDialRefused ErrorKind = iota
	ErrDialTimeout
	ErrDialFailed
	ErrHandshakeTimeout
	ErrHandshakeFailed
	ErrReset
	ErrServerClosed
	ErrBadFrame
	ErrReadFailed
	ErrWriteTimeout
	ErrWriteFailed
	ErrRxTimeout
	numErrorKinds
)

var errorKindNames = [numErrorKinds]string{
	"dial_refused", "dial_timeout", "dial_failed", "handshake_timeout", "handshake_failed",
	"reset", "server_closed", "bad_frame", "read_failed", "write_timeout", "write_failed",
	"rx_timeout",
}

func (k ErrorKind) String() string {
	if k < numErrorKinds {
		return errorKindNames[k]
	}
	return "ErrorKind(" + strconv.Itoa(int(k)) + ")"
}

// classifyDial names a failed TCP connect.
func classifyDial(err error) ErrorKind {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrDialRefused
	case isTimeout(err):
		return ErrDialTimeout
	}
	return ErrDialFailed
}

// classifyHandshake names a failed TLS handshake.
func classifyHandshake(err error) ErrorKind {
	if isTimeout(err) {
		return ErrHandshakeTimeout
	}
	return ErrHandshakeFailed
}

// classifyRead names why an established connection stopped delivering.
func classifyRead(err error) ErrorKind {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ErrServerClosed
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ErrReset
	}
	return ErrReadFailed
}

// classifyWrite names a failed send.
func classifyWrite(err error) ErrorKind {
	switch {
	case isTimeout(err):
		return ErrWriteTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ErrReset
	}
	return ErrWriteFailed
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
