// Package awserr sorts AWS errors (S3, SQS, ECS, and the SDK's own) into
// the kinds a service acts on: our own configuration is wrong (bucket,
// queue, credentials, permissions), the service cannot be reached, or
// anything else. Configuration errors never mean "already done" and are
// never worth retrying silently; see Watchdog for the long-running loops.
package awserr

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Kind is what an error says about the cause.
type Kind int

// Kinds, from the most specific.
const (
	Other Kind = iota
	// Signature: the secret key does not match the access key
	// (SignatureDoesNotMatch, IncompleteSignature).
	Signature
	// AccessKey: the access key is unknown (InvalidAccessKeyId,
	// InvalidClientTokenId, UnrecognizedClientException).
	AccessKey
	// Token: the session token expired or is invalid (ExpiredToken,
	// InvalidToken, TokenRefreshRequired).
	Token
	// Clock: the request's time is too far from the server's
	// (RequestTimeTooSkewed, RequestExpired, SignatureExpired).
	Clock
	// Denied: the credentials are known but not allowed (AccessDenied,
	// AccessDeniedException, HTTP 403 without a code).
	Denied
	// NoCredentials: no credentials were found at all.
	NoCredentials
	// NoBucket: the bucket does not exist (NoSuchBucket, InvalidBucketName).
	NoBucket
	// NoQueue: the queue does not exist (AWS.SimpleQueueService.NonExistentQueue, QueueDoesNotExist).
	NoQueue
	// NoCluster: the ECS cluster does not exist (ClusterNotFoundException).
	NoCluster
	// WrongRegion: the resource lives in another region
	// (PermanentRedirect, AuthorizationHeaderMalformed, HTTP 301).
	WrongRegion
	// Unreachable: no answer at all (connection refused, no such host,
	// connect timeout).
	Unreachable
)

var kindNames = map[Kind]string{
	Other: "other", Signature: "signature", AccessKey: "access key", Token: "session token",
	Clock: "clock skew", Denied: "access denied", NoCredentials: "no credentials",
	NoBucket: "no such bucket", NoQueue: "no such queue", NoCluster: "no such cluster",
	WrongRegion: "wrong region", Unreachable: "unreachable",
}

func (k Kind) String() string { return kindNames[k] }

// Config reports whether k is our own configuration's fault: retrying the
// same request cannot help until someone changes a setting.
func (k Kind) Config() bool {
	switch k {
	case Signature, AccessKey, Token, Clock, Denied, NoCredentials, NoBucket, NoQueue, NoCluster, WrongRegion:
		return true
	}
	return false
}

// Auth reports whether k is about the credentials (the watchdog's business).
func (k Kind) Auth() bool {
	switch k {
	case Signature, AccessKey, Token, Clock, Denied, NoCredentials:
		return true
	}
	return false
}

var codes = map[string]Kind{
	"SignatureDoesNotMatch":                          Signature,
	"IncompleteSignature":                            Signature,
	"IncompleteSignatureException":                   Signature,
	"InvalidSignatureException":                      Signature,
	"InvalidAccessKeyId":                             AccessKey,
	"InvalidClientTokenId":                           AccessKey,
	"UnrecognizedClientException":                    AccessKey,
	"MissingAuthenticationToken":                     AccessKey,
	"MissingAuthenticationTokenException":            AccessKey,
	"ExpiredToken":                                   Token,
	"ExpiredTokenException":                          Token,
	"InvalidToken":                                   Token,
	"TokenRefreshRequired":                           Token,
	"RequestTimeTooSkewed":                           Clock,
	"RequestExpired":                                 Clock,
	"SignatureExpired":                               Clock,
	"AccessDenied":                                   Denied,
	"AccessDeniedException":                          Denied,
	"AllAccessDisabled":                              Denied,
	"InvalidSecurity":                                Denied,
	"KMS.AccessDeniedException":                      Denied,
	"NoSuchBucket":                                   NoBucket,
	"InvalidBucketName":                              NoBucket,
	"AWS.SimpleQueueService.NonExistentQueue":        NoQueue,
	"QueueDoesNotExist":                              NoQueue,
	"ClusterNotFoundException":                       NoCluster,
	"PermanentRedirect":                              WrongRegion,
	"AuthorizationHeaderMalformed":                   WrongRegion,
	"IllegalLocationConstraintException":             WrongRegion,
	"AWS.SimpleQueueService.InvalidRegion":           WrongRegion,
	"com.amazonaws.sqs#QueueDoesNotExist":            NoQueue,
	"com.amazonaws.sqs#InvalidSecurity":              Denied,
	"com.amazon.coral.service#AccessDeniedException": Denied,
}

// Code is the service's error code ("" when there is none, e.g. a HEAD
// request's error, which has no body).
func Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// Status is the HTTP status of the response, 0 without one.
func Status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// Classify sorts err. nil and context errors are Other.
func Classify(err error) Kind {
	if err == nil || errors.Is(err, context.Canceled) {
		return Other
	}
	if k, ok := codes[Code(err)]; ok {
		return k
	}
	if errors.Is(err, ErrNoCredentials) || noCredentials(err) {
		return NoCredentials
	}
	switch Status(err) {
	case http.StatusForbidden:
		// HEAD answers have no body and so no code.
		return Denied
	case http.StatusMovedPermanently:
		return WrongRegion
	}
	if unreachable(err) {
		return Unreachable
	}
	return Other
}

// IsConfig reports whether err is our own configuration's fault.
func IsConfig(err error) bool { return Classify(err).Config() }

// ErrNoCredentials is what a credentials lookup that found nothing wraps.
var ErrNoCredentials = errors.New("no AWS credentials found")

// noCredentials recognises the SDK's "no credentials in the chain" errors,
// which have no type of their own.
func noCredentials(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to retrieve credentials") ||
		strings.Contains(msg, "failed to refresh cached credentials") ||
		strings.Contains(msg, "static credentials are empty") ||
		strings.Contains(msg, "get credentials:") ||
		strings.Contains(msg, "anonymous credentials")
}

func unreachable(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
