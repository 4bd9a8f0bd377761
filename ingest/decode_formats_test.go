package ingest

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/telemetry"
)

func TestDecodeLineProtoRejects(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxMetrics = 3
	tests := []struct {
		name, payload string
		reason        Reason
		msg           string
	}{
		{"empty", "", ReasonNoMetrics, "no line protocol"},
		{"comments only", "# nothing\n\n", ReasonNoMetrics, "no line protocol"},
		{"no fields", "m", ReasonMalformed, "no fields"},
		{"no measurement", ",a=b v=1", ReasonMalformed, "no measurement"},
		{"field without value", "m v", ReasonMalformed, "has no value"},
		{"empty value", "m v=", ReasonMalformed, "empty value"},
		{"string field", `m v="hot"`, ReasonBadType, "string fields"},
		{"not a number", "m v=abc", ReasonBadType, "not a number"},
		{"bare minus integer", "m v=-i", ReasonBadType, "not an integer"},
		{"negative unsigned", "m v=-1u", ReasonBadType, "not a number"},
		{"overflow", "m v=1e999", ReasonNonFinite, "not a finite"},
		{"out of range", "m v=2e15", ReasonOutOfRange, "max_abs_value"},
		{"escaped name", `m a\ b=1`, ReasonBadMetricName, "escapes"},
		{"reserved name", "m _time=1", ReasonBadMetricName, "must not start with '_'"},
		{"too many", "m a=1,b=2,c=3,d=4", ReasonTooManyMetrics, "more than 3"},
		{"other device", "m,device_id=dev-2 v=1", ReasonDeviceMismatch, "dev-2"},
		{"bad model", "m,model=a:b:c:d:e:f:g:h:i:j:k:l:m:n:o:p:q:r:s:t:u:v:w:x:y:z:0:1:2:3:4:5:6 v=1", ReasonBadAttribute, "model"},
		{"bad timestamp", "m v=1 yesterday", ReasonBadTimestamp, "integer epoch"},
		{"negative timestamp", "m v=1 -5", ReasonBadTimestamp, "integer epoch"},
		{"zero timestamp", "m v=1 0", ReasonBadTimestamp, "not a plausible"},
		{"future", "m v=1 1900000000", ReasonFutureTS, "ahead"},
		{"second line bad", "m v=1\nm v=x", ReasonBadType, "not a number"},
		{"too large", "m v=1 " + strings.Repeat(" ", 70000), ReasonTooLarge, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(FormatLineProto, "dev-1", []byte(tt.payload), received, lim)
			require.Error(t, err)
			require.Equal(t, tt.reason, ReasonOf(err), "error: %v", err)
			require.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestDecodeSenMLRejects(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxMetrics = 3
	tests := []struct {
		name, payload string
		reason        Reason
		msg           string
	}{
		{"object", `{"n":"a","v":1}`, ReasonMalformed, "not a JSON array"},
		{"bad json", `[{"n":"a","v":1}`, ReasonMalformed, "invalid JSON"},
		{"NaN", `[{"n":"a","v":NaN}]`, ReasonMalformed, "invalid JSON"},
		{"not objects", `[1,2]`, ReasonMalformed, "array of objects"},
		{"null record", `[null]`, ReasonMalformed, "null"},
		{"empty", `[]`, ReasonNoMetrics, "empty"},
		{"too many", `[{"n":"a","v":1},{"n":"b","v":1},{"n":"c","v":1},{"n":"d","v":1}]`, ReasonTooManyMetrics, "4 records"},
		{"string value", `[{"n":"a","vs":"x"}]`, ReasonBadType, "vs is not a metric"},
		{"data value", `[{"n":"a","vd":"eA"}]`, ReasonBadType, "vd is not a metric"},
		{"sum", `[{"n":"a","s":3}]`, ReasonBadType, "s is not a metric"},
		{"no value", `[{"n":"a"}]`, ReasonBadType, "no value"},
		{"v as string", `[{"n":"a","v":"1"}]`, ReasonBadType, "v must be a number"},
		{"vb as number", `[{"n":"a","vb":1}]`, ReasonBadType, "vb must be a boolean"},
		{"v and vb", `[{"n":"a","v":1,"vb":true}]`, ReasonMalformed, "both v and vb"},
		{"overflow", `[{"n":"a","v":1e999}]`, ReasonNonFinite, "not a finite"},
		{"out of range", `[{"n":"a","v":-1e16}]`, ReasonOutOfRange, "max_abs_value"},
		{"no name", `[{"v":1}]`, ReasonBadMetricName, "want 1 to 128"},
		{"bad name", `[{"n":"a/b","v":1}]`, ReasonBadMetricName, "not in"},
		{"must understand", `[{"n":"a","v":1,"foo_":2}]`, ReasonMalformed, "must-understand"},
		{"bad version", `[{"bver":11,"n":"a","v":1}]`, ReasonMalformed, "bver"},
		{"bn not string", `[{"bn":1,"n":"a","v":1}]`, ReasonBadType, "bn"},
		{"t not number", `[{"n":"a","v":1,"t":"now"}]`, ReasonBadType, "t: want a number"},
		{"future", `[{"n":"a","v":1,"bt":1900000000}]`, ReasonFutureTS, "ahead"},
		{"implausible", `[{"n":"a","v":1,"bt":1e12}]`, ReasonBadTimestamp, "not plausible"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(FormatSenML, "dev-1", []byte(tt.payload), received, lim)
			require.Error(t, err)
			require.Equal(t, tt.reason, ReasonOf(err), "error: %v", err)
			require.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestDecodeEventAndStatus(t *testing.T) {
	e, err := DecodeEvent("dev-1", []byte(`{"ts":"2026-11-22T15:30:00Z","code":"E42","message":"compressor \"overcurrent\""}`), received, DefaultLimits())
	require.NoError(t, err)
	require.Equal(t, telemetry.DeviceEvent{Device: "dev-1", At: time.Date(2026, 11, 22, 15, 30, 0, 0, time.UTC), Code: "E42", Message: `compressor "overcurrent"`}, e)
	require.Equal(t, `device_events,device_id=dev-1,code=E42 message="compressor \"overcurrent\"" 1795361400000000000`+"\n",
		string(AppendEventLine(nil, e)))
	for _, bad := range []struct {
		payload string
		reason  Reason
	}{
		{`{"message":"x"}`, ReasonBadAttribute},
		{`{"code":"E 42"}`, ReasonBadAttribute},
		{`{"code":42}`, ReasonBadType},
		{`{"code":"E1","ts":"soon"}`, ReasonBadTimestamp},
		{`nope`, ReasonMalformed},
	} {
		_, err := DecodeEvent("dev-1", []byte(bad.payload), received, DefaultLimits())
		require.Equal(t, bad.reason, ReasonOf(err), "%s: %v", bad.payload, err)
	}

	for payload, online := range map[string]bool{"online": true, " OFFLINE\n": false, `{"status":"online"}`: true} {
		st, err := DecodeStatus("dev-1", []byte(payload), received)
		require.NoError(t, err, payload)
		require.Equal(t, telemetry.StatusChange{Device: "dev-1", At: received, Online: online}, st)
	}
	for payload, reason := range map[string]Reason{"": ReasonNoMetrics, "maybe": ReasonMalformed, `{"status":1}`: ReasonBadType} {
		_, err := DecodeStatus("dev-1", []byte(payload), received)
		require.Equal(t, reason, ReasonOf(err), payload)
	}
}

func TestParseTopic(t *testing.T) {
	tests := []struct {
		topic  string
		kind   TopicKind
		format Format
		reason Reason
	}{
		{"p/dev-1/telemetry", TopicTelemetry, FormatJSON, ""},
		{"p/dev-1/telemetry/lp", TopicTelemetry, FormatLineProto, ""},
		{"p/dev-1/telemetry/senml", TopicTelemetry, FormatSenML, ""},
		{"p/dev-1/telemetry/xml", 0, "", ReasonBadTopic},
		{"p/dev-1/events", TopicEvents, "", ""},
		{"p/dev-1/status", TopicStatus, "", ""},
		{"p/dev-1/status/x", 0, "", ReasonBadTopic},
		{"p/dev-1/commands", 0, "", ReasonBadTopic},
		{"q/dev-1/telemetry", 0, "", ReasonBadTopic},
		{"p/dev 1/telemetry", 0, "", ReasonBadDeviceID},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			dev, kind, format, err := ParseTopic("p", tt.topic, FormatJSON)
			if tt.reason != "" {
				require.Equal(t, tt.reason, ReasonOf(err), "%v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, telemetry.DeviceID("dev-1"), dev)
			require.Equal(t, tt.kind, kind)
			if kind == TopicTelemetry {
				require.Equal(t, tt.format, format)
			}
		})
	}
}

// checkAccepted asserts the invariants every accepted reading keeps.
func checkAccepted(t *testing.T, rs []telemetry.Reading, lim Limits) {
	t.Helper()
	require.NotEmpty(t, rs)
	for _, r := range rs {
		require.NotEmpty(t, r.Fields)
		require.LessOrEqual(t, len(r.Fields), lim.MaxMetrics)
		require.True(t, slices.IsSortedFunc(r.Fields, func(a, b telemetry.Field) int { return strings.Compare(a.Name, b.Name) }))
		for i, fl := range r.Fields {
			require.NoError(t, checkMetricName(fl.Name))
			require.False(t, math.IsNaN(fl.Value) || math.IsInf(fl.Value, 0))
			require.LessOrEqual(t, math.Abs(fl.Value), lim.MaxAbsValue)
			if i > 0 {
				require.NotEqual(t, r.Fields[i-1].Name, fl.Name, "names are unique")
			}
		}
		require.LessOrEqual(t, r.At.Sub(received), lim.MaxFutureSkew)
		require.Equal(t, time.UTC, r.At.Location())
	}
}

func addCorpus(f *testing.F, glob string) {
	files, _ := filepath.Glob(glob)
	for _, path := range files {
		if strings.HasSuffix(path, ".readings.json") {
			continue
		}
		if b, err := os.ReadFile(path); err == nil {
			f.Add(b)
		}
	}
}

func FuzzDecodeLineProto(f *testing.F) {
	addCorpus(f, "testdata/lp/*.lp")
	f.Add([]byte("m,model=x v=1i,w=-2.5e3,b=t 1795361400"))
	f.Add([]byte("m v=1u\n# c\nm v=0.5 1795361400000"))
	lim := DefaultLimits()
	f.Fuzz(func(t *testing.T, payload []byte) {
		d := NewDecoder(lim)
		rs, err := d.DecodeLineProto("dev-1", payload, received)
		if err != nil {
			require.NotEmpty(t, ReasonOf(err), "every rejection carries a reason: %v", err)
			return
		}
		checkAccepted(t, rs, lim)
		// Round trip through the line protocol we write to InfluxDB.
		for _, r := range rs {
			again, err := d.DecodeLineProto("dev-1", AppendLine(nil, r), received)
			require.NoError(t, err)
			require.Len(t, again, 1)
			want := r
			want.Firmware = "" // fw is not written to InfluxDB
			require.Equal(t, want, again[0])
		}
	})
}

func FuzzDecodeSenML(f *testing.F) {
	addCorpus(f, "testdata/senml/*.json")
	f.Add([]byte(`[{"bn":"d:","bt":1795361400.5,"bv":1,"n":"a","v":2,"t":-1},{"n":"b","vb":true}]`))
	f.Add([]byte(`[{"n":null,"bn":"x","v":1},{"bn":null,"n":"y","v":2}]`)) // null names are empty, as encoding/json had them
	lim := DefaultLimits()
	d := NewDecoder(lim) // one decoder for all inputs, as in the subscriber: scratch reuse must not leak
	f.Fuzz(func(t *testing.T, payload []byte) {
		rs, err := d.DecodeSenML("dev-1", payload, received)
		// The scanner against the encoding/json decoder it replaced: the
		// same readings, or a rejection with the same reason.
		ref, refErr := NewDecoder(lim).decodeSenMLMaps("dev-1", payload, received)
		if err != nil {
			require.NotEmpty(t, ReasonOf(err), "every rejection carries a reason: %v", err)
			require.Error(t, refErr, "rejected, but the encoding/json decoder accepted it: %v", err)
			require.Equal(t, ReasonOf(refErr), ReasonOf(err), "scanner: %v\nencoding/json: %v", err, refErr)
			return
		}
		require.NoError(t, refErr, "accepted, but the encoding/json decoder rejected it")
		require.Equal(t, ref, rs)
		checkAccepted(t, rs, lim)
		again, err := NewDecoder(lim).DecodeSenML("dev-1", payload, received)
		require.NoError(t, err)
		require.Equal(t, rs, again, "decoding is deterministic")
	})
}

func TestDecodeJSONSeqAndDuplicates(t *testing.T) {
	r, err := DecodeJSON("dev-1", []byte(`{"seq":42,"metrics":{"t":1,"t":2,"a":true}}`), received, DefaultLimits())
	require.NoError(t, err)
	require.Equal(t, uint64(42), r.Seq)
	require.Equal(t, []telemetry.Field{{Name: "a", Value: 1, IsBool: true}, {Name: "t", Value: 2}}, r.Fields, "the last of a duplicated metric wins")
	r, err = DecodeJSON("dev-1", []byte(`{"metrics":{"t":1}}`), received, DefaultLimits())
	require.NoError(t, err)
	require.Zero(t, r.Seq)
}

func TestSeqTracker(t *testing.T) {
	var st seqTracker
	var gaps, dups, resets uint64
	for _, seq := range []uint64{1, 2, 3, 6, 6, 4, 7, 1, 2, 10} {
		g, d, r := st.observe("dev-1", seq)
		gaps, dups, resets = gaps+g, dups+d, resets+r
	}
	// 3 -> 6 misses 4 and 5; the second 6 and the late 4 are duplicates or
	// late; 7 -> 1 is a restart; 2 -> 10 misses 3..9.
	require.Equal(t, uint64(2+7), gaps)
	require.Equal(t, uint64(2), dups)
	require.Equal(t, uint64(1), resets)
	require.Equal(t, map[telemetry.DeviceID]uint64{"dev-1": 9}, st.Gaps())
}
