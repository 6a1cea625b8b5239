// Package neterr says in a few words why a connection failed, for the
// one-line start-up errors that name the variable to fix (an endpoint or
// URL nobody answers at).
package neterr

import (
	"errors"
	"strings"
	"syscall"
)

// Reason is why err, a failed dial or request, could not reach its peer:
// "connection refused", "no route to host", "no such host", or else the
// error from its dial on, on one line (the layers above it repeat the URL).
func Reason(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host"
	case strings.Contains(err.Error(), "no such host"):
		return "no such host"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": dial "); i >= 0 {
		msg = msg[i+2:]
	}
	return strings.Join(strings.Fields(msg), " ")
}
