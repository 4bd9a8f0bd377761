package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/forewarn/forewarn/ticketing"
)

// CustomerPut is the body of PUT /api/v1/customers/{id} (DESIGN "REST
// API", registry shapes).
type CustomerPut struct {
	Name       string                `json:"name"`
	Tier       ticketing.Tier        `json:"tier"`
	Language   string                `json:"language"`
	Timezone   string                `json:"timezone"`
	QuietHours *ticketing.QuietHours `json:"quiet_hours,omitempty"`
	Channels   []ticketing.Channel   `json:"channels"`
}

// DevicePut is the body of PUT /api/v1/devices/{id}.
type DevicePut struct {
	Model      string `json:"model"`
	CustomerID string `json:"customer_id"`
	Site       string `json:"site"`
	Firmware   string `json:"firmware"`
}

// A RegistryCustomer is one simulated owner as the simulator registers it.
type RegistryCustomer struct {
	ID string
	CustomerPut
}

// A RegistryDevice is one simulated device as the simulator registers it.
type RegistryDevice struct {
	ID string
	DevicePut
}

// saltOwner draws an owner's tier and locale; it differs from every salt
// of model.go (TestSaltsDistinct).
const saltOwner = 1<<21 | 7

// owner locales: language and time zone, picked per owner from the seed.
var ownerLocales = []struct{ language, timezone string }{
	{"en", "Europe/London"}, {"fr", "Europe/Paris"}, {"de", "Europe/Berlin"},
	{"es", "Europe/Madrid"}, {"it", "Europe/Rome"}, {"nl", "Europe/Amsterdam"},
}

// Registry returns the fleet's owners (one per site, in id order) and
// devices (model, owner, site and the firmware they start with), as
// RegisterFleet puts them. About one owner in five is premium (from the
// seed); premium owners have quiet hours and two placeholder channels that
// reach nothing outside this machine: an e-mail address under the reserved
// .invalid domain and the mqtt channel (the broker of the config). The
// others have no channel.
func (f *Fleet) Registry() ([]RegistryCustomer, []RegistryDevice) {
	var customers []RegistryCustomer
	devices := make([]RegistryDevice, len(f.devices))
	seen := map[uint32]bool{}
	for i, d := range f.devices {
		owner := f.Owner(i)
		devices[i] = RegistryDevice{ID: string(f.ID(i)), DevicePut: DevicePut{
			Model: d.kind.Model(), CustomerID: owner, Site: f.Site(i), Firmware: f.firmware(i, f.start),
		}}
		if seen[d.site] {
			continue
		}
		seen[d.site] = true
		h := hash3(f.seed, uint64(d.site), saltOwner)
		loc := ownerLocales[h%uint64(len(ownerLocales))]
		c := RegistryCustomer{ID: owner, CustomerPut: CustomerPut{
			Name: fmt.Sprintf("Simulated owner %05d", d.site), Tier: ticketing.TierStandard,
			Language: loc.language, Timezone: loc.timezone, Channels: []ticketing.Channel{},
		}}
		if unit(mix(h)) < 0.2 {
			c.Tier = ticketing.TierPremium
			c.QuietHours = &ticketing.QuietHours{Start: "22:00", End: "07:00"}
			c.Channels = []ticketing.Channel{{Type: "email", Address: owner + "@example.invalid"}, {Type: "mqtt"}}
		}
		customers = append(customers, c)
	}
	return customers, devices
}

// RegisterStats counts what RegisterFleet put: created (201) or replaced
// (200, an earlier run registered it).
type RegisterStats struct {
	Customers, CustomersCreated int
	Devices, DevicesCreated     int
	Elapsed                     time.Duration
}

// DefaultRegisterWorkers is RegisterFleet's default concurrency.
const DefaultRegisterWorkers = 8

// RegisterFleet puts every owner as a customer, then every device, through
// Forewarn's REST API at base with an admin token, at most workers requests
// at a time. PUT creates or replaces, so a second run with the same options
// changes nothing but updated_at. The first failure stops it; its error
// names the customer or device and carries the API's problem detail.
func RegisterFleet(ctx context.Context, client *http.Client, base, token string, f *Fleet, workers int) (RegisterStats, error) {
	start := time.Now()
	if workers < 1 {
		workers = DefaultRegisterWorkers
	}
	customers, devices := f.Registry()
	base = strings.TrimRight(base, "/")
	var st RegisterStats
	var created atomic.Int64
	err := putAll(ctx, workers, len(customers), func(ctx context.Context, i int) error {
		c := customers[i]
		ok, err := put(ctx, client, base+"/api/v1/customers/"+url.PathEscape(c.ID), token, c.CustomerPut)
		if err != nil {
			return fmt.Errorf("register customer %s: %w", c.ID, err)
		}
		if ok {
			created.Add(1)
		}
		return nil
	})
	st.Customers, st.CustomersCreated = len(customers), int(created.Load())
	if err != nil {
		return st, err
	}
	created.Store(0)
	err = putAll(ctx, workers, len(devices), func(ctx context.Context, i int) error {
		d := devices[i]
		ok, err := put(ctx, client, base+"/api/v1/devices/"+url.PathEscape(d.ID), token, d.DevicePut)
		if err != nil {
			return fmt.Errorf("register device %s: %w", d.ID, err)
		}
		if ok {
			created.Add(1)
		}
		return nil
	})
	st.Devices, st.DevicesCreated = len(devices), int(created.Load())
	st.Elapsed = time.Since(start)
	return st, err
}

// putAll runs do(0..n-1) on workers goroutines and returns the first error,
// after which the others stop taking work.
func putAll(ctx context.Context, workers, n int, do func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := do(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx) // the first failure, the parent's cancellation, or nil
}

// put sends body as JSON with PUT and reports whether the resource was
// created (201) rather than replaced (200).
func put(ctx context.Context, client *http.Client, u, token string, body any) (bool, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(b))
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return resp.StatusCode == http.StatusCreated, nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return false, fmt.Errorf("PUT %s: status %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
}
