// Package notify sends a JSON POST to NOTIFY_URL when a run finishes or a
// file fails. It never blocks nor fails the pipeline: events go into a
// bounded queue (dropped and counted when it is full), one goroutine sends
// them with a short timeout and a couple of retries, and delivery errors are
// only logged at warn level.
//
// One JSON body serves the common receivers at once, each reading the
// fields it knows and ignoring the others (checked against their servers'
// sources): Gotify (`POST /message`: title, message, priority), Apprise API
// (`POST /notify/<key>`: title, body, type), and ntfy's JSON publishing
// (topic, title, message, priority, posted to the server root; with
// NOTIFY_FORMAT=ntfy the topic is taken from NOTIFY_URL). Slack-compatible
// incoming webhooks get only {"text"} with NOTIFY_FORMAT=slack: Mattermost
// gives `type` a meaning of its own.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
)

// Event kinds (the body's "event" field).
const (
	RunFinished = "run_finished"
	FileFailed  = "file_failed"
)

// Body formats (NOTIFY_FORMAT).
const (
	FormatJSON  = "json"  // the common body, POSTed to NOTIFY_URL as given
	FormatNtfy  = "ntfy"  // the common body plus "topic", POSTed to the ntfy server's root
	FormatSlack = "slack" // {"text": ...} only
)

// Limits that keep every receiver happy: ntfy turns messages over 4096
// bytes into attachments, Apprise refuses titles over 250 characters.
const (
	maxMessage = 3500
	maxTitle   = 200
)

// Event is one notification.
type Event struct {
	Kind    string // RunFinished or FileFailed
	Title   string
	Message string
	Key     string // the object key a file event is about
	// Failure: something needs a person's attention (Apprise type
	// "failure", a higher priority); otherwise the event is a success.
	Failure bool
	// Details are machine-readable extras (counts, bytes, reason) for
	// generic webhook receivers.
	Details map[string]any
}

// Config configures a Notifier.
type Config struct {
	URL    string // NOTIFY_URL; empty: notifications are off
	Format string // NOTIFY_FORMAT: json (default), ntfy or slack
	// Source names the sender in the body ("result-downloader process").
	Source string

	Timeout time.Duration // per request (default 10 s)
	Queue   int           // events waiting at most (default 100)
	Retries int           // after the first attempt (default 2)
	Backoff time.Duration // before the first retry, doubled after (default 2 s)
}

// Bind registers NOTIFY_URL and NOTIFY_FORMAT.
func (c *Config) Bind(s *config.Set) {
	s.String(&c.URL, "NOTIFY_URL", "", "POST a JSON notification here when a run finishes or a file fails (ntfy, Gotify, Apprise, Slack-compatible webhooks; see NOTIFY_FORMAT); empty: off. Never blocks nor fails the pipeline", config.Secret())
	s.String(&c.Format, "NOTIFY_FORMAT", FormatJSON, "json: one body with title, message, body, text, type, priority, event, key, details (Gotify /message, Apprise /notify, generic webhooks); "+
		"ntfy: NOTIFY_URL is the topic's URL (https://ntfy.sh/mytopic) and the body goes to the server root with the topic; slack: only {\"text\"} (Slack, Mattermost)")
	s.Check(c.Validate)
}

// Validate checks the URL and the format; errors never repeat the URL (it
// may carry a token).
func (c *Config) Validate() error {
	switch c.Format {
	case "", FormatJSON, FormatNtfy, FormatSlack:
	default:
		return fmt.Errorf("NOTIFY_FORMAT must be json, ntfy or slack, got %q", c.Format)
	}
	if c.URL == "" {
		return nil
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("NOTIFY_URL must be an http:// or https:// URL with a host")
	}
	if c.Format == FormatNtfy && ntfyTopic(u) == "" {
		return errors.New("NOTIFY_URL must name the ntfy topic (e.g. https://ntfy.sh/mytopic) with NOTIFY_FORMAT=ntfy")
	}
	return nil
}

// Target is the URL's scheme and host, safe to log (the path and query
// may carry a token).
func Target(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host
}

func ntfyTopic(u *url.URL) string {
	p := strings.Trim(u.Path, "/")
	if i := strings.LastIndex(p, "/"); i >= 0 {
		p = p[i+1:]
	}
	return p
}

// Stats count what a Notifier did.
type Stats struct {
	Sent, Failed, Dropped int64
}

