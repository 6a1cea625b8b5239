package processor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/media"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// verifyAndUpload checks out against its input (media.VerifyEncoded: probe
// and a read of every packet, the video having been decoded during the
// encode; and, alongside, VerifyResult's checks, which the
// result-downloader runs too: display size, frame rate and count, and
// sampled pictures compared with the original, read from input, a path or
// the input proxy's URL) while
// uploading it to key, so that the upload costs no time of its own. The upload streams the file but withholds its end until the
// verification is over: the store commits an object only after reading to
// EOF, so DONE/ appears only for a verified output. A failed verification
// aborts the upload (nothing is committed) and is returned as is (it
// wraps media.ErrVerify when the output does not match).
func (p *Processor) verifyAndUpload(ctx context.Context, info media.Info, input string, decoded media.Decoded, out string, rb *media.Readback, key string, size int64, md map[string]string) error {
	// The SHA-256 goes into the object's metadata, which S3 fixes when a
	// multipart upload starts: hash first (a fraction of a second per
	// 100 MB), then stream.
	sum, err := fileSHA256(out)
	if err != nil {
		return fmt.Errorf("hash output: %w", err)
	}
	zerolog.Ctx(ctx).Debug().Msg("output hashed")
	f, err := os.Open(out)
	if err != nil {
		return fmt.Errorf("open output: %w", err)
	}
	defer f.Close()

	uctx, cancelUpload := context.WithCancelCause(ctx)
	defer cancelUpload(nil)
	vctx, cancelVerify := context.WithCancel(ctx)
	defer cancelVerify()
	v := &verdict{done: make(chan struct{})}
	go func() {
		defer close(v.done)
		// info is the input's probe: VerifyEncoded probes neither file again.
		var err error
		if rb != nil {
			_, err = media.VerifyReadBack(vctx, info, input, rb, decoded)
		} else {
			_, err = media.VerifyEncoded(vctx, info, input, out, decoded)
		}
		if err = redact(err, input); err != nil {
			v.err = err
			cancelUpload(err) // stop sending parts nobody will commit
			return
		}
		zerolog.Ctx(ctx).Debug().Msg("output verified")
	}()

	_, uerr := p.Store.Put(uctx, key, &gatedReader{r: f, v: v}, storage.PutOptions{Size: size, SHA256: sum, Metadata: md})
	if uerr != nil {
		cancelVerify() // the upload failed on its own: no point decoding on
	}
	<-v.done
	switch {
	case v.err != nil && (uerr == nil || !errors.Is(v.err, context.Canceled)):
		if uerr == nil {
			// Cannot happen (Put read to EOF, which waits for the verdict);
			// if an adapter ever commits early, say so loudly.
			return fmt.Errorf("%s was committed although verification failed: %w", key, v.err)
		}
		return v.err
	case uerr != nil:
		return uerr
	}
	return nil
}

// earlyProbe is the probe of a streamed input, started before the HEAD
// of the TODO/ object has answered: it needs only the key (the input
// proxy takes the size and the recorded SHA-256 from its first response,
// and input checks them against the HEAD's). It saves the HEAD's round
// trip; the HEAD still decides first (gone, empty, a configuration
// error), and a nil *earlyProbe (no streaming) probes when asked, as
// before.
type earlyProbe struct {
	px     *inputProxy
	cancel context.CancelFunc
	done   chan struct{}
	info   media.Info
	err    error
}

// probeEarly starts the probe, or returns nil when the input is not
// streamed (it must be downloaded first) or the proxy cannot start (input
// then tries again and reports it).
func (p *Processor) probeEarly(ctx context.Context, key string) *earlyProbe {
	ps, ok := p.Store.(storage.Presigner)
	if !ok || !p.Cfg.StreamInput {
		return nil
	}
	px, err := startInputProxy(ps, key, -1)
	if err != nil {
		return nil
	}
	pctx, cancel := context.WithCancel(ctx)
	e := &earlyProbe{px: px, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		e.info, e.err = media.Probe(pctx, px.URL)
	}()
	return e
}

// result is the probe's outcome (of in, probed now, for a nil e).
func (e *earlyProbe) result(ctx context.Context, in string) (media.Info, error) {
	if e == nil {
		return media.Probe(ctx, in)
	}
	<-e.done
	return e.info, e.err
}

// close stops the probe if it still runs, and the proxy (which the
// encode and the verification read through: call it when the job ends).
func (e *earlyProbe) close() {
	if e == nil {
		return
	}
	e.cancel()
	<-e.done
	e.px.Close()
}

// verifyDecoded is media.VerifyDecoded, with rb's readers when there are.
func (p *Processor) verifyDecoded(ctx context.Context, info media.Info, out string, d media.Decoded, rb *media.Readback) (media.Info, error) {
	if rb != nil {
		return rb.Verify(ctx, info, d)
	}
	return media.VerifyDecoded(ctx, info, out, d)
}

// verdict is the outcome of the verification, known once done is closed.
type verdict struct {
	done chan struct{}
	err  error
}

// gatedReader reads r; at r's EOF it waits for the verdict and returns
// EOF only when the verification passed.
type gatedReader struct {
	r io.Reader
	v *verdict
}

func (g *gatedReader) Read(b []byte) (int, error) {
	n, err := g.r.Read(b)
	if err == io.EOF {
		<-g.v.done
		if g.v.err != nil {
			return n, fmt.Errorf("output not verified: %w", g.v.err)
		}
	}
	return n, err
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// verifyFailure classifies a verification error: a mismatch is permanent
// (FAILED/), anything else (ffmpeg missing, cancelled) is retried.
func verifyFailure(rel, key string, err error) error {
	if errors.Is(err, media.ErrVerify) {
		return permanent{fmt.Errorf("encoded %s does not match its input: %w", rel, err)}
	}
	return fmt.Errorf("verify %s: %w", key, err)
}

// redact replaces a presigned input URL in err's message (ffmpeg repeats
// its input in errors): the URL is a bearer credential for the object and
// carries the task's session token. The error chain is kept.
func redact(err error, input string) error {
	if err == nil || !strings.Contains(input, "://") || !strings.Contains(err.Error(), input) {
		return err
	}
	return redacted{msg: strings.ReplaceAll(err.Error(), input, "<presigned input URL>"), err: err}
}

type redacted struct {
	msg string
	err error
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }
