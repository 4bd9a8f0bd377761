package simulator

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// A Ticket is what the evaluation needs of a ticket Forewarn opened.
type Ticket struct {
	ID       int64
	Device   telemetry.DeviceID
	Fault    string
	OpenedAt time.Time // event time of the first raise
}

// EvalInput is what Evaluate scores: the ground truth of a run and the
// tickets Forewarn opened.
type EvalInput struct {
	Truth   []Truth
	Tickets []Ticket
	// Start and End bound the run's event time. Tickets opened outside
	// [Start, End+Grace], or for devices InFleet rejects, are not this run's
	// and are ignored.
	Start, End time.Time
	Grace      time.Duration // how long after End (or after a connectivity loss ended) a ticket still counts; 0 = 1h
	DeviceDays float64       // devices × simulated days, the base of the false ticket rate
	InFleet    func(telemetry.DeviceID) bool
}

// Evaluation scores detection against the ground truth. Lead times are
// notice minus ticket opening, in seconds: positive when Forewarn was
// earlier than the customer, negative when later; nil when no detected
// fault was noticed.
type Evaluation struct {
	Faults                        int            `json:"faults"`
	Detected                      int            `json:"detected"`
	Recall                        float64        `json:"recall"`
	DetectedBeforeNotice          int            `json:"detected_before_notice"`
	LeadTimeMedianS               *float64       `json:"lead_time_median_s"`
	LeadTimeP10S                  *float64       `json:"lead_time_p10_s"`
	Tickets                       int            `json:"tickets"`
	FalseTickets                  int            `json:"false_tickets"`
	FalseTicketsPer1000DeviceDays float64        `json:"false_tickets_per_1000_device_days"`
	DuplicateTickets              int            `json:"duplicate_tickets"`
	DeviceDays                    float64        `json:"device_days"`
	Scenarios                     []ScenarioEval `json:"scenarios"`
	// FalseByFault counts the false tickets per ticket fault.
	FalseByFault map[string]int `json:"false_by_fault,omitempty"`
}

// ScenarioEval is the evaluation of one fault scenario.
type ScenarioEval struct {
	Scenario             string   `json:"scenario"`
	Class                string   `json:"class"`
	Fault                string   `json:"fault,omitempty"` // the ticket fault the shipped profiles raise
	Needs                string   `json:"needs,omitempty"` // detectors besides threshold the shipped profiles use for it
	Faults               int      `json:"faults"`
	Detected             int      `json:"detected"`
	Recall               float64  `json:"recall"`
	Noticed              int      `json:"noticed"` // faults the customer noticed during the run
	DetectedBeforeNotice int      `json:"detected_before_notice"`
	LeadTimeMedianS      *float64 `json:"lead_time_median_s"`
	LeadTimeP10S         *float64 `json:"lead_time_p10_s"`
	DuplicateTickets     int      `json:"duplicate_tickets"`

	leads []float64
}

