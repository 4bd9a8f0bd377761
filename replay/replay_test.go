package replay

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/detectors"
)

func TestReadTable(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		metrics []string
		rows    int
		labels  []string
		wantErr string
	}{
		{name: "nab", in: "timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,2\n", metrics: []string{"value"}, rows: 2},
		{name: "skab with labels", in: "datetime;Pressure;Current;anomaly;changepoint\n2020-03-09 11:34:36;0.1;1;0.0;0.0\n2020-03-09 11:34:37;0.2;1;1.0;1.0\n",
			metrics: []string{"Pressure", "Current"}, rows: 2, labels: []string{"anomaly", "changepoint"}},
		{name: "rfc3339 and BOM", in: "\ufefftime,a,b\n2026-11-22T15:30:00Z,1,true\n", metrics: []string{"a", "b"}, rows: 1},
		{name: "empty cells are NaN", in: "timestamp,value\n2014-04-01 00:00:00,\n", metrics: []string{"value"}, rows: 1},
		{name: "header only", in: "timestamp,value\n", metrics: []string{"value"}, rows: 0},
		{name: "no time column", in: "when,value\n1,2\n", wantErr: "header: no timestamp, datetime or time column"},
		{name: "no metric", in: "timestamp,anomaly\n2014-04-01 00:00:00,0\n", wantErr: "header: no metric column"},
		{name: "duplicate column", in: "timestamp,v,V\n", wantErr: `header: column "V" appears twice`},
		{name: "bad timestamp names the line", in: "timestamp,value\n2014-04-01 00:00:00,1\nyesterday,2\n", wantErr: `line 3: timestamp "yesterday"`},
		{name: "wrong field count", in: "timestamp,value\n2014-04-01 00:00:00,1,3\n", wantErr: "line 2: "},
		{name: "empty input", in: "", wantErr: "read header: EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, err := ReadTable(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.metrics, tb.Metrics)
			require.Len(t, tb.Rows, tt.rows)
			for _, l := range tt.labels {
				require.Len(t, tb.Labels[l], tt.rows, l)
			}
			require.Len(t, tb.Labels, len(tt.labels))
		})
	}
}

// FuzzReadTable: bad input never crashes the reader, and a table it
// accepts is consistent.
func FuzzReadTable(f *testing.F) {
	for _, s := range []string{
		"timestamp,value\n2014-04-01 00:00:00,1.5\n",
		"datetime;a;anomaly;changepoint\n2020-03-09 11:34:36;0.1;0;1\n",
		"time,x\n2026-11-22T15:30:00Z,NaN\n",
		"timestamp,value\n\"2014-04-01 00:00:00\",\"1\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := ReadTable(bytes.NewReader(b))
		if err != nil {
			return
		}
		require.NotEmpty(t, tb.Metrics)
		require.Len(t, tb.Stamps, len(tb.Rows))
		for _, r := range tb.Rows {
			require.Len(t, r.Values, len(tb.Metrics))
			for _, v := range r.Values {
				require.False(t, math.IsInf(v, 0))
			}
		}
		for _, l := range tb.Labels {
			require.Len(t, l, len(tb.Rows))
		}
	})
}

func readFile(t *testing.T, path string) *Table {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	tb, err := ReadTable(f)
	require.NoError(t, err)
	return tb
}

func autoEngine(t *testing.T, tb *Table) *detectors.Engine {
	t.Helper()
	e, err := detectors.NewEngine(map[string]detectors.Profile{detectors.AutoModel: detectors.AutoProfile(tb.Metrics)})
	require.NoError(t, err)
	return e
}

// TestRunNoLookAhead: the result of row i does not depend on later rows,
// so replaying every prefix gives the same rows as the whole file.
func TestRunNoLookAhead(t *testing.T) {
	for _, file := range []string{"in/level_shift.csv", "in/sub/wide.csv"} {
		t.Run(file, func(t *testing.T) {
			tb := readFile(t, filepath.Join("testdata", file))
			full := Run(tb, autoEngine(t, tb), "d", detectors.AutoModel)
			require.NotEmpty(t, full.Findings, "the trace has a fault the auto profile finds")
			for _, n := range []int{1, 100, 301, 455, len(tb.Rows) - 1} {
				n = min(n, len(tb.Rows))
				prefix := *tb
				prefix.Rows, prefix.Stamps = tb.Rows[:n], tb.Stamps[:n]
				got := Run(&prefix, autoEngine(t, &prefix), "d", detectors.AutoModel)
				require.Equal(t, full.Rows[:n], got.Rows, "prefix of %d rows", n)
			}
		})
	}
}

// TestRunLabelsNeverReachDetectors: changing the label columns changes
// nothing.
func TestRunLabelsNeverReachDetectors(t *testing.T) {
	tb := readFile(t, "testdata/in/sub/wide.csv")
	a := Run(tb, autoEngine(t, tb), "d", detectors.AutoModel)
	for _, l := range tb.Labels {
		for i := range l {
			l[i] = 1 - l[i]
		}
	}
	b := Run(tb, autoEngine(t, tb), "d", detectors.AutoModel)
	require.Equal(t, a, b)
	require.Equal(t, []string{"Pressure", "Current"}, tb.Metrics)
}

func TestRunScores(t *testing.T) {
	tb := readFile(t, "testdata/in/level_shift.csv")
	res := Run(tb, autoEngine(t, tb), "d", detectors.AutoModel)
	raisedRows := 0
	for i, rr := range res.Rows {
		require.True(t, rr.Score >= 0 && rr.Score <= 1 && rr.Level >= 0 && rr.Level < 1, "row %d", i)
		if len(rr.Raised) > 0 {
			raisedRows++
			require.GreaterOrEqual(t, rr.Score, 0.5, "row %d", i)
		} else {
			require.Zero(t, rr.Score, "row %d", i)
		}
	}
	require.Positive(t, raisedRows)
	// The shift at row 300 (25h) is raised at once.
	require.Equal(t, []string{"value_anomaly"}, res.Rows[300].Raised)
	require.Equal(t, time.Date(2026, 1, 2, 1, 0, 0, 0, time.UTC), res.Findings[0].At)

	var out bytes.Buffer
	require.NoError(t, WriteRows(&out, tb, res))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, len(tb.Rows)+1)
	require.Equal(t, "timestamp,anomaly_score,finding", lines[0])
	require.True(t, strings.HasPrefix(lines[301], "2026-01-02 01:00:00,"), lines[301])
	require.True(t, strings.HasSuffix(lines[301], ",value_anomaly"), lines[301])
}
