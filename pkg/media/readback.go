package media

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Readback is VerifyDecoded's two readers of an output (ffprobe, and the
// ffmpeg that reads every packet), started before the output exists.
// Each ffmpeg process spends about 0.1 s (as much CPU) loading its ~200
// shared libraries before it reads anything: started after the encode,
// that was most of the verification's wall time on a short clip. These
// start at the SCHED_IDLE priority (on CPU time the encode leaves idle,
// as it does while it starts and at its end) and read the output from
// a loopback URL that answers only once Release was called, when the
// encoder has written and closed it; they then run alongside the end of
// the live decode.
type Readback struct {
	output string
	url    string
	open   chan struct{}
	once   sync.Once
	srv    *http.Server
	served chan struct{}
	cancel context.CancelFunc

	probed   chan struct{}
	info     Info
	probeErr error

	read    chan struct{}
	packets int64
	readErr error
}

// StartReadback starts the readers of output (a local path). Call Release
// once output is complete, then Verify; Close in any case.
func StartReadback(ctx context.Context, output string) (*Readback, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("read back %s: %w", output, err)
	}
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	path := "/" + hex.EncodeToString(rnd[:]) + "/output.mp4"
	rctx, cancel := context.WithCancel(ctx)
	rb := &Readback{
		output: output, url: "http://" + ln.Addr().String() + path, open: make(chan struct{}),
		served: make(chan struct{}), cancel: cancel, probed: make(chan struct{}), read: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc(path, rb.serve)
	rb.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		defer close(rb.served)
		_ = rb.srv.Serve(ln)
	}()

	go func() {
		defer close(rb.probed)
		rb.info, rb.probeErr = probeWith(rctx, rb.url, startIdle)
	}()
	cmd := exec.CommandContext(rctx, "ffmpeg", readBackArgs(rb.url)...)
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err == nil {
		err = startIdle(cmd)
	}
	if err != nil {
		close(rb.read)
		rb.Close()
		return nil, fmt.Errorf("read back %s: %w", output, err)
	}
	go func() {
		defer close(rb.read)
		rb.packets = lastFrame(stdout)
		werr := cmd.Wait()
		rb.readErr = checkVerdict(rctx, output, "read back", werr, rb.local(oneLine(stderr.String())))
	}()
	return rb, nil
}

// serve answers the readers' requests (ranges included) once released.
func (rb *Readback) serve(w http.ResponseWriter, r *http.Request) {
	select {
	case <-rb.open:
	case <-r.Context().Done():
		return
	}
	f, err := os.Open(rb.output)
	if err != nil {
		http.Error(w, "output: "+err.Error(), http.StatusNotFound)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.ServeContent(w, r, "output.mp4", st.ModTime(), f)
}

// Release lets the readers read: output is complete.
func (rb *Readback) Release() { rb.once.Do(func() { close(rb.open) }) }

// Verify releases the readers and returns VerifyDecoded's verdict on
// output against in and d (the live decode's frame count).
func (rb *Readback) Verify(ctx context.Context, in Info, d Decoded) (Info, error) {
	rb.Release()
	select {
	case <-rb.probed:
	case <-ctx.Done():
		return Info{}, fmt.Errorf("verify %s: %w", rb.output, ctx.Err())
	}
	out, perr := rb.info, rb.probeErr
	out.Path = rb.output
	if perr == nil {
		out, perr = checkProbed(in, out, rb.output)
	} else {
		perr = probeFailure(rb.output, rb.localErr(perr))
	}
	if perr != nil {
		rb.cancel()
		<-rb.read
		return out, perr
	}
	<-rb.read
	if rb.readErr != nil {
		return out, rb.readErr
	}
	if rb.packets != d.Frames {
		return out, fmt.Errorf("%w: %s holds %d video packets, the encoder's stream decoded to %d frames", ErrVerify, rb.output, rb.packets, d.Frames)
	}
	return out, nil
}

// Close stops the readers (if they still run) and the server.
func (rb *Readback) Close() {
	rb.cancel()
	<-rb.probed
	<-rb.read
	_ = rb.srv.Close()
	<-rb.served
}

// local names the output instead of the loopback URL in ffmpeg's messages.
func (rb *Readback) local(msg string) string { return strings.ReplaceAll(msg, rb.url, rb.output) }

func (rb *Readback) localErr(err error) error {
	if err == nil || !strings.Contains(err.Error(), rb.url) {
		return err
	}
	return redactedErr{msg: rb.local(err.Error()), err: err}
}

type redactedErr struct {
	msg string
	err error
}

func (r redactedErr) Error() string { return r.msg }
func (r redactedErr) Unwrap() error { return r.err }
