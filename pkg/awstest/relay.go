package awstest

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// relay receives MinIO webhook notifications and sends {"Records": …} to
// the SQS queue of the request path, as S3 does for a queue destination.
// The records are passed on exactly as MinIO wrote them (eventName
// "s3:ObjectCreated:Put", MinIO's eventSource and userIdentity, keys
// URL-encoded as "TODO%2Fa+b%2F…"): consumers must cope with MinIO's
// spelling as they do with S3's, so nothing is normalised here.
// It answers 502 when SQS refuses, so that MinIO keeps the event in its
// queue dir and retries.
type relay struct {
	sqs    *sqs.Client
	routes map[string]string // path → queue URL
	mu     sync.Mutex
	counts map[string]int
}

func (r *relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost { // MinIO probes the endpoint
		w.WriteHeader(http.StatusOK)
		return
	}
	url, ok := r.routes[req.URL.Path]
	if !ok {
		http.Error(w, "no route", http.StatusNotFound)
		return
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var m struct {
		Records []json.RawMessage `json:"Records"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(m.Records) == 0 {
		w.WriteHeader(http.StatusOK)
		return
	}
	// MinIO's webhook body also carries EventName and Key at the top
	// level; S3 puts only {"Records": …} on the queue.
	out, err := json.Marshal(map[string]any{"Records": m.Records})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body := string(out)
	if _, err := r.sqs.SendMessage(req.Context(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body}); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	r.mu.Lock()
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	r.counts[req.URL.Path]++
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *relay) count(route string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[route]
}
