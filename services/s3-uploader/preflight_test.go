package main

import (
	"os"
	"testing"

	"github.com/hevc-encoder/hevc-encoder/pkg/adapters/preflighttest"
	"github.com/hevc-encoder/hevc-encoder/pkg/awstest"
)

// TestPreflightRefusesMisconfiguration: the s3-uploader binary, run with
// each of our own mistakes against MinIO, exits non-zero within 10 s with
// one line naming the variable.
func TestPreflightRefusesMisconfiguration(t *testing.T) {
	e := awstest.Start(t) // its own: TestBinaryAWS closes the shared one
	bin := build(t)
	root := t.TempDir()
	base := append(os.Environ(), e.Environ()...)
	base = append(base, "LIBRARY_ROOT="+root, "LOG_FORMAT=json")
	preflighttest.Run(t, e, bin, nil, base, preflighttest.Cases(t, e, ""))
}
