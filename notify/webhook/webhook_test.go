package webhook

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_795_000_000, 0)
	body := []byte(`{"event":"ticket.opened"}`)
	const secret = "s3cret-0123456789"
	headers := func(ts int64, sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		if sig != "" {
			h.Set(HeaderSignature, sig)
		}
		return h
	}
	good := Sign(secret, now.Unix(), body)
	require.Regexp(t, `^sha256=[0-9a-f]{64}$`, good)
	for _, tc := range []struct {
		name string
		h    http.Header
		body []byte
		want error
	}{
		{"good", headers(now.Unix(), good), body, nil},
		{"tampered body", headers(now.Unix(), good), []byte(`{"event":"ticket.resolved"}`), ErrBadSignature},
		{"other secret", headers(now.Unix(), Sign("another-secret-000", now.Unix(), body)), body, ErrBadSignature},
		{"timestamp moved", headers(now.Unix()-1, good), body, ErrBadSignature},
		{"stale", headers(now.Unix()-600, Sign(secret, now.Unix()-600, body)), body, ErrStale},
		{"unsigned", headers(now.Unix(), ""), body, ErrNoSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(secret, tc.h, tc.body, now, 5*time.Minute)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
}
