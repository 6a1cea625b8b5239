package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// HealthcheckUsage documents the healthcheck subcommand of the services.
const HealthcheckUsage = `healthcheck: GET http://127.0.0.1<METRICS_ADDR>/healthz and exit 0 when it
answers 200, 1 otherwise (the images' HEALTHCHECK runs it: they have no curl).
With METRICS_ADDR empty nothing is served: it says so and exits 0, so that a
container whose metrics were turned off is not reported unhealthy.`

// Healthcheck asks the service listening on addr (METRICS_ADDR) for its
// health and prints the answer to out. nil: healthy, or addr is empty.
func Healthcheck(ctx context.Context, addr string, out io.Writer) error {
	if addr == "" {
		fmt.Fprintln(out, "METRICS_ADDR is empty: no health endpoint to ask; reporting healthy")
		return nil
	}
	hp, err := probeAddr(addr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := "http://" + hp + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy (%s): %s", resp.Status, msg)
	}
	fmt.Fprintln(out, msg)
	return nil
}
