package notify

import (
	"errors"
	"fmt"
	"time"
)

// A DeliveryError is a failed delivery, sorted for the dispatcher: a
// retryable one is tried again on the same channel after a backoff (or
// RetryAfter, when the receiver asked), a permanent one moves to the next
// channel (AM notify/util.go Retrier; TG ThrottleError).
type DeliveryError struct {
	Retryable  bool
	RetryAfter time.Duration // 0: the dispatcher's backoff
	StatusCode int           // HTTP or SMTP status, 0 when none
	Err        error
}

func (e *DeliveryError) Error() string {
	kind := "permanent"
	if e.Retryable {
		kind = "retryable"
	}
	if e.StatusCode != 0 {
		return fmt.Sprintf("%s (status %d): %v", kind, e.StatusCode, e.Err)
	}
	return fmt.Sprintf("%s: %v", kind, e.Err)
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Retryable marks err as temporary.
func Retryable(err error, status int, after time.Duration) error {
	return &DeliveryError{Retryable: true, StatusCode: status, RetryAfter: after, Err: err}
}

// Permanent marks err as permanent for this channel.
func Permanent(err error, status int) error {
	return &DeliveryError{StatusCode: status, Err: err}
}

// classify reads a Sender's error: an unmarked error counts as retryable
// (a network failure, a timeout).
func classify(err error) (retryable bool, after time.Duration, status int) {
	if de, ok := errors.AsType[*DeliveryError](err); ok {
		return de.Retryable, de.RetryAfter, de.StatusCode
	}
	return true, 0, 0
}
