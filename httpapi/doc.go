// Package httpapi serves Forewarn over HTTP with chi: the REST API under
// /api/v1 (bearer-token auth, JSON, errors as RFC 9457 problem+json),
// /healthz, /readyz and /metrics.
//
// It reads tickets from ticketing and never changes pipeline state itself;
// domain packages do not pick HTTP status codes: the mapping from their
// errors to status lives here, in one function (problem.go).
package httpapi
