package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/httpapi"
)

func TestThinKeepsPeaks(t *testing.T) {
	at := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	series := func(n int, spike int) []httpapi.SeriesPoint {
		pts := make([]httpapi.SeriesPoint, n)
		for i := range pts {
			pts[i] = httpapi.SeriesPoint{At: at.Add(time.Duration(i) * time.Second), Value: 10}
		}
		if spike >= 0 {
			pts[spike].Value = 99
		}
		return pts
	}
	for _, tc := range []struct {
		name       string
		pts        []httpapi.SeriesPoint
		max        int
		wantLen    int // 0: at most max
		wantValues []float64
	}{
		{"short series unchanged", series(10, -1), 600, 10, nil},
		{"long series thinned, spike kept", series(10000, 5003), 600, 0, []float64{99}},
		{"same instant", []httpapi.SeriesPoint{{At: at}, {At: at}, {At: at}, {At: at}}, 3, 3, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := thin(tc.pts, tc.max)
			if tc.wantLen > 0 {
				require.Len(t, got, tc.wantLen)
			} else {
				require.LessOrEqual(t, len(got), tc.max)
				require.Greater(t, len(got), tc.max/3)
			}
			for i := 1; i < len(got); i++ {
				require.False(t, got[i].At.Before(got[i-1].At), "time order")
			}
			for _, v := range tc.wantValues {
				found := false
				for _, p := range got {
					found = found || p.Value == v
				}
				require.True(t, found, "value %v kept", v)
			}
		})
	}
}
