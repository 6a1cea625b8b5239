package downloader_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/media/mediatest"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/internal/testutil"
)

// leaveTempEnv makes the test binary act as a downloader killed mid-download:
// it creates a recorded temp file in the named directory of the library in
// $LEAVE_TEMP_ROOT and exits without cleaning up (see leaveTempIfAsked).
const leaveTempEnv = "DOWNLOADER_TEST_LEAVE_TEMP"

// leaveTempIfAsked runs from TestMain: a child process that leaves a temp
// file behind the way a killed run does, and prints its path.
func leaveTempIfAsked() {
	dir := os.Getenv(leaveTempEnv)
	if dir == "" {
		return
	}
	root := os.Getenv("LEAVE_TEMP_ROOT")
	temps, err := library.OpenTemps(library.StateDir(root), "dl", 0o755)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	tf, err := temps.Create(nil, filepath.Join(root, dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	tf.WriteString("partial download")
	fmt.Print(tf.Name())
	os.Exit(0) // no Release: the name and the record stay, the lock goes
}

// killedRunTemp leaves a temp file of a killed downloader in dir (relative
// to the library) and returns its path.
func killedRunTemp(t *testing.T, root, dir string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), leaveTempEnv+"="+dir, "LEAVE_TEMP_ROOT="+root)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("leave a temp file: %v", err)
	}
	return string(out)
}

// Issue 15, point 1: the downloader's cleanup of interrupted runs removes
// only temp files it recorded creating. Users' files named like temp files
// (".hevc-tmp-*", even ".hevc-tmp-dl-*" with an old mtime) and another
// live downloader's temp file survive a reconcile that installs a result
// in their directory; a killed run's leftover is removed.
func TestSweepRemovesOnlyOwnLeftovers(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	stores(t, func(t *testing.T, f *fixture) {
		rel := "cam/clip.mp4"
		testutil.Clip(t, f.path(rel), clip2s)
		key, sha := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
		user := map[string][]byte{
			".hevc-tmp-holiday.mp4":                         []byte("a user's video named like a temp file"),
			".hevc-tmp-dl-0123456789abcdef0123456789abcdef": []byte("a user's file named like ours"),
			".hevc-tmp-": []byte("another"),
		}
		for n, b := range user {
			testutil.WriteFile(t, f.path("cam/"+n), b) // an hour old
		}
		leftover := killedRunTemp(t, f.root, "cam")
		// Another downloader (a `process` run) is downloading into cam/.
		other, err := library.OpenTemps(library.StateDir(f.root), "dl", 0o755)
		if err != nil {
			t.Fatal(err)
		}
		live, err := other.Create(nil, filepath.Dir(f.path(rel)))
		if err != nil {
			t.Fatal(err)
		}
		defer live.Release()
		old := time.Now().Add(-3 * time.Hour)
		os.Chtimes(live.Name(), old, old)

		if err := f.d.Reconcile(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := testutil.SHA(t, f.path(library.HevcRel(rel))); got != sha {
			t.Errorf("result not installed: sha256 %s", got)
		}
		if exists(f.path(rel)) {
			t.Errorf("original not removed after install")
		}
		if ok, _ := storage.Exists(context.Background(), f.st, key); ok {
			t.Errorf("%s still in DONE/", key)
		}
		for n, b := range user {
			if got, err := os.ReadFile(f.path("cam/" + n)); err != nil || !bytes.Equal(got, b) {
				t.Errorf("LOST: user file %s: %v", n, err)
			}
		}
		if !exists(live.Name()) {
			t.Errorf("another downloader's live temp file was removed")
		}
		if exists(leftover) {
			t.Errorf("a killed run's temp file %s was not removed", leftover)
		}
	})
}

// Issue 15, point 3: the original is hashed long before it is removed. A
// version saved in between (written in place keeping size and mtime, or
// replaced by a rename) is kept; the result stays installed and the
// change is reported.
func TestChangedOriginalIsKept(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	for _, how := range []string{"in-place", "renamed-over"} {
		t.Run(how, func(t *testing.T) {
			stores(t, func(t *testing.T, f *fixture) {
				rel := "edit/clip.mp4"
				testutil.Clip(t, f.path(rel), clip2s)
				key, sha := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
				fi, _ := os.Stat(f.path(rel))
				orig, _ := os.ReadFile(f.path(rel))
				newer := append([]byte(nil), orig...)
				copy(newer[len(newer)-16:], "a newer version!")
				f.d.Crash = func(point string) {
					if point != downloader.CrashRetiring {
						return
					}
					p := f.path(rel)
					switch how {
					case "in-place":
						fh, err := os.OpenFile(p, os.O_WRONLY, 0)
						if err != nil {
							t.Error(err)
							return
						}
						fh.WriteAt(newer[len(newer)-16:], int64(len(newer)-16))
						fh.Close()
					case "renamed-over":
						tmp := p + ".saving"
						os.WriteFile(tmp, newer, 0o644)
						os.Rename(tmp, p)
					}
					// Same size and mtime as before: only the inode or its
					// ctime tell.
					os.Chtimes(p, fi.ModTime(), fi.ModTime())
				}
				res := f.install(key)
				if res.Outcome != downloader.Installed || !res.OriginalKept || !strings.Contains(res.Reason, "changed") {
					t.Fatalf("result %+v, want installed with the original kept", res)
				}
				t.Logf("reported: %s", res.Reason)
				if got, err := os.ReadFile(f.path(rel)); err != nil || !bytes.Equal(got, newer) {
					t.Errorf("LOST: the newer original was removed or changed: %v", err)
				}
				if got := testutil.SHA(t, f.path(library.HevcRel(rel))); got != sha {
					t.Errorf("installed result: sha256 %s, want %s", got, sha)
				}
				f.checkNoTemps()
			})
		})
	}
}

// Issue 15, point 8: a result whose picture differs from its original's
// (same size, frame rate, duration, streams, and it decodes) is not
// installed: the original stays, the result stays in DONE/, the reason
// is reported.
func TestDifferentPictureIsNotInstalled(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	stores(t, func(t *testing.T, f *fixture) {
		rel := "picture/clip.mp4"
		testutil.Clip(t, f.path(rel), clip2s)
		origSHA := testutil.SHA(t, f.path(rel))
		key := putOtherPicture(t, f, rel)
		for _, mode := range []string{downloader.VerifyAuto, downloader.VerifyAlways} {
			f.d.Cfg.VerifyDecode = mode
			res := f.install(key)
			if res.Outcome != downloader.Rejected || !strings.Contains(res.Reason, "picture") {
				t.Fatalf("%s: result %+v, want rejected for its picture", mode, res)
			}
			t.Logf("%s: reported: %s", mode, res.Reason)
			f.checkKept(rel, key, origSHA)
			if exists(f.path(library.HevcRel(rel))) {
				t.Errorf("%s: a result with another picture was installed", mode)
			}
		}
	})
}

// putOtherPicture stores a processor-shaped result for rel: HEVC, as long
// as the original, same size, rate and audio, of another picture.
func putOtherPicture(t *testing.T, f *fixture, rel string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "other.mp4")
	cmd := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "mandelbrot=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "2", "-map", "0:v", "-map", "1:a", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
		"-tag:v", "hvc1", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return putResultFile(t, f, rel, out)
}

