// Package awsconf loads the AWS SDK configuration the same way for every
// adapter (S3, SQS, ECS): credentials and region from the standard chain
// (environment, profile, ECS task role), and the SDK's standard retryer,
// which backs off on throttling, 5xx and network errors, with our limits.
// Start-up checks (adapters.Preflight) use MaxAttempts 1 under their own
// short deadline instead: a refused connection or a wrong bucket must end
// the service in seconds, not after the retryer's backoff.
package awsconf

import (
	"context"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
)

// DefaultMaxAttempts is the standard retryer's attempts per request.
const DefaultMaxAttempts = 5

// ResponseHeaderTimeout bounds the wait for a response's headers once the
// request is sent: a peer that accepted the connection and went silent (a
// restart, a half-open connection behind a NAT) would otherwise hold a
// request, and the loop behind it, forever without a word. It is well
// above SQS's 20 s long poll, and S3 answers a large CompleteMultipartUpload
// or CopyObject with its headers first.
const ResponseHeaderTimeout = 2 * time.Minute

// NewHTTPClient is the SDK's HTTP client with ResponseHeaderTimeout, and
// tune applied to its transport (may be nil).
func NewHTTPClient(tune func(*http.Transport)) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.ResponseHeaderTimeout = ResponseHeaderTimeout
		if tune != nil {
			tune(t)
		}
	})
}

// Options are what the adapters set on top of the standard chain.
type Options struct {
	Region      string        // "" leaves it to the chain (AWS_REGION, profile)
	MaxAttempts int           // attempts per request; <= 0 means DefaultMaxAttempts
	MaxBackoff  time.Duration // cap on the delay between attempts; <= 0 means the SDK's 20 s
	HTTPClient  aws.HTTPClient
}

// Load returns the SDK configuration for o. The region may still be empty:
// each adapter knows where else to find it (a queue URL, a task ARN) or
// whether a custom endpoint makes any region do.
func Load(ctx context.Context, o Options) (aws.Config, error) {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = retry.DefaultMaxBackoff
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.MaxAttempts
				so.MaxBackoff = o.MaxBackoff
			})
		}),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.HTTPClient == nil {
		o.HTTPClient = NewHTTPClient(nil)
	}
	opts = append(opts, config.WithHTTPClient(o.HTTPClient))
	return config.LoadDefaultConfig(ctx, opts...)
}
