// Package config reads service configuration from environment variables
// (container-friendly) with command-line flags mirroring them. Flags win over
// the environment; every error names the variable.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Set is one service's configuration: a flag set whose every flag has an
// environment variable.
type Set struct {
	fs     *flag.FlagSet
	vars   []*variable
	getenv func(string) string
	checks []func() error
	Usage  string // one paragraph shown by --help
}

type variable struct {
	env, flag, def, usage string
	required, secret      bool
	set                   func(string) error
	fromEnv               bool
}

// New starts a configuration for program name.
func New(name, usage string) *Set {
	s := &Set{fs: flag.NewFlagSet(name, flag.ContinueOnError), getenv: os.Getenv, Usage: usage}
	s.fs.Usage = func() { s.PrintHelp(s.fs.Output()) }
	return s
}

// SetGetenv replaces os.Getenv (tests).
func (s *Set) SetGetenv(f func(string) string) { s.getenv = f }

// FlagSet exposes the underlying flags (for subcommand-only flags).
func (s *Set) FlagSet() *flag.FlagSet { return s.fs }

// Opt modifies a variable.
type Opt func(*variable)

// Required makes an empty value an error.
func Required() Opt { return func(v *variable) { v.required = true } }

// Secret hides the value in help and enables the <ENV>_FILE variant (Docker
// secrets): the value is read from the file it names.
func Secret() Opt { return func(v *variable) { v.secret = true } }

func flagName(env string) string { return strings.ReplaceAll(strings.ToLower(env), "_", "-") }

func (s *Set) add(env, def, usage string, set func(string) error, opts []Opt) {
	v := &variable{env: env, flag: flagName(env), def: def, usage: usage, set: set}
	for _, o := range opts {
		o(v)
	}
	s.vars = append(s.vars, v)
	s.fs.Func(v.flag, usage+" (env "+env+")", func(val string) error {
		if err := v.set(val); err != nil {
			return fmt.Errorf("%s: %w", env, err)
		}
		v.fromEnv = false
		v.def = "set"
		return nil
	})
}

// String binds a string variable.
func (s *Set) String(p *string, env, def, usage string, opts ...Opt) {
	*p = def
	s.add(env, def, usage, func(v string) error { *p = v; return nil }, opts)
}

// Int binds an int variable.
func (s *Set) Int(p *int, env string, def int, usage string, opts ...Opt) {
	*p = def
	s.add(env, strconv.Itoa(def), usage, func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("not an integer: %q", v)
		}
		*p = n
		return nil
	}, opts)
}

// Int64 binds an int64 variable; it accepts sizes such as 16MiB or 8M.
func (s *Set) Int64(p *int64, env string, def int64, usage string, opts ...Opt) {
	*p = def
	s.add(env, strconv.FormatInt(def, 10), usage, func(v string) error {
		n, err := ParseSize(v)
		if err != nil {
			return err
		}
		*p = n
		return nil
	}, opts)
}

// Bool binds a boolean variable (flag usable as --name).
func (s *Set) Bool(p *bool, env string, def bool, usage string, opts ...Opt) {
	*p = def
	s.add(env, strconv.FormatBool(def), usage, func(v string) error {
		if v == "" {
			*p = true
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", v)
		}
		*p = b
		return nil
	}, opts)
	// Let "--flag" work without "=true".
	fl := s.fs.Lookup(flagName(env))
	fl.Value = boolValue{fl.Value}
}

type boolValue struct{ flag.Value }

func (boolValue) IsBoolFlag() bool { return true }

// Duration binds a duration variable (Go syntax: 30s, 5m).
func (s *Set) Duration(p *time.Duration, env string, def time.Duration, usage string, opts ...Opt) {
	*p = def
	s.add(env, def.String(), usage, func(v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("not a duration (e.g. 30s, 5m): %q", v)
		}
		*p = d
		return nil
	}, opts)
}

// Check adds a validation run after parsing; return an error naming the
// variable.
func (s *Set) Check(f func() error) { s.checks = append(s.checks, f) }

// ErrHelp is returned by Parse when --help was asked for (help already
// printed); callers exit 0.
var ErrHelp = flag.ErrHelp

// Parse reads the environment, then the flags in args, then validates.
func (s *Set) Parse(args []string) error {
	for _, v := range s.vars {
		val := s.getenv(v.env)
		if v.secret && val == "" {
			if f := s.getenv(v.env + "_FILE"); f != "" {
				b, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("%s_FILE: read secret: %w", v.env, err)
				}
				val = strings.TrimRight(string(b), "\r\n")
			}
		}
		if val != "" {
			if err := v.set(val); err != nil {
				return fmt.Errorf("%s: %w", v.env, err)
			}
			v.fromEnv = true
		}
	}
	for _, a := range args {
		if a == "--help-markdown" { // the README's configuration tables
			fmt.Fprint(os.Stdout, s.Markdown())
			return ErrHelp
		}
	}
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	var errs []error
	for _, v := range s.vars {
		if v.required && v.def == "" && !v.fromEnv {
			errs = append(errs, fmt.Errorf("%s is required: %s", v.env, v.usage))
		}
	}
	for _, c := range s.checks {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Args are the positional arguments after the flags.
func (s *Set) Args() []string { return s.fs.Args() }

// PrintHelp writes usage and the variable table.
func (s *Set) PrintHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\n%s\n\nEvery flag can also be set by its environment variable.\n\n", s.fs.Name(), s.Usage)
	vars := append([]*variable(nil), s.vars...)
	sort.SliceStable(vars, func(i, j int) bool { return vars[i].env < vars[j].env })
	for _, v := range vars {
		def := v.def
		if v.secret {
			def = "(secret; or " + v.env + "_FILE)"
		} else if def == "" {
			def = `""`
		}
		req := ""
		if v.required {
			req = " [required]"
		}
		fmt.Fprintf(w, "  --%s / %s%s\n      %s (default %s)\n", v.flag, v.env, req, v.usage, def)
	}
}

// Markdown returns the variable table as Markdown (for the README).
func (s *Set) Markdown() string {
	var b strings.Builder
	b.WriteString("| variable | flag | default | meaning |\n|---|---|---|---|\n")
	for _, v := range s.vars {
		def := "`" + v.def + "`"
		if v.def == "" {
			def = ""
		}
		if v.secret {
			def = "secret; or `" + v.env + "_FILE`"
		}
		fmt.Fprintf(&b, "| `%s` | `--%s` | %s | %s |\n", v.env, v.flag, def, v.usage)
	}
	return b.String()
}

// ParseSize parses a byte size: 123, 16K, 16KiB, 8M, 8MiB, 1G (binary units).
func ParseSize(v string) (int64, error) {
	s := strings.ToUpper(strings.TrimSpace(v))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "IB"), "B")
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a size (e.g. 16MiB): %q", v)
	}
	return n * mult, nil
}
