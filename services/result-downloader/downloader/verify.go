package downloader

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// verifyPicture compares the result with its original as media.VerifyResult
// does: display size, frame rate, frame count (within the tolerance of
// variable frame rates) and a sampled SSIM of the pictures. Its error
// wraps media.ErrVerify when they differ and says what differs; other
// errors (ffmpeg missing, a cancelled ctx) are worth retrying. It runs for
// every result whose original is present, whatever VERIFY_DECODE says: a
// result that decodes cleanly with the right streams and duration may
// still show another picture.
var verifyPicture = media.VerifyResult

// probeOriginal picks the check for this result and probes the original
// before anything is downloaded: an original that does not probe cannot
// be compared with any result.
func (j *job) probeOriginal(ctx context.Context) (bool, error) {
	j.chk = j.d.checkFor(j.obj, j.orig.path)
	if j.orig.path == "" {
		return false, nil
	}
	var err error
	if j.origProbe, err = j.chk.probe(ctx, j.orig.path); err != nil {
		if errors.Is(err, media.ErrBadInput) {
			return j.remember("the original does not probe, so the result cannot be compared with it: " + err.Error())
		}
		return false, fmt.Errorf("probe original %s: %w", j.orig.path, err)
	}
	return false, nil
}

// verify compares the downloaded temp file with the original (or, when
// the original is gone, checks it alone) and waits for the original's
// SHA-256 check. A mismatch keeps the original and leaves the result in
// DONE/. No fsync yet: commit fsyncs once, after setting mode and mtime,
// and before the link that makes the file visible.
func (j *job) verify(ctx context.Context) (bool, error) {
	if j.orig.path != "" {
		reason, err := j.compare(ctx, j.origProbe, j.tmp.name())
		if err != nil {
			return false, err
		}
		if reason != "" {
			return j.remember("result does not match its original: " + strings.ReplaceAll(reason, j.tmp.name(), j.ref.Hevc))
		}
	} else if reason, err := verifyAlone(ctx, j.chk, j.tmp.name(), j.obj); err != nil {
		return false, fmt.Errorf("verify %s: %w", j.key, err)
	} else if reason != "" {
		return j.remember(reason)
	}
	if j.confirmed != nil {
		if err := <-j.confirmed; err != nil {
			var mm mismatch
			if errors.As(err, &mm) {
				return j.remember(mm.Error())
			}
			return false, err
		}
		j.orig.unhashed = false
	}
	j.d.crash(CrashDownloaded)
	j.verified = time.Now()
	return false, nil
}

// compare checks file p against the original: streams, duration and
// (with the full check) the decode, then the picture. It returns why they
// differ, or an error worth retrying.
func (j *job) compare(ctx context.Context, origProbe media.Info, p string) (string, error) {
	if _, err := j.chk.verify(ctx, origProbe, p); err != nil {
		if errors.Is(err, media.ErrVerify) || errors.Is(err, media.ErrBadInput) {
			return err.Error(), nil
		}
		return "", fmt.Errorf("verify %s: %w", j.key, err)
	}
	if err := verifyPicture(ctx, j.orig.path, p); err != nil {
		if errors.Is(err, media.ErrVerify) || errors.Is(err, media.ErrBadInput) {
			return "picture: " + err.Error(), nil
		}
		return "", fmt.Errorf("compare the picture of %s with %s: %w", j.key, j.orig.path, err)
	}
	return "", nil
}

// verifyInstalled checks a result installed by an earlier, interrupted
// run against its original once more, this time the file in place: it was
// verified before it was linked, but the original is about to be removed.
func (j *job) verifyInstalled(ctx context.Context) (bool, error) {
	if j.orig.path == "" {
		return false, nil
	}
	j.chk = j.d.checkFor(j.obj, j.orig.path)
	reject := func(reason string) (bool, error) {
		j.res.Outcome, j.res.Reason = Rejected, reason
		j.d.logProblem(j.log, j.key, reason).Str("reason", reason).Msg("not finishing: original kept beside the copy; resolve by hand")
		return true, nil
	}
	in, err := j.chk.probe(ctx, j.orig.path)
	if err != nil && !errors.Is(err, media.ErrBadInput) {
		return false, fmt.Errorf("probe original %s: %w", j.orig.path, err)
	}
	if err != nil {
		return reject("the original does not probe, so the installed copy cannot be compared with it: " + err.Error())
	}
	reason, err := j.compare(ctx, in, j.target)
	if err != nil {
		return false, err
	}
	if reason != "" {
		return reject("the installed copy does not match its original: " + reason)
	}
	return false, nil
}

// check is how a result is compared with its original.
type check struct {
	probe  func(ctx context.Context, path string) (media.Info, error)
	verify func(ctx context.Context, in media.Info, output string) (media.Info, error)
}

var (
	// fullCheck probes with ffprobe and decodes the whole result.
	fullCheck = check{probe: media.Probe, verify: media.Verify}
	// streamsCheck reads both files' boxes and compares streams and
	// durations; no decode.
	streamsCheck = check{probe: media.ProbeFast, verify: media.VerifyStreams}
)

// checkFor picks the check for obj: the full one, unless VERIFY_DECODE is
// auto and the result is one hevc-processor decoded itself.
func (d *Downloader) checkFor(obj storage.Object, orig string) check {
	if d.Cfg.VerifyDecode != VerifyAlways && trustedResult(obj, orig) {
		return streamsCheck
	}
	return fullCheck
}

// trustedResult reports whether hevc-processor already decoded exactly
// these bytes in full. The processor commits a DONE/ object only after its
// verification of that output passed: the same streams and duration as
// its input, and every video and audio packet decoded without an error.
// It stores the object with the output's SHA-256 (sha256, checked by the
// store on upload) and the input's duration (duration). The downloader
// checks the SHA-256 on every byte it receives, so when both records are
// there a second decode here would decode identical bytes again: it costs
// as much CPU as the processor's and cannot find anything new. The
// processor compared the output with the TODO/ object whose SHA-256 it
// recorded as source-sha256, which confirmOriginal matches against this
// original. An object without these records (not written by our
// processor) is decoded in full. The streams and the duration are compared
// with the original either way (streamsCheck), which costs no decode.
func trustedResult(obj storage.Object, orig string) bool {
	if obj.SHA256 == "" {
		return false
	}
	if d, err := strconv.ParseFloat(obj.Metadata[storage.MetaDuration], 64); err != nil || d <= 0 {
		return false
	}
	return orig == "" || obj.Metadata[storage.MetaSourceSHA] != ""
}

// verifyAlone checks a result whose original is gone: it must be a
// decodable HEVC video and, when the processor recorded the input's
// duration, last as long. It returns a reason to reject, or an error
// worth retrying.
func verifyAlone(ctx context.Context, chk check, p string, obj storage.Object) (string, error) {
	info, err := chk.probe(ctx, p)
	if errors.Is(err, media.ErrBadInput) {
		return "result is not a readable video: " + err.Error(), nil
	}
	if err != nil {
		return "", err
	}
	if !info.IsHEVC() {
		v, _ := info.MainVideo()
		return fmt.Sprintf("result is %s, not HEVC", v.Codec), nil
	}
	if want, err := strconv.ParseFloat(obj.Metadata[storage.MetaDuration], 64); err == nil && want > 0 {
		if diff, tol := math.Abs(info.Duration-want), math.Max(0.5, 0.01*want); diff > tol {
			return fmt.Sprintf("result lasts %.2fs, its input lasted %.2fs", info.Duration, want), nil
		}
	}
	return "", nil
}
