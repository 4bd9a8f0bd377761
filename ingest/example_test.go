package ingest_test

import (
	"fmt"
	"time"

	"github.com/forewarn/forewarn/ingest"
)

func ExampleDecodeJSON() {
	received := time.Date(2026, 11, 22, 15, 31, 0, 0, time.UTC)
	r, err := ingest.DecodeJSON("hp-1", []byte(`{"ts":"2026-11-22T15:30:00Z","model":"heatpump-a2","seq":7,
		"metrics":{"supply_temp_c":12.1,"defrost":false}}`), received, ingest.DefaultLimits())
	if err != nil {
		fmt.Println(ingest.ReasonOf(err), err)
		return
	}
	fmt.Println(r.Device, r.Model, r.At.Format(time.RFC3339), r.Seq, r.Fields)
	fmt.Print(string(ingest.AppendLine(nil, r)))

	_, err = ingest.DecodeJSON("hp-1", []byte(`{"metrics":{"supply_temp_c":"hot"}}`), received, ingest.DefaultLimits())
	fmt.Println(ingest.ReasonOf(err))
	// Output:
	// hp-1 heatpump-a2 2026-11-22T15:30:00Z 7 [{defrost 0 true} {supply_temp_c 12.1 false}]
	// telemetry,device_id=hp-1,model=heatpump-a2 defrost=false,supply_temp_c=12.1 1795361400000000000
	// bad_type
}

func ExampleDecoder_Decode() {
	received := time.Date(2026, 11, 22, 15, 31, 0, 0, time.UTC)
	d := ingest.NewDecoder(ingest.DefaultLimits())
	rs, err := d.Decode(ingest.FormatLineProto, "hp-1", []byte("heatpump,model=heatpump-a2 supply_temp_c=12.1,starts=3i 1795361400"), received)
	fmt.Println(len(rs), rs[0].Model, rs[0].At.Format(time.RFC3339), rs[0].Fields, err)
	rs, err = d.Decode(ingest.FormatSenML, "hp-1", []byte(`[{"bn":"hp-1:","bt":1795361400,"n":"supply_temp_c","u":"Cel","v":12.1},{"n":"supply_temp_c","t":60,"v":12.4}]`), received)
	fmt.Println(len(rs), rs[0].At.Format(time.RFC3339), rs[1].At.Format(time.RFC3339), rs[1].Fields, err)
	// Output:
	// 1 heatpump-a2 2026-11-22T15:30:00Z [{starts 3 false} {supply_temp_c 12.1 false}] <nil>
	// 2 2026-11-22T15:30:00Z 2026-11-22T15:31:00Z [{supply_temp_c 12.4 false}] <nil>
}
