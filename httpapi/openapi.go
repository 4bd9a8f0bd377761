package httpapi

import (
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/forewarn/forewarn/telemetry"
	"github.com/forewarn/forewarn/ticketing"
)

// schemaTypes are the Go types behind the schema names routes use; the
// document's schemas are derived from their JSON tags, so they cannot drift.
var schemaTypes = map[string]any{
	"Status":        map[string]any{},
	"Ticket":        ticketing.Ticket{},
	"TicketList":    list[ticketing.Ticket]{},
	"TicketContext": ticketContext{},
	"AuditList":     list[ticketing.AuditEntry]{},
	"Incident":      ticketing.Incident{},
	"IncidentList":  list[ticketing.Incident]{},
	"IncidentChange": struct {
		Incident       ticketing.Incident `json:"incident"`
		ChangedTickets []int64            `json:"changed_tickets"`
	}{},
	"Device":       ticketing.Device{},
	"DeviceList":   list[ticketing.Device]{},
	"DevicePut":    devicePut{},
	"ImportReport": ticketing.ImportReport{},
	"Customer":     ticketing.Customer{},
	"CustomerList": list[ticketing.Customer]{},
	"CustomerPut":  customerPut{},
	"DeviceImportItem": struct {
		ID string `json:"id"`
		devicePut
	}{},
	"CustomerImportItem": struct {
		ID string `json:"id"`
		customerPut
	}{},
	"TokenList": list[ticketing.Token]{},
	"TokenPost": tokenPost{},
	"IssuedToken": struct {
		Token  ticketing.Token `json:"token"`
		Secret string          `json:"secret"`
	}{},
	"Note": struct {
		Note string `json:"note"`
	}{},
	"Assign": struct {
		Assignee string `json:"assignee"`
		Note     string `json:"note"`
	}{},
	"Comment": struct {
		Comment string `json:"comment"`
		Note    string `json:"note"`
	}{},
	"Severity": struct {
		Severity telemetry.Severity `json:"severity"`
		Note     string             `json:"note"`
	}{},
	"Resolve": struct {
		Outcome ticketing.Outcome `json:"outcome"`
		Note    string            `json:"note"`
	}{},
	"Outcome": struct {
		Outcome ticketing.Outcome `json:"outcome"`
		Note    string            `json:"note"`
	}{},
	"Problem":          problem{},
	"Notification":     ticketing.Notification{},
	"NotificationList": list[ticketing.Notification]{},
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// openAPI builds the OpenAPI 3 document from the route table.
func (h *Handler) openAPI() map[string]any {
	paths := map[string]any{}
	for _, rt := range h.routes {
		op := map[string]any{"summary": rt.summary, "operationId": opID(rt)}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.pattern, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.role == "" {
			op["security"] = []any{}
		} else {
			op["description"] = "Needs a token with role " + string(rt.role) + " or above" +
				map[bool]string{true: "; customer-scoped tokens see their customer's data only.", false: "; not for customer-scoped tokens."}[rt.scoped]
		}
		if rt.body != "" {
			content := map[string]any{"application/json": map[string]any{"schema": ref(rt.body)}}
			switch rt.pattern {
			case "/api/v1/devices:import":
				content = map[string]any{
					"text/csv":         map[string]any{"schema": map[string]any{"type": "string", "description": "header row id,model,customer_id,site,firmware (any order; id required)"}},
					"application/json": map[string]any{"schema": map[string]any{"type": "array", "items": ref("DeviceImportItem")}},
				}
			case "/api/v1/customers:import":
				content = map[string]any{
					"text/csv": map[string]any{"schema": map[string]any{"type": "string", "description": "header row from id,name,tier,language,timezone,quiet_start,quiet_end,email,webhook_url,webhook_secret,mqtt " +
						"(any order; id required); email, webhook_url (with webhook_secret) and mqtt (true/false) make channels, in header order"}},
					"application/json": map[string]any{"schema": map[string]any{"type": "array", "items": ref("CustomerImportItem")}},
				}
			}
			op["requestBody"] = map[string]any{"required": true, "content": content}
		}
		ok := map[string]any{"description": http.StatusText(rt.status)}
		if rt.resp != "" {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": ref(rt.resp)}}
		}
		responses := map[string]any{strconv.Itoa(rt.status): ok}
		if rt.method == http.MethodPut {
			responses["201"] = map[string]any{"description": "Created", "content": map[string]any{"application/json": map[string]any{"schema": ref(rt.resp)}}}
		}
		problemResp := map[string]any{"description": "RFC 9457 problem", "content": map[string]any{"application/problem+json": map[string]any{"schema": ref("Problem")}}}
		responses["default"] = problemResp
		item, _ := paths[openAPIPath(rt.pattern)].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[openAPIPath(rt.pattern)] = item
		}
		item[strings.ToLower(rt.method)] = op
	}
	schemas := map[string]any{}
	for name, v := range schemaTypes {
		schemas[name] = schemaOf(reflect.TypeOf(v))
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "Forewarn API", "version": "1"},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
}

// openAPIPath is the document's key for a chi pattern (they agree: {id}).
func openAPIPath(pattern string) string { return pattern }

func opID(rt route) string {
	s := strings.NewReplacer("/api/v1/", "", "/", "_", "{", "", "}", "", ":", "_", ".", "_").Replace(rt.pattern)
	return strings.ToLower(rt.method) + "_" + strings.Trim(s, "_")
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

var (
	timeType     = reflect.TypeFor[time.Time]()
	severityType = reflect.TypeFor[telemetry.Severity]()
)

// schemaOf derives a JSON schema from a Go type's JSON encoding.
func schemaOf(t reflect.Type) map[string]any {
	if t.Kind() == reflect.Pointer {
		s := schemaOf(t.Elem())
		s["nullable"] = true
		return s
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == severityType:
		return map[string]any{"type": "string", "enum": []string{"info", "minor", "major", "critical"}}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Float64, reflect.Float32:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map, reflect.Interface:
		return map[string]any{"type": "object"}
	case reflect.Struct:
		props := map[string]any{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				maps.Copy(props, schemaOf(f.Type)["properties"].(map[string]any)) // encoding/json flattens it
				continue
			}
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = schemaOf(f.Type)
		}
		return map[string]any{"type": "object", "properties": props}
	}
	return map[string]any{}
}

func (h *Handler) openapi(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, h.openAPI())
}
