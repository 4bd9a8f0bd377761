// Package ticketing turns detector Findings into support tickets and keeps
// them in a SQL store.
//
// It sits after the detectors in the flow (DESIGN "The flow"): the detectors
// engine hands its Findings to Service.Handle, which opens a ticket for a new
// fault, adds a raise to the open ticket of a known fault, or marks it
// cleared. The REST API reads tickets back through SQLStore.ListTickets and
// SQLStore.GetTicket.
//
// The database, not this package's memory, enforces the rule that a
// (device, fault) pair has at most one open ticket: a UNIQUE partial index on
// tickets(device_id, fault) WHERE status <> 'resolved'. Several Services, in
// one process or several, may therefore share one database. The schema is
// created and upgraded by versioned migrations recorded in schema_migrations.
//
// The store is SQLite (modernc.org/sqlite, pure Go) or PostgreSQL (pgx),
// with the same schema and queries. Service also runs the lifecycle: staff
// actions with an audit trail (ApplyTicket, ApplyIncident), auto-resolve
// after a hold time (Sweep, Run), the reopen window, SLA due times,
// incidents, the device and customer registry with bulk import and
// auto-registration (ObserveDevice), and API tokens stored hashed. The
// notification outbox comes later.
//
// The package imports only telemetry among Forewarn's packages. It must not
// import detectors, ingest, notify or httpapi, must not pick HTTP status
// codes (callers branch on ErrNotFound and ErrInvalidArgument), and does no
// network I/O besides its database.
package ticketing
