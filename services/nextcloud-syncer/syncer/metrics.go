package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/metrics"
)

// serveMetrics serves s's metrics and health on addr until the returned
// stop is called (or ctx ends).
//
// /healthz fails while the last finished pass had a user that could not be
// synced at all (credentials refused, source folder not listable, server
// failing): files that failed alone are retried by the next pass and do
// not make the service unhealthy. A pass is not timed: one can move
// gigabytes for hours.
func serveMetrics(ctx context.Context, addr string, s *Syncer, log zerolog.Logger) (stop func(), err error) {
	reg := metrics.NewRegistry()
	m := metrics.NewSyncer(reg)
	h := metrics.NewHealth("")
	var mu sync.Mutex
	var lastErr error
	h.Add("last pass", func() error {
		mu.Lock()
		defer mu.Unlock()
		return lastErr
	})
	h.Ready()
	s.OnFile = m.File
	s.OnPass = func(sums []Summary, err error) {
		var bad []string
		for _, sum := range sums {
			if sum.Err != nil {
				bad = append(bad, fmt.Sprintf("user %s: %v", sum.User, sum.Err))
			}
		}
		mu.Lock()
		lastErr = nil
		if len(bad) > 0 {
			lastErr = errors.New(strings.Join(bad, "; "))
		}
		mu.Unlock()
		m.Pass(err != nil)
	}
	ctx, cancel := context.WithCancel(ctx)
	srv, err := metrics.Serve(ctx, addr, reg, h, log)
	if err != nil {
		cancel()
		return nil, err
	}
	return func() { cancel(); srv.Wait() }, nil
}

// healthcheck is the healthcheck subcommand (the image's HEALTHCHECK).
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var c metrics.Config
	set := config.New("nextcloud-syncer healthcheck", metrics.HealthcheckUsage)
	set.SetGetenv(getenv)
	set.FlagSet().SetOutput(stderr)
	c.Bind(set)
	if err := set.Parse(args); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := metrics.Healthcheck(ctx, c.Addr, stderr); err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	return nil
}
