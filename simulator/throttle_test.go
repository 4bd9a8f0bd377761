package simulator

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// consumer serves a Prometheus counter that advances by step per scrape.
func consumer(t *testing.T, start, step float64) (*httptest.Server, *atomic.Int64) {
	var scrapes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := scrapes.Add(1)
		fmt.Fprintf(w, "# TYPE forewarn_ingest_messages_total counter\nforewarn_ingest_messages_total{kind=\"status\"} 7\nforewarn_ingest_messages_total{kind=\"telemetry\"} %v\nother 1\n", start+float64(n-1)*step)
	}))
	t.Cleanup(srv.Close)
	return srv, &scrapes
}

func TestMetricsThrottleWaitsForTheConsumer(t *testing.T) {
	srv, scrapes := consumer(t, 1000, 10) // 1000 from earlier traffic, then 10 more per scrape
	th := &MetricsThrottle{URL: srv.URL, Window: 50}
	require.NoError(t, th.Wait(t.Context(), 0))
	require.EqualValues(t, 1, scrapes.Load(), "the first call reads the baseline")
	require.NoError(t, th.Wait(t.Context(), 50))
	require.EqualValues(t, 1, scrapes.Load(), "within the window: no scrape")
	require.NoError(t, th.Wait(t.Context(), 120))
	// 120 - consumed <= 50 needs consumed >= 70: scrapes 2..8 give 10..70.
	require.EqualValues(t, 8, scrapes.Load())
}

func TestMetricsThrottleGivesUpOnAStalledConsumer(t *testing.T) {
	srv, _ := consumer(t, 5, 0)
	th := &MetricsThrottle{URL: srv.URL, Window: 10, Stall: 50 * time.Millisecond}
	require.NoError(t, th.Wait(t.Context(), 0))
	err := th.Wait(t.Context(), 100)
	require.ErrorContains(t, err, "forewarn consumed nothing for 50ms")
}

func TestRunUsesTheThrottle(t *testing.T) {
	srv, scrapes := consumer(t, 0, 7)
	o := testOptions()
	o.Throttle = &MetricsThrottle{URL: srv.URL, Window: 20}
	rep, err := Run(t.Context(), o, &recorder{}, nil)
	require.NoError(t, err)
	require.Equal(t, 210, rep.Readings)
	require.GreaterOrEqual(t, scrapes.Load(), int64((210-20)/7))
}

func TestMetricsThrottleSendsToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprintln(w, "forewarn_ingest_messages_total 5")
	}))
	t.Cleanup(srv.Close)
	require.NoError(t, (&MetricsThrottle{URL: srv.URL, Token: "secret-token"}).Wait(t.Context(), 0))
	err := (&MetricsThrottle{URL: srv.URL}).Wait(t.Context(), 0)
	require.ErrorContains(t, err, "401")
}

func TestMetricsThrottleReadsLabelledSeries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# HELP forewarn_ingest_messages_total x\n"+
			"forewarn_ingest_messages_total{kind=\"events\"} 3\n"+
			"forewarn_ingest_messages_total{kind=\"status\"} 4\n"+
			"forewarn_ingest_messages_total{kind=\"telemetry\"} 40\n")
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		metric string
		want   float64
	}{
		{"", 40}, // the default: telemetry only
		{`forewarn_ingest_messages_total{kind="events"}`, 3},
		{"forewarn_ingest_messages_total", 47}, // bare name: every series
		{"forewarn_other_total", 0},
	}
	for _, tt := range tests {
		th := &MetricsThrottle{URL: srv.URL, Metric: tt.metric}
		require.NoError(t, th.Wait(t.Context(), 0))
		require.Equal(t, tt.want, th.base, "metric %q", tt.metric)
	}
}
