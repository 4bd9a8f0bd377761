package ingest

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// received is the fixed receive time every decoder test uses.
var received = time.Date(2026, 11, 22, 15, 31, 0, 0, time.UTC)

// goldenReading is the JSON form of a Reading in testdata/*.readings.json.
type goldenReading struct {
	Device   string        `json:"device"`
	Model    string        `json:"model,omitempty"`
	Firmware string        `json:"firmware,omitempty"`
	At       time.Time     `json:"at"`
	Fields   []goldenField `json:"fields"`
}

type goldenField struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	IsBool bool    `json:"is_bool,omitempty"`
}

func toGolden(r telemetry.Reading) goldenReading {
	g := goldenReading{Device: string(r.Device), Model: r.Model, Firmware: r.Firmware, At: r.At}
	for _, f := range r.Fields {
		g.Fields = append(g.Fields, goldenField(f))
	}
	return g
}

func TestDecodeJSONGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/json/*.json")
	require.NoError(t, err)
	var payloads []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".readings.json") {
			payloads = append(payloads, f)
		}
	}
	require.NotEmpty(t, payloads)
	for _, path := range payloads {
		t.Run(filepath.Base(path), func(t *testing.T) {
			payload, err := os.ReadFile(path)
			require.NoError(t, err)
			r, err := DecodeJSON("dev-1", payload, received, DefaultLimits())
			require.NoError(t, err)
			got, err := json.MarshalIndent(toGolden(r), "", "  ")
			require.NoError(t, err)
			golden := strings.TrimSuffix(path, ".json") + ".readings.json"
			if *update {
				require.NoError(t, os.WriteFile(golden, append(got, '\n'), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./ingest -run Golden -update to create it")
			require.JSONEq(t, string(want), string(got))
		})
	}
}

// TestDecodeGolden decodes every line protocol and SenML payload under
// testdata/{lp,senml} and compares the readings with the golden file beside it.
func TestDecodeGolden(t *testing.T) {
	for _, c := range []struct {
		format Format
		glob   string
	}{{FormatLineProto, "testdata/lp/*.lp"}, {FormatSenML, "testdata/senml/*.json"}} {
		files, err := filepath.Glob(c.glob)
		require.NoError(t, err)
		var payloads []string
		for _, f := range files {
			if !strings.HasSuffix(f, ".readings.json") {
				payloads = append(payloads, f)
			}
		}
		require.NotEmpty(t, payloads)
		for _, path := range payloads {
			t.Run(string(c.format)+"/"+filepath.Base(path), func(t *testing.T) {
				payload, err := os.ReadFile(path)
				require.NoError(t, err)
				rs, err := Decode(c.format, "dev-1", payload, received, DefaultLimits())
				require.NoError(t, err)
				var gs []goldenReading
				for _, r := range rs {
					gs = append(gs, toGolden(r))
				}
				got, err := json.MarshalIndent(gs, "", "  ")
				require.NoError(t, err)
				golden := strings.TrimSuffix(path, filepath.Ext(path)) + ".readings.json"
				if *update {
					require.NoError(t, os.WriteFile(golden, append(got, '\n'), 0o644))
				}
				want, err := os.ReadFile(golden)
				require.NoError(t, err, "run go test ./ingest -run Golden -update to create it")
				require.JSONEq(t, string(want), string(got))
			})
		}
	}
}

func TestDecodeJSONValues(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		at      time.Time
		fields  []telemetry.Field
	}{
		{
			name:    "rfc3339 with offset becomes UTC",
			payload: `{"ts":"2026-11-22T16:30:00+01:00","metrics":{"t":1.5}}`,
			at:      time.Date(2026, 11, 22, 15, 30, 0, 0, time.UTC),
			fields:  []telemetry.Field{{Name: "t", Value: 1.5}},
		},
		{
			name:    "epoch seconds",
			payload: `{"ts":1795361400,"metrics":{"t":1}}`,
			at:      time.Unix(1795361400, 0).UTC(),
			fields:  []telemetry.Field{{Name: "t", Value: 1}},
		},
		{
			name:    "epoch milliseconds",
			payload: `{"ts":1795361400123,"metrics":{"t":1}}`,
			at:      time.UnixMilli(1795361400123).UTC(),
			fields:  []telemetry.Field{{Name: "t", Value: 1}},
		},
		{
			name:    "epoch microseconds",
			payload: `{"ts":1795361400123456,"metrics":{"t":1}}`,
			at:      time.UnixMicro(1795361400123456).UTC(),
			fields:  []telemetry.Field{{Name: "t", Value: 1}},
		},
		{
			name:    "epoch nanoseconds exact",
			payload: `{"ts":1795361400123456789,"metrics":{"t":1}}`,
			at:      time.Unix(0, 1795361400123456789).UTC(),
			fields:  []telemetry.Field{{Name: "t", Value: 1}},
		},
		{
			name:    "no ts is receive time",
			payload: `{"metrics":{"t":1}}`,
			at:      received,
			fields:  []telemetry.Field{{Name: "t", Value: 1}},
		},
		{
			name:    "booleans and sorting",
			payload: `{"metrics":{"z":true,"a":false,"m":-0.25}}`,
			at:      received,
			fields:  []telemetry.Field{{Name: "a", Value: 0, IsBool: true}, {Name: "m", Value: -0.25}, {Name: "z", Value: 1, IsBool: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeJSON("dev-1", []byte(tt.payload), received, DefaultLimits())
			require.NoError(t, err)
			require.Equal(t, tt.at, r.At)
			require.Equal(t, tt.fields, r.Fields)
		})
	}
}

func TestDecodeJSONRejects(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxMetrics = 3
	lim.MaxAge = 24 * time.Hour
	tests := []struct {
		name    string
		payload string
		reason  Reason
		msg     string
	}{
		{"not json", `hello`, ReasonMalformed, "not a JSON object"},
		{"array", `[1,2]`, ReasonMalformed, "not a JSON object"},
		{"empty", ``, ReasonMalformed, "not a JSON object"},
		{"truncated", `{"metrics":{"t":1}`, ReasonMalformed, "invalid JSON"},
		{"bare NaN", `{"metrics":{"t":NaN}}`, ReasonMalformed, "invalid JSON"},
		{"string value", `{"metrics":{"t":"12.5"}}`, ReasonBadType, `metric "t": want a number or a boolean`},
		{"string NaN", `{"metrics":{"t":"NaN"}}`, ReasonBadType, `metric "t"`},
		{"null value", `{"metrics":{"t":null}}`, ReasonBadType, `metric "t"`},
		{"object value", `{"metrics":{"t":{"v":1}}}`, ReasonBadType, `metric "t"`},
		{"overflow", `{"metrics":{"t":1e999}}`, ReasonNonFinite, "not a finite float64"},
		{"metrics not object", `{"metrics":[1]}`, ReasonBadType, "metrics"},
		{"model not string", `{"model":3,"metrics":{"t":1}}`, ReasonBadType, "model: want a string"},
		{"model with slash", `{"model":"a/b","metrics":{"t":1}}`, ReasonBadAttribute, "model"},
		{"fw control char", `{"fw":"1.0\n","metrics":{"t":1}}`, ReasonBadAttribute, "control"},
		{"empty metrics", `{"metrics":{}}`, ReasonNoMetrics, "missing or empty"},
		{"no metrics", `{"ts":"2026-11-22T15:30:00Z"}`, ReasonNoMetrics, "missing or empty"},
		{"too many metrics", `{"metrics":{"a":1,"b":2,"c":3,"d":4}}`, ReasonTooManyMetrics, "4 metrics, limit 3"},
		{"empty metric name", `{"metrics":{"":1}}`, ReasonBadMetricName, "want 1 to 128"},
		{"reserved metric name", `{"metrics":{"_time":1}}`, ReasonBadMetricName, "must not start with '_'"},
		{"space in metric name", `{"metrics":{"a b":1}}`, ReasonBadMetricName, "not in"},
		{"long metric name", `{"metrics":{"` + strings.Repeat("m", 129) + `":1}}`, ReasonBadMetricName, "want 1 to 128"},
		{"bad ts string", `{"ts":"yesterday","metrics":{"t":1}}`, ReasonBadTimestamp, "not RFC 3339"},
		{"bad ts type", `{"ts":true,"metrics":{"t":1}}`, ReasonBadTimestamp, "want an RFC 3339 string"},
		{"zero ts", `{"ts":0,"metrics":{"t":1}}`, ReasonBadTimestamp, "not a plausible"},
		{"negative ts", `{"ts":-5,"metrics":{"t":1}}`, ReasonBadTimestamp, "not a plausible"},
		{"future ts", `{"ts":"2026-11-22T16:31:00Z","metrics":{"t":1}}`, ReasonFutureTS, "ahead of the receive time"},
		{"stale ts", `{"ts":"2026-11-20T15:30:00Z","metrics":{"t":1}}`, ReasonStaleTS, "older than max_age"},
		{"other device", `{"device_id":"dev-2","metrics":{"t":1}}`, ReasonDeviceMismatch, `payload device_id "dev-2"`},
		{"too large", `{"metrics":{"t":1},"pad":"` + strings.Repeat("x", 70000) + `"}`, ReasonTooLarge, "limit 65536"},
		{"seq zero", `{"seq":0,"metrics":{"t":1}}`, ReasonBadType, "seq"},
		{"seq negative", `{"seq":-1,"metrics":{"t":1}}`, ReasonBadType, "seq"},
		{"seq fraction", `{"seq":1.5,"metrics":{"t":1}}`, ReasonBadType, "seq"},
		{"seq string", `{"seq":"7","metrics":{"t":1}}`, ReasonBadType, "seq"},
		{"out of range", `{"metrics":{"t":-1e16}}`, ReasonOutOfRange, "max_abs_value"},
		{"invalid utf-8 fw", "{\"fw\":\"\xff\",\"metrics\":{\"t\":1}}", ReasonBadAttribute, "UTF-8"},
		{"trailing data", `{"metrics":{"t":1}} x`, ReasonMalformed, "after the object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeJSON("dev-1", []byte(tt.payload), received, lim)
			require.Error(t, err)
			require.Equal(t, tt.reason, ReasonOf(err), "error: %v", err)
			require.Contains(t, err.Error(), tt.msg)
		})
	}
}

// encodeJSON writes r in the device contract's JSON form (the inverse of DecodeJSON).
func encodeJSON(r telemetry.Reading) []byte {
	m := make(map[string]any, len(r.Fields))
	for _, f := range r.Fields {
		if f.IsBool {
			m[f.Name] = f.Bool()
		} else {
			m[f.Name] = f.Value
		}
	}
	p := map[string]any{"ts": r.At.Format(time.RFC3339Nano), "metrics": m}
	if r.Seq != 0 {
		p["seq"] = r.Seq
	}
	if r.Model != "" {
		p["model"] = r.Model
	}
	if r.Firmware != "" {
		p["fw"] = r.Firmware
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzDecodeJSON(f *testing.F) {
	files, _ := filepath.Glob("testdata/json/*.json")
	for _, path := range files {
		if b, err := os.ReadFile(path); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"metrics":{"t":NaN}}`))
	f.Add([]byte(`{"ts":1e300,"metrics":{"t":1}}`))
	f.Add([]byte(`{"ts":"2026-11-22T15:30:00.123456789-12:00","metrics":{"a":true,"b":-1e-300}}`))
	lim := DefaultLimits()
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := DecodeJSON("dev-1", payload, received, lim)
		if err != nil {
			require.NotEmpty(t, ReasonOf(err), "every rejection carries a reason: %v", err)
			return
		}
		checkAccepted(t, []telemetry.Reading{r}, lim)
		// Round trip: what we accept, re-encoded, decodes to the same reading.
		again, err := DecodeJSON("dev-1", encodeJSON(r), received, lim)
		require.NoError(t, err)
		require.True(t, r.At.Equal(again.At))
		again.At = r.At
		require.Equal(t, r, again)
	})
}

func BenchmarkDecode(b *testing.B) {
	small := []byte(`{"ts":"2026-11-22T15:30:00Z","model":"heatpump-a2","fw":"1.4.2","metrics":{"supply_temp_c":12.1,"compressor_amps":7.9,"defrost":false}}`)
	m := make(map[string]float64, 100)
	for i := range 100 {
		m["metric_"+string(rune('a'+i%26))+strings.Repeat("x", i/26)] = float64(i) * 1.5
	}
	largeMetrics, _ := json.Marshal(m)
	large := []byte(`{"ts":1795361400123,"model":"heatpump-a2","metrics":` + string(largeMetrics) + `}`)
	var lpLarge, senmlLarge strings.Builder
	lpLarge.WriteString("heatpump,model=heatpump-a2 ")
	senmlLarge.WriteString(`[{"bn":"dev-1:","bt":1795361400.123`)
	i := 0
	for name, v := range m {
		if i > 0 {
			lpLarge.WriteByte(',')
		}
		fmt.Fprintf(&lpLarge, "%s=%g", name, v)
		if i == 0 {
			fmt.Fprintf(&senmlLarge, `,"n":%q,"v":%g}`, name, v)
		} else {
			fmt.Fprintf(&senmlLarge, `,{"n":%q,"v":%g}`, name, v)
		}
		i++
	}
	lpLarge.WriteString(" 1795361400123000000")
	senmlLarge.WriteString("]")
	for _, bc := range []struct {
		name    string
		format  Format
		payload []byte
	}{
		{"json/small", FormatJSON, small},
		{"json/large", FormatJSON, large},
		{"lineproto/small", FormatLineProto, []byte("heatpump,model=heatpump-a2,fw=1.4.2 supply_temp_c=12.1,compressor_amps=7.9,defrost=false 1795361400000000000")},
		{"lineproto/large", FormatLineProto, []byte(lpLarge.String())},
		{"senml/small", FormatSenML, []byte(`[{"bn":"dev-1:","bt":1795361400,"n":"supply_temp_c","u":"Cel","v":12.1},{"n":"compressor_amps","u":"A","v":7.9},{"n":"defrost","vb":false}]`)},
		{"senml/large", FormatSenML, []byte(senmlLarge.String())},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := NewDecoder(DefaultLimits())
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.payload)))
			for b.Loop() {
				if bc.format == FormatJSON {
					if _, err := d.DecodeJSON("dev-1", bc.payload, received); err != nil {
						b.Fatal(err)
					}
				} else if _, err := d.Decode(bc.format, "dev-1", bc.payload, received); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
