package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// deleteTodo removes the job's TODO/ object once its outcome is durable,
// but only the version the job worked on (src, from its HEAD): one put
// again while the job ran (the original saved anew and uploaded) stays for
// its own job. Objects without a recorded SHA-256 are deleted as before.
func (p *Processor) deleteTodo(ctx context.Context, key string, src storage.Object, log zerolog.Logger) error {
	if src.SHA256 == "" {
		return p.Store.Delete(ctx, key)
	}
	err := storage.DeleteIfSHA256(ctx, p.Store, key, src.SHA256)
	if errors.Is(err, storage.ErrChanged) {
		log.Warn().Err(err).Msg("TODO object replaced while this job ran; kept for its own job")
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
