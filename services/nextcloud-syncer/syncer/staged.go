package syncer

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
)

// staged is a download being written beside its final name: a temp file
// created and recorded by library.Temps (a library.TempPrefix name that
// walkers skip; only this service's cleanup of its own killed runs ever
// removes it), fsynced, then library.LinkNoReplace and library.SyncDir,
// without library.Temp's inline SHA-256. The syncer verifies with the checksum the server offers
// (SHA1 from Nextcloud) and needs a SHA-256 only to compare with a file
// already at the target name, which is rare; hashing every byte with
// SHA-256 as well was about a quarter of the syncer's CPU per byte. With
// an option in pkg/library to skip the hash this type can go.
type staged struct {
	f    *os.File
	tf   *library.TempFile
	n    int64
	done bool
	sha  string // SHA-256, computed on demand
}

// stage creates a recorded temp file in dir, which must exist.
func stage(temps *library.Temps, dir string) (*staged, error) {
	tf, err := temps.Create(nil, dir)
	if err != nil {
		return nil, err
	}
	return &staged{f: tf.File, tf: tf}, nil
}

func (s *staged) Name() string { return s.f.Name() }
func (s *staged) Size() int64  { return s.n }

func (s *staged) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.n += int64(n)
	return n, err
}

// finish sets mode and mtime (zero: keep) and fsyncs data and metadata.
func (s *staged) finish(mode fs.FileMode, mtime time.Time) error {
	if err := s.f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", s.Name(), err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(s.Name(), mtime, mtime); err != nil {
			return fmt.Errorf("set mtime of %s: %w", s.Name(), err)
		}
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", s.Name(), err)
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.Name(), err)
	}
	return nil
}

// SHA256 hashes the (finished) temp file once.
func (s *staged) SHA256() (string, error) {
	if s.sha == "" {
		sum, _, err := library.FileSHA256(s.Name())
		if err != nil {
			return "", err
		}
		s.sha = sum
	}
	return s.sha, nil
}

// link gives the finished file the name dst, never replacing one
// (library.ErrExists), drops the temp name and fsyncs the directory.
func (s *staged) link(dst string) error {
	if err := library.LinkNoReplace(s.Name(), dst); err != nil {
		return err
	}
	s.abort() // the data lives on under dst
	return library.SyncDir(filepath.Dir(dst))
}

// abort removes the temp name; safe more than once.
func (s *staged) abort() {
	if s.done {
		return
	}
	s.done = true
	s.tf.Release() // if the removal fails, a later pass sweeps it
}
