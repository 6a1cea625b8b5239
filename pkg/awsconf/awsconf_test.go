package awsconf

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadDefaultsAndOverrides(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")

	cfg, err := Load(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Retryer().MaxAttempts(); got != DefaultMaxAttempts {
		t.Errorf("default attempts %d, want %d", got, DefaultMaxAttempts)
	}
	if cfg.Region != "" {
		t.Errorf("region %q from nowhere", cfg.Region)
	}

	cfg, err = Load(context.Background(), Options{Region: "eu-central-1", MaxAttempts: 2, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Retryer().MaxAttempts(); got != 2 {
		t.Errorf("attempts %d, want 2", got)
	}
	if cfg.Region != "eu-central-1" {
		t.Errorf("region %q, want eu-central-1", cfg.Region)
	}
}
