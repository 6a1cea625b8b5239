package syncer

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/metrics"
)

// ErrConfig is returned (wrapped) for configuration errors.
var ErrConfig = errors.New("configuration error")

// Usage is the paragraph shown by --help.
const Usage = `nextcloud-syncer moves every file (recursively) out of each user's Nextcloud
folder NC_SOURCE_DIR into LIBRARY_ROOT/NC_TARGET_DIR over WebDAV. Per file:
download to a temp file beside the target, fsync, verify the size and, when
Nextcloud offers one (oc:checksums), the checksum, set the mtime from
getlastmodified, link into place without overwriting, and only then DELETE
the remote file (If-Match its ETag). An identical file already in place
(same size and checksum) only deletes the remote copy; a different file with
the same name is kept as "name (1).ext". User passwords come from
NC_PASS_<user> or NC_PASS_<user>_FILE (Docker secrets) and are never logged.
With METRICS_ADDR (e.g. :9090; not with --once) it serves Prometheus
metrics on /metrics (files by outcome, bytes moved, passes) and /healthz:
503 with the reason while the last pass ended with a user that could not be
synced at all (credentials refused, folder not listable, server failing),
200 otherwise. "nextcloud-syncer healthcheck" asks it (the image's
HEALTHCHECK).
At start each user's source folder is looked up once (within seconds):
when no user can be synced (NC_URL unreachable or not WebDAV, every
password refused, no user has NC_SOURCE_DIR) it exits 2 naming the
variable to fix; users that fail alone are logged and the others synced.
Exit status: 0 all moved, 1 something failed, 2 bad configuration.`

// Config is the syncer's configuration.
type Config struct {
	URL          string        // Nextcloud base URL, e.g. https://cloud.example.com
	Users        []User        // from NC_USERS and NC_PASS_<user>
	SourceDir    string        // remote folder under each user's files, '/'-separated
	TargetDir    string        // layout under LibraryRoot; {user} is replaced
	LibraryRoot  string        // LIBRARY_ROOT
	FileMode     fs.FileMode   // of installed files
	DirMode      fs.FileMode   // of created directories
	Concurrency  int           // GET streams in flight, all users together
	PartSize     int64         // a download may be split into ranges of at least this size; 0: never
	PartStreams  int           // most streams (ranges) one file is downloaded with
	DryRun       bool          // list and plan, change nothing
	Once         bool          // one pass, then exit
	Interval     time.Duration // between passes when not Once
	Timeout      time.Duration // no answer / no data for this long fails a request
	Retries      int           // extra attempts for transient errors (network, 5xx)
	RetryBackoff time.Duration // first pause between attempts, doubled each time

	Metrics metrics.Config // METRICS_ADDR (not with --once)
}

// User is one Nextcloud account.
type User struct {
	Name     string
	Password Secret
}

// Secret is a string that never prints.
type Secret string

func (Secret) String() string                { return "***" }
func (Secret) GoString() string              { return "***" }
func (Secret) MarshalText() ([]byte, error)  { return []byte("***"), nil }
func (s Secret) Reveal() string              { return string(s) }
func (Secret) Format(f fmt.State, verb rune) { f.Write([]byte("***")) }

// Target is the library directory of user.
func (c *Config) Target(user string) string {
	t := strings.ReplaceAll(c.TargetDir, "{user}", user)
	if filepath.IsAbs(t) {
		return filepath.Clean(t)
	}
	return filepath.Join(c.LibraryRoot, filepath.FromSlash(t))
}

