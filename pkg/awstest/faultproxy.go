package awstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Fault is an error response a FaultProxy injects.
type Fault struct {
	Status  int
	Code    string
	Message string
}

// Faults that the SDKs retry.
var (
	SlowDown           = Fault{http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate."}
	InternalError      = Fault{http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again."}
	ServiceUnavailable = Fault{http.StatusServiceUnavailable, "ServiceUnavailable", "Service is unable to handle request."}
)

// FaultProxy is a reverse proxy to a test server that answers injected
// faults for the first N requests matching a rule, then passes through.
// Point a client's endpoint at URL.
type FaultProxy struct {
	URL string

	mu       sync.Mutex
	rules    []*faultRule
	injected int
	requests int
}

type faultRule struct {
	match func(*http.Request) bool
	left  int
	fault Fault
}

// NewFaultProxy starts a proxy to target (e.g. env.S3Endpoint), closed at
// t's cleanup.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("awstest: fault proxy target %q: %v", target, err)
	}
	p := &FaultProxy{}
	rp := httputil.NewSingleHostReverseProxy(u) // keeps the Host header, so signatures stay valid
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f, ok := p.take(r); ok {
			_, _ = io.Copy(io.Discard, r.Body)
			writeFault(w, r, f)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Fail makes the next n requests that match answer f. Rules are checked in
// the order they were added.
func (p *FaultProxy) Fail(n int, f Fault, match func(*http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &faultRule{match: match, left: n, fault: f})
}

// Injected is the number of faults answered so far.
func (p *FaultProxy) Injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected
}

// Requests is the number of requests seen so far.
func (p *FaultProxy) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

func (p *FaultProxy) take(r *http.Request) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	for _, rule := range p.rules {
		if rule.left > 0 && (rule.match == nil || rule.match(r)) {
			rule.left--
			p.injected++
			return rule.fault, true
		}
	}
	return Fault{}, false
}

// Match matches requests by method ("" any) whose path contains path and
// whose query has every key of query ("uploadId", "partNumber", …).
func Match(method, path string, query ...string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		if method != "" && r.Method != method {
			return false
		}
		if !strings.Contains(r.URL.Path, path) {
			return false
		}
		for _, k := range query {
			if !r.URL.Query().Has(k) {
				return false
			}
		}
		return true
	}
}

// MatchTarget matches JSON-protocol requests for an operation, e.g.
// "ReceiveMessage" (X-Amz-Target: AmazonSQS.ReceiveMessage).
func MatchTarget(op string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return strings.HasSuffix(r.Header.Get("X-Amz-Target"), "."+op)
	}
}

func writeFault(w http.ResponseWriter, r *http.Request, f Fault) {
	if strings.Contains(r.Header.Get("Content-Type"), "json") {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amzn-Query-Error", f.Code+";Receiver")
		w.WriteHeader(f.Status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + f.Code, "message": f.Message})
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(f.Status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>awstest-fault</RequestId></Error>`,
		f.Code, f.Message, r.URL.Path)
}
