package awstest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"
)

// StopMinio stops the MinIO server (SIGTERM, then SIGKILL), as an outage
// of S3 would look to the services: connections refused until
// StartMinio.
func (e *Env) StopMinio() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.minio.stop()
}

// StartMinio starts MinIO again after StopMinio, on the same address and
// data directory, with the same notification targets (whose queue dirs
// keep the events MinIO could not deliver), and waits until it answers.
func (e *Env) StartMinio(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.minioCmd == nil {
		return fmt.Errorf("awstest: no MinIO to start again")
	}
	if !e.minio.exited() {
		return nil
	}
	old := e.minioCmd
	cmd := exec.Command(old.Path, old.Args[1:]...)
	cmd.Env = old.Env
	p, err := startProcess("minio", cmd, filepath.Join(e.dir, "minio-restarted.log"))
	if err != nil {
		return fmt.Errorf("awstest: restart minio: %w", err)
	}
	if err := waitHTTP(ctx, p, e.S3Endpoint+"/minio/health/cluster", 60*time.Second); err != nil {
		p.stop()
		return fmt.Errorf("awstest: restart minio: %w", err)
	}
	e.minio, e.minioCmd = p, cmd
	return nil
}