// Evaluate matches tickets to the injected faults. A ticket matches a fault
// of its device when it opened at or after the fault's onset (and, for a
// connectivity loss, before the device came back plus Grace); among several,
// a fault whose expected ticket fault equals the ticket's wins, then the
// latest onset. The first ticket matched to a fault detects it; every later
// one is a duplicate (one real problem, several tickets). A ticket that
// matches no fault is false. Evaluate is pure.
func Evaluate(in EvalInput) Evaluation {
	grace := in.Grace
	if grace == 0 {
		grace = time.Hour
	}
	byDevice := map[telemetry.DeviceID][]int{}
	for i, tr := range in.Truth {
		byDevice[tr.Device] = append(byDevice[tr.Device], i)
	}
	tickets := slices.Clone(in.Tickets)
	slices.SortStableFunc(tickets, func(a, b Ticket) int {
		if c := a.OpenedAt.Compare(b.OpenedAt); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	first := make([]*Ticket, len(in.Truth))
	dups := make([]int, len(in.Truth))
	ev := Evaluation{Faults: len(in.Truth), DeviceDays: in.DeviceDays, FalseByFault: map[string]int{}}
	for k := range tickets {
		tk := &tickets[k]
		if (in.InFleet != nil && !in.InFleet(tk.Device)) || tk.OpenedAt.Before(in.Start) || tk.OpenedAt.After(in.End.Add(grace)) {
			continue
		}
		ev.Tickets++
		best := -1
		for _, i := range byDevice[tk.Device] {
			tr := in.Truth[i]
			if tk.OpenedAt.Before(tr.Onset) || (tr.End != nil && tk.OpenedAt.After(tr.End.Add(grace))) {
				continue
			}
			if best < 0 || better(tr, in.Truth[best], tk.Fault) {
				best = i
			}
		}
		switch {
		case best < 0:
			ev.FalseTickets++
			ev.FalseByFault[tk.Fault]++
		case first[best] == nil:
			first[best] = tk
		default:
			dups[best]++
			ev.DuplicateTickets++
		}
	}
	if ev.DeviceDays > 0 {
		ev.FalseTicketsPer1000DeviceDays = float64(ev.FalseTickets) / ev.DeviceDays * 1000
	}
	scen := map[string]*ScenarioEval{}
	var order []string
	var leads []float64
	for i, tr := range in.Truth {
		se := scen[tr.Scenario]
		if se == nil {
			se = &ScenarioEval{Scenario: tr.Scenario, Class: tr.Class, Fault: tr.Fault}
			if id, ok := scenarioByName(tr.Scenario); ok {
				se.Needs = scenarios[id].Needs
			}
			scen[tr.Scenario] = se
			order = append(order, tr.Scenario)
		}
		se.Faults++
		se.DuplicateTickets += dups[i]
		if tr.Notice != nil {
			se.Noticed++
		}
		if first[i] == nil {
			continue
		}
		se.Detected++
		ev.Detected++
		if tr.Notice != nil {
			lead := tr.Notice.Sub(first[i].OpenedAt).Seconds()
			se.leads = append(se.leads, lead)
			leads = append(leads, lead)
			if lead > 0 {
				se.DetectedBeforeNotice++
				ev.DetectedBeforeNotice++
			}
		}
	}
	ev.Recall = ratio(ev.Detected, ev.Faults)
	ev.LeadTimeMedianS, ev.LeadTimeP10S = quantile(leads, 0.5), quantile(leads, 0.1)
	slices.Sort(order)
	for _, name := range order {
		se := scen[name]
		se.Recall = ratio(se.Detected, se.Faults)
		se.LeadTimeMedianS, se.LeadTimeP10S = quantile(se.leads, 0.5), quantile(se.leads, 0.1)
		ev.Scenarios = append(ev.Scenarios, *se)
	}
	if ev.Scenarios == nil {
		ev.Scenarios = []ScenarioEval{}
	}
	return ev
}

// better reports whether fault a explains a ticket of fault name better than b.
func better(a, b Truth, name string) bool {
	if am, bm := a.Fault == name, b.Fault == name; am != bm {
		return am
	}
	return a.Onset.After(b.Onset)
}

func ratio(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// quantile returns the q-quantile of vs with linear interpolation between
// the closest ranks (Hyndman and Fan type 7, as numpy's default), or nil
// for no values.
func quantile(vs []float64, q float64) *float64 {
	if len(vs) == 0 {
		return nil
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	v := s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
	return &v
}

// Table writes ev as a text table, one line per scenario and the overall
// line, as docs/detection.md shows it.
func (ev Evaluation) Table(w io.Writer) {
	fmt.Fprintf(w, "| scenario | class | faults | detected | recall | before notice | lead median | lead p10 | duplicates | detectors besides threshold |\n")
	fmt.Fprintf(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, se := range ev.Scenarios {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %.0f%% | %d/%d | %s | %s | %d | %s |\n", se.Scenario, se.Class, se.Faults, se.Detected,
			100*se.Recall, se.DetectedBeforeNotice, se.Noticed, dur(se.LeadTimeMedianS), dur(se.LeadTimeP10S), se.DuplicateTickets, se.Needs)
	}
	fmt.Fprintf(w, "| **all** | | %d | %d | %.0f%% | %d | %s | %s | %d | |\n", ev.Faults, ev.Detected, 100*ev.Recall,
		ev.DetectedBeforeNotice, dur(ev.LeadTimeMedianS), dur(ev.LeadTimeP10S), ev.DuplicateTickets)
	fmt.Fprintf(w, "\nfalse tickets: %d in %.0f device-days (%.2f per 1,000 device-days)", ev.FalseTickets, ev.DeviceDays, ev.FalseTicketsPer1000DeviceDays)
	if len(ev.FalseByFault) > 0 {
		var parts []string
		for f, n := range ev.FalseByFault {
			parts = append(parts, fmt.Sprintf("%s %d", f, n))
		}
		slices.Sort(parts)
		fmt.Fprintf(w, ": %s", strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "; tickets: %d\n", ev.Tickets)
}

// dur formats seconds as a short signed duration, "-" for none.
func dur(s *float64) string {
	if s == nil {
		return "-"
	}
	d := time.Duration(*s * float64(time.Second))
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%s%.1fd", sign, d.Hours()/24)
	case d >= time.Hour:
		return fmt.Sprintf("%s%.1fh", sign, d.Hours())
	}
	return fmt.Sprintf("%s%.0fm", sign, d.Minutes())
}
