package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Client talks to one Portainer instance. The API key only ever travels in
// the X-API-Key header: no error, log line or URL contains it.
type Client struct {
	base   *url.URL
	apiKey string
	http   *http.Client
}

// ErrNotFound is wrapped by API errors with status 404.
var ErrNotFound = errors.New("not found")

// ErrConflict is wrapped by API errors with status 409.
var ErrConflict = errors.New("conflict")

// APIError is a non-2xx answer.
type APIError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("portainer: %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

func (e *APIError) Unwrap() error {
	switch e.Status {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusInternalServerError:
		// Podman's Docker-compatible API answers a name clash with 500.
		if strings.Contains(e.Message, "already in use") {
			return ErrConflict
		}
	}
	return nil
}

// NewClient checks the URL and builds the HTTP client. caFile adds a CA
// (self-signed Portainer); insecure skips verification altogether.
func NewClient(rawURL, apiKey, caFile string, insecure bool) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(rawURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("PORTAINER_URL: %q is not an http(s) URL such as https://portainer.lan:9443", rawURL)
	}
	if apiKey == "" {
		return nil, errors.New("PORTAINER_API_KEY (or PORTAINER_API_KEY_FILE) is required: an access token from Portainer > My account > Access tokens")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("PORTAINER_CA_FILE: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("PORTAINER_CA_FILE: no PEM certificate in %s", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if insecure {
		tr.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // asked for explicitly, with a warning
	}
	return &Client{base: u, apiKey: apiKey, http: &http.Client{Transport: tr}}, nil
}

// redact removes the API key from s, in case a server echoes it back.
func (c *Client) redact(s string) string {
	if c.apiKey == "" {
		return s
	}
	return strings.ReplaceAll(s, c.apiKey, "***")
}

// do sends one request; path is relative to the Portainer URL and may carry
// a query. A non-2xx answer becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("portainer: %s %s: encode body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return nil, fmt.Errorf("portainer: %s %s: %w", method, path, err)
	}
	req.Header.Set("X-API-Key", c.apiKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "hevc-encoder-portainer-run/1")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error carries the URL, never the headers.
		return nil, errors.New(c.redact(fmt.Sprintf("portainer: %s %s: %v", method, path, err)))
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(b))
		var m struct{ Message, Details string }
		if json.Unmarshal(b, &m) == nil && m.Message != "" {
			msg = m.Message
			if m.Details != "" && m.Details != m.Message {
				msg += ": " + m.Details
			}
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return nil, &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: c.redact(msg)}
	}
	return resp, nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("portainer: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// Endpoint is a Portainer environment.
type Endpoint struct {
	ID   int    `json:"Id"`
	Name string `json:"Name"`
}

// EndpointID resolves an environment by name; with an empty name, the only
// environment there is.
func (c *Client) EndpointID(ctx context.Context, name string) (int, error) {
	path := "/api/endpoints"
	if name != "" {
		path += "?name=" + url.QueryEscape(name)
	}
	var eps []Endpoint
	if err := c.doJSON(ctx, http.MethodGet, path, nil, &eps); err != nil {
		return 0, err
	}
	var names []string
	for _, e := range eps {
		if name != "" && e.Name == name {
			return e.ID, nil
		}
		names = append(names, fmt.Sprintf("%s (id %d)", e.Name, e.ID))
	}
	if name == "" && len(eps) == 1 {
		return eps[0].ID, nil
	}
	if name != "" {
		if len(names) == 0 {
			// The server filtered by name: list them all for the message.
			var all []Endpoint
			if err := c.doJSON(ctx, http.MethodGet, "/api/endpoints", nil, &all); err == nil {
				for _, e := range all {
					names = append(names, fmt.Sprintf("%s (id %d)", e.Name, e.ID))
				}
			}
		}
		return 0, fmt.Errorf("portainer: no environment named %q (have: %s)", name, strings.Join(names, ", "))
	}
	return 0, fmt.Errorf("portainer: %d environments (%s): set PORTAINER_ENDPOINT or PORTAINER_ENDPOINT_ID", len(eps), strings.Join(names, ", "))
}

// Docker is the Docker API of one environment, through Portainer's proxy.
type Docker struct {
	c        *Client
	endpoint int
}

// Docker returns the Docker API of environment id.
func (c *Client) Docker(id int) *Docker { return &Docker{c: c, endpoint: id} }

func (d *Docker) path(p string) string {
	return "/api/endpoints/" + strconv.Itoa(d.endpoint) + "/docker" + p
}

// ContainerSummary is one entry of GET /containers/json.
type ContainerSummary struct {
	ID     string            `json:"Id"`
	Names  []string          `json:"Names"`
	Image  string            `json:"Image"`
	State  string            `json:"State"`
	Labels map[string]string `json:"Labels"`
}

// ListByLabels lists every container (running or not) with all labels.
func (d *Docker) ListByLabels(ctx context.Context, labels ...string) ([]ContainerSummary, error) {
	f, _ := json.Marshal(map[string][]string{"label": labels})
	var out []ContainerSummary
	err := d.c.doJSON(ctx, http.MethodGet, d.path("/containers/json?all=1&filters="+url.QueryEscape(string(f))), nil, &out)
	return out, err
}

// Mount is a HostConfig mount (bind, volume, tmpfs).
type Mount struct {
	Type     string `json:"Type,omitempty"`
	Source   string `json:"Source,omitempty"`
	Target   string `json:"Target,omitempty"`
	ReadOnly bool   `json:"ReadOnly,omitempty"`
}

// HostConfig is the subset of Docker's HostConfig that jobs inherit.
type HostConfig struct {
	Binds          []string          `json:"Binds,omitempty"`
	Mounts         []Mount           `json:"Mounts,omitempty"`
	Tmpfs          map[string]string `json:"Tmpfs,omitempty"`
	NetworkMode    string            `json:"NetworkMode,omitempty"`
	ReadonlyRootfs bool              `json:"ReadonlyRootfs,omitempty"`
	CapDrop        []string          `json:"CapDrop,omitempty"`
	SecurityOpt    []string          `json:"SecurityOpt,omitempty"`
	Init           *bool             `json:"Init,omitempty"`
	AutoRemove     bool              `json:"AutoRemove"`
}

// ContainerConfig is the body of POST /containers/create.
type ContainerConfig struct {
	Image        string            `json:"Image"`
	Cmd          []string          `json:"Cmd"`
	Env          []string          `json:"Env"`
	User         string            `json:"User,omitempty"`
	Labels       map[string]string `json:"Labels,omitempty"`
	Tty          bool              `json:"Tty"`
	AttachStdout bool              `json:"AttachStdout"`
	AttachStderr bool              `json:"AttachStderr"`
	HostConfig   HostConfig        `json:"HostConfig"`
	// Healthcheck overrides the image's HEALTHCHECK.
	Healthcheck *HealthConfig `json:"Healthcheck,omitempty"`
}

// HealthConfig is a container's health check; Test ["NONE"] disables the
// image's.
type HealthConfig struct {
	Test []string `json:"Test"`
}

// ContainerInspect is the subset of GET /containers/{id}/json that jobs use.
type ContainerInspect struct {
	ID     string `json:"Id"`
	Name   string `json:"Name"`
	Config struct {
		Image string   `json:"Image"`
		Env   []string `json:"Env"`
		User  string   `json:"User"`
	} `json:"Config"`
	HostConfig HostConfig `json:"HostConfig"`
	State      struct {
		Running bool   `json:"Running"`
		Status  string `json:"Status"`
	} `json:"State"`
}

// Inspect returns a container by id or name.
func (d *Docker) Inspect(ctx context.Context, id string) (*ContainerInspect, error) {
	var out ContainerInspect
	if err := d.c.doJSON(ctx, http.MethodGet, d.path("/containers/"+url.PathEscape(id)+"/json"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Create creates a container and returns its id.
func (d *Docker) Create(ctx context.Context, name string, cfg ContainerConfig) (string, error) {
	var out struct {
		ID       string   `json:"Id"`
		Warnings []string `json:"Warnings"`
	}
	if err := d.c.doJSON(ctx, http.MethodPost, d.path("/containers/create?name="+url.QueryEscape(name)), cfg, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", fmt.Errorf("portainer: create container %s: no id in the answer", name)
	}
	return out.ID, nil
}

// Pull pulls image (name:tag or name@digest). Portainer adds the
// credentials of registries configured in it.
func (d *Docker) Pull(ctx context.Context, image string, progress io.Writer) error {
	q := url.Values{"fromImage": {image}}
	resp, err := d.c.do(ctx, http.MethodPost, d.path("/images/create?"+q.Encode()), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// A JSON stream; an error arrives as {"error": "..."} with status 200.
	dec := json.NewDecoder(resp.Body)
	last := ""
	for {
		var m struct {
			Status, Error string
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("portainer: pull %s: %w", image, err)
		}
		if m.Error != "" {
			return fmt.Errorf("portainer: pull %s: %s", image, d.c.redact(m.Error))
		}
		if m.Status != "" && m.Status != last && progress != nil && !strings.HasPrefix(m.Status, "Downloading") && !strings.HasPrefix(m.Status, "Extracting") {
			fmt.Fprintf(progress, "pull %s: %s\n", image, m.Status)
			last = m.Status
		}
	}
}

// Start starts a created container.
func (d *Docker) Start(ctx context.Context, id string) error {
	return d.c.doJSON(ctx, http.MethodPost, d.path("/containers/"+url.PathEscape(id)+"/start"), nil, nil)
}

// Logs follows the container's output until it exits, demultiplexing
// Docker's stream format into stdout and stderr.
func (d *Docker) Logs(ctx context.Context, id string, stdout, stderr io.Writer) error {
	resp, err := d.c.do(ctx, http.MethodGet, d.path("/containers/"+url.PathEscape(id)+"/logs?follow=1&stdout=1&stderr=1"), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return demux(resp.Body, stdout, stderr)
}

// demux copies a Docker multiplexed stream (8-byte frame headers: stream,
// 0, 0, 0, big-endian length). A stream that does not start with a frame
// header (a TTY container) is copied as is to stdout.
func demux(r io.Reader, stdout, stderr io.Writer) error {
	br := bufio.NewReaderSize(r, 32<<10)
	first, err := br.Peek(8)
	if err != nil {
		if len(first) == 0 && (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)) {
			return nil
		}
		if err != io.EOF {
			return fmt.Errorf("read logs: %w", err)
		}
	}
	if len(first) < 8 || first[0] > 2 || first[1] != 0 || first[2] != 0 || first[3] != 0 {
		_, err := io.Copy(stdout, br)
		return err
	}
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read logs: %w", err)
		}
		n := int64(binary.BigEndian.Uint32(hdr[4:]))
		w := stdout
		if hdr[0] == 2 {
			w = stderr
		}
		if _, err := io.CopyN(w, br, n); err != nil {
			return fmt.Errorf("read logs: %w", err)
		}
	}
}

// Wait waits until the container is not running and returns its exit code.
func (d *Docker) Wait(ctx context.Context, id string) (int, error) {
	var out struct {
		StatusCode int
		Error      *struct{ Message string }
	}
	if err := d.c.doJSON(ctx, http.MethodPost, d.path("/containers/"+url.PathEscape(id)+"/wait"), nil, &out); err != nil {
		return -1, err
	}
	if out.Error != nil && out.Error.Message != "" {
		return out.StatusCode, fmt.Errorf("portainer: wait for %s: %s", id, out.Error.Message)
	}
	return out.StatusCode, nil
}

// Stop stops a container, killing it after grace.
func (d *Docker) Stop(ctx context.Context, id string, grace time.Duration) error {
	p := d.path("/containers/" + url.PathEscape(id) + "/stop?t=" + strconv.Itoa(int(grace.Seconds())))
	err := d.c.doJSON(ctx, http.MethodPost, p, nil, nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotModified {
		return nil
	}
	return err
}

// Remove removes a container and its anonymous volumes.
func (d *Docker) Remove(ctx context.Context, id string) error {
	return d.c.doJSON(ctx, http.MethodDelete, d.path("/containers/"+url.PathEscape(id)+"?force=1&v=1"), nil, nil)
}
