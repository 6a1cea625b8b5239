package dispatcher

import (
	"context"
	"errors"
	"fmt"

	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// deleteEncodedTodo deletes the TODO/ object key whose result doneKey
// exists, but only the version that result was made from: the result
// records its source's SHA-256, and the TODO/ object is deleted only while
// it still has it (storage.DeleteIfSHA256). newer reports a TODO/ object
// put after that result was made (the original saved again): it is kept,
// for the caller to dispatch. A result without the record (an older
// processor's) deletes as before.
func (d *Dispatcher) deleteEncodedTodo(ctx context.Context, key, doneKey string) (newer bool, err error) {
	done, err := d.Store.Head(ctx, doneKey)
	if errors.Is(err, storage.ErrNotFound) {
		return true, nil // gone meanwhile (installed): nothing says this one was encoded
	}
	if err != nil {
		return false, fmt.Errorf("head %s: %w", doneKey, err)
	}
	src := done.Metadata[storage.MetaSourceSHA]
	if src == "" {
		return false, d.Store.Delete(ctx, key)
	}
	err = storage.DeleteIfSHA256(ctx, d.Store, key, src)
	if errors.Is(err, storage.ErrChanged) {
		return true, nil
	}
	return false, err
}
