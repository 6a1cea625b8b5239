package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/logging"
	"github.com/rs/zerolog"
)

// Service is the service name in logs.
const Service = "nextcloud-syncer"

// Main is the whole program: read the configuration from getenv and args,
// log to stderr, run until done (--once) or until ctx ends. --help prints
// the variables and returns nil. Errors wrapping ErrConfig mean bad
// configuration (exit status 2); any other error means something failed
// (exit status 1).
func Main(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(ctx, args[1:], getenv, stderr)
	}
	cfg, _, err := LoadConfig(args, getenv)
	if errors.Is(err, config.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, ok := stderr.(*os.File); !ok {
		stderr = zerolog.SyncWriter(stderr) // workers log concurrently
	}
	log := logging.NewTo(stderr, Service, getenv("LOG_LEVEL"), getenv("LOG_FORMAT"))
	users := make([]string, len(cfg.Users))
	for i, u := range cfg.Users {
		users[i] = u.Name
	}
	log.Info().Str("url", shownURL(cfg.URL)).Strs("users", users).Str("key", cfg.SourceDir).
		Str("path", cfg.Target("{user}")).Int("concurrency", cfg.Concurrency).
		Bool("dry_run", cfg.DryRun).Bool("once", cfg.Once).Dur("interval", cfg.Interval).
		Msg("starting")
	s := New(cfg, log)
	if err := s.Preflight(ctx); err != nil {
		return err
	}
	if cfg.Metrics.Addr != "" && !cfg.Once {
		stop, err := serveMetrics(ctx, cfg.Metrics.Addr, s, log)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		defer stop()
	}
	return s.Run(ctx)
}

// ExitCode maps Main's error to the process exit status.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrConfig):
		return 2
	}
	return 1
}