// Notifier sends events in the background. A nil *Notifier is valid and
// does nothing, so callers need no "enabled" checks.
type Notifier struct {
	cfg    Config
	log    zerolog.Logger
	client *http.Client
	post   string // where bodies go
	topic  string // ntfy
	target string // scheme://host, for logs

	mu     sync.Mutex
	closed bool
	q      chan Event
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc

	sent, failed, dropped atomic.Int64
	pending               atomic.Int64 // queued or being sent
}

// New starts a Notifier, or returns nil when cfg.URL is empty. cfg must
// have passed Validate.
func New(cfg Config, log zerolog.Logger) *Notifier {
	if cfg.URL == "" {
		return nil
	}
	if cfg.Format == "" {
		cfg.Format = FormatJSON
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 100
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	} else if cfg.Retries == 0 {
		cfg.Retries = 2
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 2 * time.Second
	}
	n := &Notifier{
		cfg: cfg,
		log: log.With().Str("notify", Target(cfg.URL)).Logger(),
		// A redirected POST turns into a GET that "succeeds" without
		// posting anything (http:// to https://, a moved server): say so.
		client: &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		post:   cfg.URL,
		target: Target(cfg.URL),
		q:      make(chan Event, cfg.Queue),
		done:   make(chan struct{}),
	}
	if cfg.Format == FormatNtfy {
		if u, err := url.Parse(cfg.URL); err == nil {
			n.topic = ntfyTopic(u)
			root := *u
			root.Path, root.RawPath = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), n.topic), ""
			if root.Path == "" {
				root.Path = "/"
			}
			n.post = root.String()
		}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	go n.run()
	return n
}

// Notify queues ev and returns at once; when the queue is full (the
// receiver is slow or down) or the Notifier is closed, ev is dropped and
// counted.
func (n *Notifier) Notify(ev Event) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed {
		n.pending.Add(1) // before the sender can take it
		select {
		case n.q <- ev:
			return
		default:
			n.pending.Add(-1)
		}
	}
	d := n.dropped.Add(1)
	if d&(d-1) == 0 { // 1, 2, 4, 8…: said, but not once per event
		n.log.Warn().Str("event", ev.Kind).Str("key", ev.Key).Int64("dropped", d).Msg("notification dropped: the queue is full or closed (is the receiver slow or down?)")
	}
}

// Close stops accepting events and waits until the queued ones are sent
// or ctx ends; then what is left is abandoned (the request in flight is
// cancelled) and an error says how many were not delivered. It returns by
// ctx's deadline whatever the receiver does.
func (n *Notifier) Close(ctx context.Context) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.q)
	}
	n.mu.Unlock()
	select {
	case <-n.done:
		n.cancel()
		return nil
	case <-ctx.Done():
		n.cancel()
		left := n.pending.Load()
		n.log.Warn().Int64("abandoned", left).Msg("notifications not delivered before the deadline")
		return fmt.Errorf("notify: %d notification(s) to %s not delivered: %w", left, n.target, ctx.Err())
	}
}

// Stats returns the counts so far.
func (n *Notifier) Stats() Stats {
	if n == nil {
		return Stats{}
	}
	return Stats{Sent: n.sent.Load(), Failed: n.failed.Load(), Dropped: n.dropped.Load()}
}

func (n *Notifier) run() {
	defer close(n.done)
	for ev := range n.q {
		n.handle(ev)
		n.pending.Add(-1)
	}
}

func (n *Notifier) handle(ev Event) {
	if n.ctx.Err() != nil {
		return // abandoned by Close: drain without sending
	}
	if err := n.deliver(ev); err != nil {
		n.failed.Add(1)
		if n.ctx.Err() == nil {
			n.log.Warn().Err(err).Str("event", ev.Kind).Str("key", ev.Key).Msg("notification not delivered")
		}
		return
	}
	n.sent.Add(1)
}

// deliver POSTs ev, retrying network errors, 429 and 5xx with backoff.
func (n *Notifier) deliver(ev Event) error {
	body, err := json.Marshal(n.body(ev))
	if err != nil {
		return fmt.Errorf("encode notification: %w", err)
	}
	wait := n.cfg.Backoff
	var last error
	for attempt := 0; attempt <= n.cfg.Retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(wait)
			select {
			case <-n.ctx.Done():
				t.Stop()
				return n.ctx.Err()
			case <-t.C:
			}
			wait *= 2
		}
		retry, err := n.post1(body)
		if err == nil {
			return nil
		}
		last = err
		if !retry {
			break
		}
	}
	return last
}