// NewConfigSet binds every variable to cfg; Parse fills it.
func NewConfigSet(cfg *Config, getenv func(string) string) *config.Set {
	s := config.New("nextcloud-syncer", Usage)
	s.SetGetenv(getenv)
	var users, fileMode, dirMode string
	s.String(&cfg.URL, "NC_URL", "", "Nextcloud base URL; files are at <NC_URL>/remote.php/dav/files/<user>/", config.Required())
	s.String(&users, "NC_USERS", "", "comma-separated Nextcloud users; each needs NC_PASS_<user> or NC_PASS_<user>_FILE (an app password)", config.Required())
	s.String(&cfg.SourceDir, "NC_SOURCE_DIR", "InstantUpload/Camera", "folder in each user's files to empty (never removed itself)")
	s.String(&cfg.TargetDir, "NC_TARGET_DIR", "Smartphones/{user}", "target folder under LIBRARY_ROOT ({user} is the user name; absolute paths allowed)")
	s.String(&cfg.LibraryRoot, "LIBRARY_ROOT", "", "library root directory", config.Required())
	s.String(&fileMode, "FILE_MODE", "0644", "mode of moved files (octal)")
	s.String(&dirMode, "DIR_MODE", "0755", "mode of created directories (octal)")
	s.Int(&cfg.Concurrency, "CONCURRENCY", 4, "downloads at once, all users together: files, or ranges of a large file on slots no file is waiting for")
	s.Int64(&cfg.PartSize, "NC_PART_SIZE", 32<<20, "a file of at least twice this size may be downloaded in ranges of at least this size, over transfer slots that would idle (e.g. 32MiB; 0: one stream per file)")
	s.Int(&cfg.PartStreams, "NC_PART_STREAMS", 4, "most parallel ranges per file (1: one stream per file)")
	s.Bool(&cfg.DryRun, "DRY_RUN", false, "list and log what would be moved; download, write and delete nothing")
	s.Bool(&cfg.Once, "ONCE", false, "run one pass and exit (exit status 1 if anything failed)")
	s.Duration(&cfg.Interval, "INTERVAL", 5*time.Minute, "pause between passes when not --once")
	s.Duration(&cfg.Timeout, "NC_TIMEOUT", 2*time.Minute, "a request without an answer, or a transfer without data, for this long fails")
	s.Int(&cfg.Retries, "NC_RETRIES", 3, "extra attempts per request on network errors and HTTP 5xx")
	cfg.RetryBackoff = time.Second
	cfg.Metrics.Bind(s)
	s.Check(func() error {
		var errs []error
		if cfg.URL != "" {
			if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("NC_URL: %q is not an http(s) URL", cfg.URL))
			}
		}
		var err error
		if cfg.FileMode, err = parseMode(fileMode); err != nil {
			errs = append(errs, fmt.Errorf("FILE_MODE: %w", err))
		}
		if cfg.DirMode, err = parseMode(dirMode); err != nil {
			errs = append(errs, fmt.Errorf("DIR_MODE: %w", err))
		}
		if cfg.Concurrency < 1 || cfg.Concurrency > 64 {
			errs = append(errs, fmt.Errorf("CONCURRENCY: %d is not between 1 and 64", cfg.Concurrency))
		}
		if !cfg.Once && cfg.Interval <= 0 {
			errs = append(errs, fmt.Errorf("INTERVAL: must be positive (or use --once)"))
		}
		if cfg.PartSize < 0 || (cfg.PartSize > 0 && cfg.PartSize < 1<<20) {
			errs = append(errs, fmt.Errorf("NC_PART_SIZE: %d is below 1MiB (0 turns splitting off)", cfg.PartSize))
		}
		if cfg.PartStreams < 1 || cfg.PartStreams > 64 {
			errs = append(errs, fmt.Errorf("NC_PART_STREAMS: %d is not between 1 and 64", cfg.PartStreams))
		}
		if cfg.Timeout <= 0 {
			errs = append(errs, fmt.Errorf("NC_TIMEOUT: must be positive"))
		}
		if cfg.Retries < 0 {
			errs = append(errs, fmt.Errorf("NC_RETRIES: must not be negative"))
		}
		cfg.SourceDir = strings.Trim(cfg.SourceDir, "/")
		if err := library.CheckRel(cfg.SourceDir); err != nil {
			errs = append(errs, fmt.Errorf("NC_SOURCE_DIR: %w (the user's whole home is not allowed)", err))
		}
		if cfg.LibraryRoot != "" && !filepath.IsAbs(cfg.LibraryRoot) {
			if abs, err := filepath.Abs(cfg.LibraryRoot); err == nil {
				cfg.LibraryRoot = abs
			}
		}
		seen := map[string]bool{}
		cfg.Users = nil
		for _, name := range strings.FieldsFunc(users, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
			if seen[name] {
				continue
			}
			seen[name] = true
			if strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
				errs = append(errs, fmt.Errorf("NC_USERS: %q is not a usable user name", name))
				continue
			}
			if t := strings.ReplaceAll(cfg.TargetDir, "{user}", name); !filepath.IsAbs(t) {
				if err := library.CheckRel(strings.Trim(t, "/")); err != nil {
					errs = append(errs, fmt.Errorf("NC_TARGET_DIR for user %s: %w", name, err))
				}
			}
			pass, err := userPassword(getenv, name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cfg.Users = append(cfg.Users, User{Name: name, Password: Secret(pass)})
		}
		if users != "" && len(seen) == 0 {
			errs = append(errs, fmt.Errorf("NC_USERS: no user names in %q", users))
		}
		return errors.Join(errs...)
	})
	return s
}

// LoadConfig reads the environment and args.
func LoadConfig(args []string, getenv func(string) string) (*Config, *config.Set, error) {
	cfg := &Config{}
	s := NewConfigSet(cfg, getenv)
	if err := s.Parse(args); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return nil, s, err
		}
		return nil, s, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return cfg, s, nil
}

func parseMode(s string) (fs.FileMode, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("%q is not an octal file mode such as 0644", s)
	}
	return fs.FileMode(n), nil
}

// PassVars are the environment variable names tried for user's password,
// in order: NC_PASS_<user> as written, then with every character outside
// [A-Za-z0-9_] replaced by '_', then that upper-cased. Each may also be
// given as <name>_FILE.
func PassVars(user string) []string {
	san := strings.Map(func(r rune) rune {
		if r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, user)
	out := []string{"NC_PASS_" + user}
	for _, v := range []string{"NC_PASS_" + san, "NC_PASS_" + strings.ToUpper(san)} {
		if v != out[len(out)-1] && v != out[0] {
			out = append(out, v)
		}
	}
	return out
}

func userPassword(getenv func(string) string, user string) (string, error) {
	vars := PassVars(user)
	for _, v := range vars {
		if p := getenv(v); p != "" {
			return p, nil
		}
		if f := getenv(v + "_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", fmt.Errorf("%s_FILE: read secret: %w", v, err)
			}
			p := strings.TrimRight(string(b), "\r\n")
			if p == "" {
				return "", fmt.Errorf("%s_FILE: %s is empty", v, f)
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("%s (or %s_FILE) is required: app password of Nextcloud user %s", vars[0], vars[0], user)
}

// joinRemote joins '/'-separated remote path parts.
func joinRemote(parts ...string) string { return strings.Trim(path.Join(parts...), "/") }
