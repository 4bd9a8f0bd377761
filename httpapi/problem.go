package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/forewarn/forewarn/ticketing"
)

// problem is an RFC 9457 problem details object.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{
		Type:     "about:blank", // RFC 9457 section 4.2.1: the title is the status phrase
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: r.URL.Path,
	})
}

// Errors of this package's own making, mapped by writeError like the
// domain's.
var (
	errUnauthorized = errors.New("a valid bearer token is required")
	errForbidden    = errors.New("forbidden")
	errBadRequest   = errors.New("bad request")
)

// errorStatus maps an error to its HTTP status and the detail a client
// may see: the one place that does, for the API (problem+json) and the
// console (HTML). Unexpected errors are 500 and their text is kept from
// the client (internal is true: the caller logs it).
func errorStatus(err error) (status int, detail string, internal bool) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, err.Error(), false
	case errors.Is(err, errForbidden):
		return http.StatusForbidden, err.Error(), false
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "request body larger than the limit of " + itoa(tooLarge.Limit) + " bytes", false
	case errors.Is(err, ticketing.ErrNotFound):
		return http.StatusNotFound, err.Error(), false
	case errors.Is(err, ticketing.ErrConflict):
		return http.StatusConflict, err.Error(), false
	case errors.Is(err, ticketing.ErrInvalidArgument), errors.Is(err, errBadRequest):
		return http.StatusBadRequest, err.Error(), false
	}
	return http.StatusInternalServerError, "internal error; see the server log", true
}

// writeError answers err as problem+json with its status (errorStatus).
func writeError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	status, detail, internal := errorStatus(err)
	if internal {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="forewarn"`)
	}
	writeProblem(w, r, status, detail)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
