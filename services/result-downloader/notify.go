package main

import (
	"context"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/notify"
)

// How long the end waits for notifications still queued (NOTIFY_URL): a
// receiver that is down never holds the end up longer. The service stops
// within a container's usual stop timeout; `process` is run by hand.
const (
	serviceNotifyGrace = 3 * time.Second
	processNotifyGrace = 10 * time.Second
)

// closeNotify flushes n with a deadline, even after SIGTERM; what is not
// delivered by then was logged.
func closeNotify(ctx context.Context, n *notify.Notifier, grace time.Duration) {
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	_ = n.Close(nctx)
}
