package davtest

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Rclone is `rclone serve webdav` serving Root with --baseurl
// /remote.php/dav/files, so that Root/<user>/… is at
// <URL>/remote.php/dav/files/<user>/… like Nextcloud. Every user in the
// htpasswd file can read every folder (rclone has no per-user roots), which
// is enough for the happy path.
type Rclone struct {
	Root string
	URL  string
	cmd  *exec.Cmd
	done chan error
}

// RcloneBin is the rclone executable; an error names it when missing.
func RcloneBin() (string, error) {
	p, err := exec.LookPath("rclone")
	if err != nil {
		return "", fmt.Errorf("rclone not found on PATH (apt-get install -y rclone): %w", err)
	}
	return p, nil
}

// StartRclone starts the server and waits until it answers.
func StartRclone(ctx context.Context, root string, users map[string]string) (*Rclone, error) {
	bin, err := RcloneBin()
	if err != nil {
		return nil, err
	}
	var ht strings.Builder
	for u, p := range users {
		if err := os.MkdirAll(filepath.Join(root, u), 0o755); err != nil {
			return nil, err
		}
		sum := sha1.Sum([]byte(p))
		fmt.Fprintf(&ht, "%s:{SHA}%s\n", u, base64.StdEncoding.EncodeToString(sum[:]))
	}
	htpasswd := filepath.Join(filepath.Dir(filepath.Clean(root)), filepath.Base(root)+".htpasswd")
	if err := os.WriteFile(htpasswd, []byte(ht.String()), 0o600); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "serve", "webdav", root, "--addr", addr, "--baseurl", "/remote.php/dav/files",
		"--htpasswd", htpasswd, "--config", "/dev/null", "--log-level", "ERROR")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start rclone serve webdav: %w", err)
	}
	r := &Rclone{Root: root, URL: "http://" + addr, cmd: cmd, done: make(chan error, 1)}
	go func() { r.done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, "OPTIONS", r.URL+"/remote.php/dav/files/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return r, nil
		}
		select {
		case err := <-r.done:
			return nil, fmt.Errorf("rclone serve webdav exited: %v", err)
		case <-ctx.Done():
			r.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Close()
			return nil, fmt.Errorf("rclone serve webdav on %s did not answer within 30s", addr)
		}
	}
}

// Close stops the server.
func (r *Rclone) Close() {
	if r.cmd.Process != nil {
		r.cmd.Process.Signal(os.Interrupt)
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			r.cmd.Process.Kill()
			<-r.done
		}
	}
}
