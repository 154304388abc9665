package replay

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recall-rl/recall/table"
)

// Errors returned by the server's API and, mapped back from gRPC status
// codes, by the client. Test with errors.Is.
var (
	// ErrTableNotFound: the named table does not exist (NotFound).
	ErrTableNotFound = errors.New("replay: table not found")
	// ErrInvalidArgument: a bad priority, an empty or inconsistent request,
	// a chunk referenced but never sent, a malformed message
	// (InvalidArgument).
	ErrInvalidArgument = errors.New("replay: invalid argument")
	// ErrRateLimiterTimeout: a rate-limiter wait on the server passed the
	// timeout the client set for it (DeadlineExceeded, marked as a
	// limiter timeout). Errors that match it also match
	// context.DeadlineExceeded; a deadline of the caller's own context
	// matches context.DeadlineExceeded only.
	ErrRateLimiterTimeout = errors.New("replay: rate limiter timeout")
	// ErrUnavailable: the server is shutting down or cannot be reached
	// (Unavailable).
	ErrUnavailable = errors.New("replay: server unavailable")
	// ErrUnauthenticated: the auth token is missing or wrong
	// (Unauthenticated).
	ErrUnauthenticated = errors.New("replay: unauthenticated")
	// ErrUnimplemented: the server does not support the call
	// (Unimplemented).
	ErrUnimplemented = errors.New("replay: unimplemented")
	// ErrResourceExhausted: a request exceeded a server limit, such as the
	// unreleased chunk data an insert stream may hold (ResourceExhausted).
	ErrResourceExhausted = errors.New("replay: resource exhausted")
	// ErrClosed: the client or writer was closed.
	ErrClosed = errors.New("replay: closed")
)

// A DeadlineExceeded status that comes from a rate-limiter wait carries an
// ErrorInfo detail with this reason, so that the client can tell it from a
// deadline of its own (the caller's context, which gRPC reports with the
// same code).
const (
	errorDomain              = "recall.replay"
	rateLimiterTimeoutReason = "RATE_LIMITER_TIMEOUT"
)

// rateLimiterTimeoutStatus is the status of a rate-limiter wait that passed
// its deadline.
func rateLimiterTimeoutStatus(err error) error {
	st := status.New(codes.DeadlineExceeded, err.Error())
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: rateLimiterTimeoutReason, Domain: errorDomain}); derr == nil {
		st = d
	}
	return st.Err()
}

// isRateLimiterTimeout reports whether st was made by
// rateLimiterTimeoutStatus.
func isRateLimiterTimeout(st *status.Status) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == errorDomain && info.GetReason() == rateLimiterTimeoutReason {
			return true
		}
	}
	return false
}

// errShuttingDown is the cancel cause of handler contexts when the server
// drains.
var errShuttingDown = errors.New("replay: server shutting down")

// toStatus converts an error from the table layer or from parsing into a
// gRPC status error. This is the only place errors become status codes.
func toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case errors.Is(err, ErrTableNotFound):
		return status.Error(codes.NotFound, msg)
	case errors.Is(err, errMalformed), errors.Is(err, ErrInvalidArgument),
		errors.Is(err, table.ErrInvalidPriority), errors.Is(err, table.ErrInvalidItem),
		errors.Is(err, table.ErrSignatureMismatch), errors.Is(err, table.ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, msg)
	case errors.Is(err, table.ErrClosed), errors.Is(err, errShuttingDown):
		return status.Error(codes.Unavailable, "replay: server shutting down: "+msg)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, msg)
	case errors.Is(err, context.Canceled):
		if ctx != nil && errors.Is(context.Cause(ctx), errShuttingDown) {
			return status.Error(codes.Unavailable, "replay: server shutting down")
		}
		return status.Error(codes.Canceled, msg)
	case errors.Is(err, ErrUnimplemented):
		return status.Error(codes.Unimplemented, msg)
	case errors.Is(err, ErrResourceExhausted):
		return status.Error(codes.ResourceExhausted, msg)
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, msg)
}

// fromStatus converts a gRPC error received by the client back into an
// error that matches this package's sentinels (and keeps the status, so
// status.Code still works on it).
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var sentinel error
	switch st.Code() {
	case codes.NotFound:
		sentinel = ErrTableNotFound
	case codes.InvalidArgument:
		sentinel = ErrInvalidArgument
	case codes.DeadlineExceeded:
		if isRateLimiterTimeout(st) {
			return &statusError{st: st, sentinels: []error{ErrRateLimiterTimeout, context.DeadlineExceeded}}
		}
		sentinel = context.DeadlineExceeded
	case codes.Unavailable:
		sentinel = ErrUnavailable
	case codes.Unauthenticated:
		sentinel = ErrUnauthenticated
	case codes.Unimplemented:
		sentinel = ErrUnimplemented
	case codes.ResourceExhausted:
		sentinel = ErrResourceExhausted
	case codes.Canceled:
		sentinel = context.Canceled
	default:
		return err
	}
	return &statusError{st: st, sentinels: []error{sentinel}}
}

// statusError is a status received from the server together with the
// sentinels it maps to.
type statusError struct {
	st        *status.Status
	sentinels []error
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s (%s)", e.st.Message(), e.st.Code())
}

// Is matches the mapped sentinels.
func (e *statusError) Is(target error) bool {
	for _, s := range e.sentinels {
		if target == s {
			return true
		}
	}
	return false
}

// GRPCStatus lets status.FromError and status.Code see the original status.
func (e *statusError) GRPCStatus() *status.Status { return e.st }