// Issue 15, point 7: the check that a result stays inside the library
// holds at the moment of each write and delete, not only once before: a
// directory swapped for a symlink out of the library while a result is
// being installed carries neither the link nor the original's removal out.
func TestSymlinkSwappedMidInstall(t *testing.T) {
	mediatest.RequireFFmpeg(t)
	for _, point := range []string{downloader.CrashDownloaded, downloader.CrashRetiring} {
		t.Run(point, func(t *testing.T) {
			f := newFixture(t, "fs")
			rel := "sw/clip.mp4"
			testutil.Clip(t, f.path(rel), clip2s)
			origSHA := testutil.SHA(t, f.path(rel))
			key, sha := testutil.PutResult(t, f.st, f.root, rel, testutil.ResultOpts{})
			outside := filepath.Join(f.base, "outside")
			// A file of the original's name outside: the one an escaped
			// delete would hit.
			testutil.Clip(t, filepath.Join(outside, "clip.mp4"), clip2s)
			outsideSHA := testutil.SHA(t, filepath.Join(outside, "clip.mp4"))
			dir, moved := filepath.Dir(f.path(rel)), filepath.Dir(f.path(rel))+".moved"
			swapped := false
			f.d.Crash = func(p string) {
				if p != point || swapped {
					return
				}
				swapped = true
				if err := os.Rename(dir, moved); err != nil {
					t.Error(err)
				}
				if err := os.Symlink(outside, dir); err != nil {
					t.Error(err)
				}
			}
			res, err := f.d.Install(context.Background(), key)
			t.Logf("install with the directory swapped: %+v, %v", res, err)
			if !swapped {
				t.Fatal("crash point not reached")
			}
			ents, _ := os.ReadDir(outside)
			if len(ents) != 1 || testutil.SHA(t, filepath.Join(outside, "clip.mp4")) != outsideSHA {
				t.Errorf("written or deleted outside the library: %v", ents)
			}
			// Undo the swap: the next attempt installs, nothing was lost.
			os.Remove(dir)
			if err := os.Rename(moved, dir); err != nil {
				t.Fatal(err)
			}
			if point == downloader.CrashRetiring {
				// The result was linked before the swap.
				if got := testutil.SHA(t, f.path(library.HevcRel(rel))); got != sha {
					t.Fatalf("result not in place: %s", got)
				}
			} else if got := testutil.SHA(t, f.path(rel)); got != origSHA {
				t.Fatalf("LOST: original changed")
			}
			f.d.Crash = nil
			if res := f.install(key); res.Outcome != downloader.Installed {
				t.Fatalf("after the swap was undone: %+v", res)
			}
			if got := testutil.SHA(t, f.path(library.HevcRel(rel))); got != sha {
				t.Errorf("installed result: %s, want %s", got, sha)
			}
			if exists(f.path(rel)) {
				t.Errorf("original not removed once installed")
			}
			f.checkNoTemps() // the refused attempt's temp file went too
		})
	}
}
