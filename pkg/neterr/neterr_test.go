package neterr

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
)

func TestReason(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = http.Get("http://" + addr + "/")
	if got := Reason(err); got != "connection refused" {
		t.Errorf("Reason(%v) = %q, want connection refused", err, got)
	}
	wrapped := fmt.Errorf("GET http://x/: %w", errors.New("dial tcp 10.0.0.1:80: i/o\n timeout"))
	if got := Reason(wrapped); got != "dial tcp 10.0.0.1:80: i/o timeout" {
		t.Errorf("Reason(%v) = %q, want the dial error on one line", wrapped, got)
	}
}
