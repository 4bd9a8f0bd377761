package ticketing

import (
	"errors"
	"time"

	"github.com/forewarn/forewarn/telemetry"
)

// Sentinel errors. Callers branch with errors.Is; httpapi maps them to
// problem+json statuses.
var (
	// ErrNotFound is wrapped by the error of a lookup that matched nothing.
	ErrNotFound = errors.New("not found")
	// ErrInvalidArgument is wrapped by the error of a call whose input is
	// malformed: a bad filter or cursor, or a Finding that cannot be handled.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrConflict is wrapped by the error of an action the current state
	// does not allow: acknowledging a resolved ticket, reopening a ticket
	// whose fault has a newer open ticket, deleting a customer who still
	// owns devices.
	ErrConflict = errors.New("conflict")
	// ErrUnknownDevice is wrapped by the error of ObserveDevice when the
	// registry does not know the device and registry.unknown_devices is
	// reject.
	ErrUnknownDevice = errors.New("unknown device")
)

// Status is where a ticket or an incident is in its lifecycle.
type Status string

// Ticket statuses. A ticket is open until it is resolved: StatusOpen and
// StatusAcknowledged both count as open for the one-open-ticket rule.
const (
	StatusOpen         Status = "open"
	StatusAcknowledged Status = "acknowledged"
	StatusResolved     Status = "resolved"
)

func (s Status) String() string { return string(s) }

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusOpen, StatusAcknowledged, StatusResolved:
		return true
	}
	return false
}

// Outcome is staff's verdict on a ticket, for rule quality reports.
type Outcome string

// Outcomes. The zero value means not set.
const (
	OutcomeTrueFault      Outcome = "true_fault"
	OutcomeFalseAlarm     Outcome = "false_alarm"
	OutcomeCustomerMisuse Outcome = "customer_misuse"
)

// Valid reports whether o is one of the defined outcomes.
func (o Outcome) Valid() bool {
	switch o {
	case OutcomeTrueFault, OutcomeFalseAlarm, OutcomeCustomerMisuse:
		return true
	}
	return false
}

// Event kinds on a ticket's timeline.
const (
	EventRaised  = "raised"
	EventCleared = "cleared"
)

// A Ticket is one real problem of one device: all raises of one fault while
// the ticket is open, and again after a reopen. Model, Rule,
// CustomerVisible and Remedy come from the raise that opened it; Severity is
// the worst seen since, or what staff set.
type Ticket struct {
	ID              int64              `json:"id"`
	DeviceID        string             `json:"device_id"`
	Model           string             `json:"model,omitempty"`
	Firmware        string             `json:"firmware,omitempty"`    // the device's, when the ticket opened
	Site            string             `json:"site,omitempty"`        // the device's, when the ticket opened
	CustomerID      string             `json:"customer_id,omitempty"` // the device's owner when the ticket opened
	Fault           string             `json:"fault"`
	Rule            string             `json:"rule"`
	Severity        telemetry.Severity `json:"severity"`
	Status          Status             `json:"status"`
	CustomerVisible bool               `json:"customer_visible"`
	Remedy          string             `json:"remedy,omitempty"`
	Assignee        string             `json:"assignee,omitempty"`
	Outcome         Outcome            `json:"outcome,omitempty"`
	IncidentID      int64              `json:"incident_id,omitempty"`
	OpenedAt        time.Time          `json:"opened_at"`                 // event time of the first raise
	CreatedAt       time.Time          `json:"created_at"`                // wall clock when the ticket was opened
	UpdatedAt       time.Time          `json:"updated_at"`                // wall clock of the last change
	LastRaisedAt    time.Time          `json:"last_raised_at"`            // event time of the latest raise
	RaiseCount      int                `json:"raise_count"`               // raises since the ticket opened, the first included
	ReopenCount     int                `json:"reopen_count"`              // times a returning fault or staff reopened it
	ClearedAt       *time.Time         `json:"cleared_at,omitempty"`      // event time the fault cleared; nil again on a new raise
	ResolveAfter    *time.Time         `json:"resolve_after,omitempty"`   // wall clock when a cleared ticket auto-resolves
	AcknowledgedAt  *time.Time         `json:"acknowledged_at,omitempty"` // wall clock
	ResolvedAt      *time.Time         `json:"resolved_at,omitempty"`     // wall clock
	DueAt           *time.Time         `json:"due_at,omitempty"`          // SLA: wall clock by which staff should act
	Evidence        telemetry.Evidence `json:"evidence"`                  // the latest raise's evidence
	Timeline        []Event            `json:"timeline,omitempty"`        // oldest first; only GetTicket fills it
}

// An Event is one entry of a ticket's timeline.
type Event struct {
	At       time.Time          `json:"at"`   // event time of the Finding
	Kind     string             `json:"kind"` // EventRaised or EventCleared
	Severity telemetry.Severity `json:"severity"`
	Evidence telemetry.Evidence `json:"evidence"`
}

// Page sizes of the List methods.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Filter selects tickets for ListTickets. Zero fields match everything.
type Filter struct {
	Status     Status
	DeviceID   string
	Fault      string
	Severity   telemetry.Severity // exact match
	CustomerID string             // the owner recorded on the ticket
	IncidentID int64
	Assignee   string
	Since      time.Time // updated at or after
	Limit      int       // page size: 0 means DefaultLimit; above MaxLimit means MaxLimit
	Cursor     string    // opaque, the next value of the previous page; "" for the first page
}

// SystemActor is the actor of changes Forewarn makes by itself (a raise,
// an auto-resolve) in the audit trail.
const SystemActor = "system"

// An AuditEntry records one change: who did what, when, from which value
// to which.
type AuditEntry struct {
	ID         int64     `json:"id"`
	TicketID   int64     `json:"ticket_id,omitempty"`
	IncidentID int64     `json:"incident_id,omitempty"`
	Subject    string    `json:"subject,omitempty"` // for other changes: "device:ID", "customer:ID", "token:ID"
	At         time.Time `json:"at"`                // wall clock
	Actor      string    `json:"actor"`             // a token's name, or "system"
	Action     string    `json:"action"`            // one of the Action constants
	From       string    `json:"from,omitempty"`
	To         string    `json:"to,omitempty"`
	Note       string    `json:"note,omitempty"`
}

// Audit actions.
const (
	ActionOpen        = "open"         // to: status open
	ActionStatus      = "status"       // from, to: statuses
	ActionSeverity    = "severity"     // from, to: severities
	ActionAssign      = "assign"       // from, to: assignees
	ActionComment     = "comment"      // to: the comment
	ActionOutcome     = "outcome"      // from, to: outcomes
	ActionIncident    = "incident"     // to: the incident id the ticket joined
	ActionDue         = "due"          // from, to: due times
	ActionRegistered  = "registered"   // device auto-registration
	ActionOnline      = "online"       // a device's online state from its status topic changed: from, to: online, offline ("" for never known)
	ActionTokenIssued = "token"        // to: the token's role
	ActionDeleted     = "deleted"      // registry deletions
	ActionNotifyRetry = "notify_retry" // subject notification:ID: a dead notification sent again
	ActionCallback    = "callback"     // a staff call-back task was made (tier rule); to: the customer
)

// AuditFilter selects audit entries. Zero fields match everything.
type AuditFilter struct {
	TicketID   int64
	IncidentID int64
	Subject    string
	Actor      string
	Since      time.Time
	Limit      int
	Cursor     string
}
