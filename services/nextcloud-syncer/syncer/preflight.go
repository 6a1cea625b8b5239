package syncer

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/neterr"
)

// preflightTimeout bounds each user's check: a wrong NC_URL must end the
// service within seconds, not after NC_TIMEOUT and NC_RETRIES.
const preflightTimeout = 8 * time.Second

// Preflight checks, before the first pass, that Nextcloud answers at
// NC_URL and lets every user see their source folder (one PROPFIND of
// depth 0 each, users in parallel). When no user can be synced it returns
// an error wrapping ErrConfig that names the variable to fix for each
// (exit status 2, so a container restarts visibly instead of logging a
// failed pass every INTERVAL). When only some users fail, their problems
// are logged at error level and the others are synced: one family
// member's revoked app password does not stop the rest.
func (s *Syncer) Preflight(ctx context.Context) error {
	problems := make([]string, len(s.cfg.Users))
	var wg sync.WaitGroup
	for i, u := range s.cfg.Users {
		wg.Go(func() { problems[i] = s.checkUser(ctx, u) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil // stopping; Run ends at once
	}
	if !slices.Contains(problems, "") {
		// One line; a server problem is named once, not once per user.
		slices.Sort(problems)
		return fmt.Errorf("%w: no user can be synced: %s", ErrConfig, strings.Join(slices.Compact(problems), "; "))
	}
	for i, p := range problems {
		if p != "" {
			s.log.Error().Str("user", s.cfg.Users[i].Name).Str("key", s.cfg.SourceDir).Str("reason", p).
				Msg("preflight: this user cannot be synced; the others are")
		}
	}
	return nil
}

// checkUser returns what is wrong with user u's setup, or "".
func (s *Syncer) checkUser(ctx context.Context, u User) string {
	d, err := newDAV(s.cfg.URL, u.Name, u.Password.Reveal(), s.rt)
	if err != nil {
		return err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	e, err := d.Stat(ctx, s.cfg.SourceDir)
	var se *StatusError
	switch {
	case err == nil && !e.Dir:
		return fmt.Sprintf("NC_SOURCE_DIR: %q in user %s's files is a file, not a folder", s.cfg.SourceDir, u.Name)
	case err == nil:
		return ""
	case errors.Is(err, ErrAuth):
		return fmt.Sprintf("NC_PASS_%s: Nextcloud refused user %s's app password (HTTP 401)", u.Name, u.Name)
	case errors.Is(err, ErrNotFound):
		return fmt.Sprintf("NC_SOURCE_DIR: user %s has no folder %q (check the name, or NC_URL if no user has it)", u.Name, s.cfg.SourceDir)
	case errors.As(err, &se):
		return fmt.Sprintf("NC_URL: %s answered HTTP %d to user %s's PROPFIND (is it a Nextcloud WebDAV server?)", shownURL(s.cfg.URL), se.Code, u.Name)
	case ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("NC_URL: no answer from %s within %s", shownURL(s.cfg.URL), preflightTimeout)
	}
	return fmt.Sprintf("NC_URL: cannot reach %s: %v", shownURL(s.cfg.URL), neterr.Reason(err))
}

// shownURL is raw with any password removed.
func shownURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return raw
}
