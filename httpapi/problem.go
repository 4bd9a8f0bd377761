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

// writeError maps an error to its HTTP status: the one place that does.
// Unexpected errors are logged and their text kept from the client.
func writeError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, errUnauthorized):
		w.Header().Set("WWW-Authenticate", `Bearer realm="forewarn"`)
		writeProblem(w, r, http.StatusUnauthorized, err.Error())
	case errors.Is(err, errForbidden):
		writeProblem(w, r, http.StatusForbidden, err.Error())
	case errors.As(err, &tooLarge):
		writeProblem(w, r, http.StatusRequestEntityTooLarge, "request body larger than the limit of "+itoa(tooLarge.Limit)+" bytes")
	case errors.Is(err, ticketing.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, err.Error())
	case errors.Is(err, ticketing.ErrConflict):
		writeProblem(w, r, http.StatusConflict, err.Error())
	case errors.Is(err, ticketing.ErrInvalidArgument), errors.Is(err, errBadRequest):
		writeProblem(w, r, http.StatusBadRequest, err.Error())
	default:
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, r, http.StatusInternalServerError, "internal error; see the server log")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