// post1 makes one attempt; retry says whether another could succeed.
func (n *Notifier) post1(body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(n.ctx, http.MethodPost, n.post, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("build request: " + n.redact(err.Error()))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hevc-encoder-notify")
	resp, err := n.client.Do(req)
	if err != nil {
		// *url.Error repeats the whole URL, token and all: keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, fmt.Errorf("POST %s: %s", n.target, n.redact(err.Error()))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return false, fmt.Errorf("POST %s: %s: redirected to %s; set NOTIFY_URL to the address it redirects to", n.target, resp.Status, Target(resp.Header.Get("Location")))
	}
	err = fmt.Errorf("POST %s: %s: %s", n.target, resp.Status, n.redact(strings.TrimSpace(string(snippet))))
	return resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500, err
}

// redact removes the URL's path and query (where tokens live) from text a
// server or the network stack produced.
func (n *Notifier) redact(s string) string {
	u, err := url.Parse(n.cfg.URL)
	if err != nil {
		return s
	}
	secrets := []string{u.RawQuery, u.EscapedPath(), u.Path, u.User.String()}
	if p, ok := u.User.Password(); ok {
		secrets = append(secrets, p)
	}
	// A server may echo a token alone ("invalid token …"): query values
	// and long path segments (Slack's, Mattermost's hook ids) go too.
	for _, vs := range u.Query() {
		for _, v := range vs {
			if len(v) >= 6 {
				secrets = append(secrets, v)
			}
		}
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 8 {
			secrets = append(secrets, seg)
		}
	}
	for _, secret := range secrets {
		if len(secret) > 1 {
			s = strings.ReplaceAll(s, secret, "…")
		}
	}
	return s
}

// body is the JSON posted. Every receiver reads its own fields and ignores
// the rest: ntfy (topic, title, message, priority 1–5), Gotify (title,
// message, priority 0–10), Apprise API (title, body, type:
// info|success|warning|failure), Slack (text).
type body struct {
	Topic    string         `json:"topic,omitempty"`
	Title    string         `json:"title"`
	Message  string         `json:"message"`
	Body     string         `json:"body"`
	Text     string         `json:"text"`
	Type     string         `json:"type"`
	Priority int            `json:"priority"`
	Event    string         `json:"event"`
	Key      string         `json:"key,omitempty"`
	Source   string         `json:"source,omitempty"`
	Details  map[string]any `json:"details,omitempty"`
}

type slackBody struct {
	Text string `json:"text"`
}

func (n *Notifier) body(ev Event) any {
	title := clip(ev.Title, maxTitle)
	msg := clip(ev.Message, maxMessage)
	text := title
	if msg != "" {
		text += "\n" + msg
	}
	if n.cfg.Format == FormatSlack {
		return slackBody{Text: text}
	}
	// ntfy 3 is its default and 4 "high"; Gotify 1–3 shows quietly and
	// 4–7 with a sound.
	typ, prio := "success", 3
	if ev.Failure {
		typ, prio = "failure", 4
	}
	return body{
		Topic: n.topic, Title: title, Message: msg, Body: msg, Text: text,
		Type: typ, Priority: prio, Event: ev.Kind, Key: ev.Key, Source: n.cfg.Source, Details: ev.Details,
	}
}

// clip shortens s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-len("…")]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// Dedup remembers what was notified per key, so that a result met again
// on every reconcile is notified once (and again when its reason changes).
type Dedup struct {
	mu   sync.Mutex
	seen map[string]string
}

// First reports whether (key, version) is new, and remembers it.
func (d *Dedup) First(key, version string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[string]string{}
	}
	if v, ok := d.seen[key]; ok && v == version {
		return false
	}
	d.seen[key] = version
	return true
}

// Forget drops key (it was installed: a later failure is news again).
func (d *Dedup) Forget(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.seen, key)
}

// File is the FileFailed event for key.
func File(key, reason string, details map[string]any) Event {
	if details == nil {
		details = map[string]any{}
	}
	details["reason"] = reason
	name := key
	if i := strings.LastIndex(key, "/"); i >= 0 {
		name = key[i+1:]
	}
	return Event{Kind: FileFailed, Title: "hevc-encoder: " + name + " failed", Message: key + ": " + reason, Key: key, Failure: true, Details: details}
}

// List formats up to max lines of items, saying how many more there are.
func List(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, "\n")
	}
	return strings.Join(items[:max], "\n") + fmt.Sprintf("\n… and %d more", len(items)-max)
}
