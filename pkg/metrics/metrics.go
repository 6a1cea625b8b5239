// Package metrics serves a long-running service's Prometheus metrics
// (/metrics) and health (/healthz) on one listener (METRICS_ADDR), and
// defines the services' metrics so that their names and labels agree with
// the example dashboard (deployments/grafana).
//
// Every process has its own registry (the standard Go and process
// collectors plus its service's metrics): nothing registers globally, so
// tests can run several services in one process.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
)

// Namespace prefixes every metric of the project.
const Namespace = "hevc"

// Config is METRICS_ADDR.
type Config struct {
	// Addr is host:port to listen on ("" = off).
	Addr string
}

// Bind registers METRICS_ADDR.
func (c *Config) Bind(s *config.Set) {
	s.String(&c.Addr, "METRICS_ADDR", "", "listen address for Prometheus metrics (/metrics) and the health check (/healthz), e.g. :9090; empty: off (the images set :9090)")
	s.Check(func() error {
		if c.Addr == "" {
			return nil
		}
		if _, err := probeAddr(c.Addr); err != nil {
			return fmt.Errorf("METRICS_ADDR: %w", err)
		}
		return nil
	})
}

// NewRegistry is a private registry with the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Server is the metrics and health listener.
type Server struct {
	addr net.Addr
	srv  *http.Server
	done chan struct{}
	err  error
}

// shutdownTimeout bounds the graceful shutdown: a scrape in progress ends.
const shutdownTimeout = 5 * time.Second

// Serve listens on addr at once (a port taken fails here, at start, with
// METRICS_ADDR named) and serves reg on /metrics and h on /healthz until
// ctx ends, then shuts down gracefully. A nil h answers 200.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, h *Health, log zerolog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorLog: promLogger{log}}))
	mux.Handle("/healthz", h)
	s := &Server{
		addr: ln.Addr(),
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.err = err
			log.Error().Err(err).Str("addr", s.addr.String()).Msg("metrics listener failed")
		}
	}()
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := s.srv.Shutdown(sctx); err != nil {
			s.srv.Close()
		}
	})
	go func() { <-s.done; stop() }()
	log.Info().Str("addr", s.addr.String()).Msg("serving /metrics and /healthz")
	return s, nil
}

// Addr is the address listened on (the port chosen for ":0").
func (s *Server) Addr() net.Addr { return s.addr }

// Wait blocks until the server has shut down (its context ended) and
// returns why it stopped if not for that.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

// promLogger passes promhttp's errors (a collector failing) to the log.
type promLogger struct{ log zerolog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn().Msg(fmt.Sprint(v...)) }

// probeAddr is the URL host the health check dials for a listen address:
// the loopback address for an empty or unspecified host (":9090",
// "0.0.0.0:9090", "[::]:9090").
func probeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("not host:port (e.g. :9090): %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("bad port in %q", addr)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
