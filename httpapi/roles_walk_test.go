package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/ticketing"
)

// TestEveryRouteEveryRole calls every route of the route table with a
// token of each role: a role below the route's gets 403 naming the role,
// a role at or above it is never refused (whatever the request's own
// outcome: 200, 400, 404 or 409).
func TestEveryRouteEveryRole(t *testing.T) {
	srv, _, svc := newTestServerSvc(t, nil)
	toks := map[ticketing.Role]string{
		ticketing.RoleViewer: issue(t, srv, "vic", ticketing.RoleViewer, ""),
		ticketing.RoleAgent:  issue(t, srv, "ana", ticketing.RoleAgent, ""),
		ticketing.RoleAdmin:  token,
	}
	h := NewHandler(Options{Service: svc, AdminToken: token})
	require.Greater(t, len(h.routes), 30)
	for _, rt := range h.routes {
		// An id nobody has: a DELETE must not revoke the tokens this test uses.
		path := strings.ReplaceAll(rt.pattern, "{id}", "999999")
		for role, tok := range toks {
			status, body := call(t, srv, rt.method, path, tok, "application/json", "{}", nil)
			if role.Rank() < rt.role.Rank() {
				require.Equal(t, http.StatusForbidden, status, "%s %s as %s: %s", rt.method, rt.pattern, role, body)
				require.Contains(t, body, "role", "%s %s", rt.method, rt.pattern)
				continue
			}
			require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, status,
				"%s %s as %s (route needs %s): %s", rt.method, rt.pattern, role, rt.role, body)
		}
	}
}
