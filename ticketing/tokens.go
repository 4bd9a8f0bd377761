package ticketing

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Role is what an API token may do. Each role includes the ones before it.
type Role string

// Roles.
const (
	RoleViewer Role = "viewer" // read tickets, incidents, the registry
	RoleAgent  Role = "agent"  // and act on tickets and incidents
	RoleAdmin  Role = "admin"  // and change the registry, read the audit trail, manage tokens
)

// Rank orders roles: viewer 1, agent 2, admin 3, anything else 0.
func (r Role) Rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleAgent:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// A Token is an API bearer token. Only a hash of its secret is stored: the
// secret is shown once, when the token is issued.
type Token struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"` // the actor in the audit trail
	Role       Role       `json:"role"`
	CustomerID string     `json:"customer_id,omitempty"` // set: the token sees only this customer's devices and tickets
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// tokenPrefix marks Forewarn tokens, so a leaked one is recognisable.
const tokenPrefix = "fw_"

// HashToken returns the stored form of a token secret: hex SHA-256.
// Secrets are 256 random bits, so a fast hash is enough.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// IssueToken creates a token and returns it with its secret, which is not
// stored and cannot be read again.
func (s *SQLStore) IssueToken(ctx context.Context, name string, role Role, customerID, actor string, now time.Time) (Token, string, error) {
	var errs []error
	if strings.TrimSpace(name) == "" || utf8.RuneCountInString(name) > MaxNameLen {
		errs = append(errs, fmt.Errorf("name: want 1 to %d characters", MaxNameLen))
	}
	if role.Rank() == 0 {
		errs = append(errs, fmt.Errorf("role: %q is not one of viewer, agent, admin", role))
	}
	if role == RoleAdmin && customerID != "" {
		errs = append(errs, errors.New("customer_id: an admin token cannot be limited to a customer"))
	}
	if len(errs) > 0 {
		return Token{}, "", fmt.Errorf("issue token: %w: %w", ErrInvalidArgument, errors.Join(errs...))
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	var customer any
	if customerID != "" {
		customer = customerID
	}
	var id int64
	err := s.writeTx(ctx, func(tx txn) error {
		err := tx.queryRow(ctx, `INSERT INTO api_tokens (name, hash, role, customer_id, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
			name, HashToken(secret), string(role), customer, formatTime(now)).Scan(&id)
		if isForeignKeyViolation(err) {
			return fmt.Errorf("%w: customer_id: no customer %q", ErrInvalidArgument, customerID)
		}
		if err != nil {
			return err
		}
		return addAudit(ctx, tx, AuditEntry{Subject: fmt.Sprintf("token:%d", id), At: now, Actor: actor, Action: ActionTokenIssued,
			To: string(role), Note: name})
	})
	if err != nil {
		return Token{}, "", fmt.Errorf("issue token: %w", err)
	}
	return Token{ID: id, Name: name, Role: role, CustomerID: customerID, CreatedAt: now.UTC()}, secret, nil
}

// Authenticate returns the live token whose secret this is; an unknown or
// revoked one wraps ErrNotFound.
func (s *SQLStore) Authenticate(ctx context.Context, secret string) (Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, rebind(s.pg, `SELECT `+tokenColumns+` FROM api_tokens WHERE hash = ? AND revoked_at IS NULL`), HashToken(secret)))
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, fmt.Errorf("authenticate: %w", ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("authenticate: %w", err)
	}
	return t, nil
}

const tokenColumns = `id, name, role, COALESCE(customer_id, ''), created_at, revoked_at`

func scanToken(r interface{ Scan(...any) error }) (Token, error) {
	var (
		t       Token
		role, c string
		revoked sql.NullString
	)
	if err := r.Scan(&t.ID, &t.Name, &role, &t.CustomerID, &c, &revoked); err != nil {
		return Token{}, err
	}
	t.Role = Role(role)
	var err error
	if t.CreatedAt, err = parseTime(c); err != nil {
		return Token{}, fmt.Errorf("token %d: created_at: %w", t.ID, err)
	}
	if t.RevokedAt, err = optTime(revoked); err != nil {
		return Token{}, fmt.Errorf("token %d: revoked_at: %w", t.ID, err)
	}
	return t, nil
}

// ListTokens returns every token, revoked ones included, oldest first.
func (s *SQLStore) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	items := []Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		items = append(items, t)
	}
	return items, rows.Err()
}

// RevokeToken revokes token id; it stops authenticating at once.
func (s *SQLStore) RevokeToken(ctx context.Context, id int64, actor string, now time.Time) error {
	err := s.writeTx(ctx, func(tx txn) error {
		r, err := tx.exec(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, formatTime(now), id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return addAudit(ctx, tx, AuditEntry{Subject: fmt.Sprintf("token:%d", id), At: now, Actor: actor, Action: "revoked"})
	})
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", id, err)
	}
	return nil
}

// IssueToken issues an API token at the Service's clock.
func (s *Service) IssueToken(ctx context.Context, name string, role Role, customerID, actor string) (Token, string, error) {
	return s.store.IssueToken(ctx, name, role, customerID, actor, s.now())
}

// RevokeToken revokes an API token.
func (s *Service) RevokeToken(ctx context.Context, id int64, actor string) error {
	return s.store.RevokeToken(ctx, id, actor, s.now())
}
