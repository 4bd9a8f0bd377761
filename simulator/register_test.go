package simulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forewarn/forewarn/ticketing"
)

func registryFleet(t *testing.T, n int) *Fleet {
	o := DefaultOptions()
	o.Devices, o.Kinds, o.Scenarios = n, AllKinds(), []string{"all"}
	o.Interval, o.Step, o.SimDuration, o.Start = 0, time.Hour, 24*time.Hour, start
	require.NoError(t, o.Validate())
	return NewFleet(o, o.Start)
}

// The registry of a fleet: one owner per site, every device owned by a
// listed owner, each customer valid by the registry's own rules, some
// premium with placeholder channels that leave no machine.
func TestFleetRegistry(t *testing.T) {
	f := registryFleet(t, 200)
	customers, devices := f.Registry()
	require.Len(t, devices, 200)
	require.Len(t, customers, 100, "two devices per site, one owner per site")
	byID := map[string]RegistryCustomer{}
	premium := 0
	for _, c := range customers {
		require.NotContains(t, byID, c.ID, "owner listed twice")
		byID[c.ID] = c
		tc := ticketing.Customer{ID: c.ID, Name: c.Name, Tier: c.Tier, Language: c.Language, Timezone: c.Timezone,
			QuietHours: c.QuietHours, Channels: c.Channels}
		require.NoError(t, tc.Normalize(), "customer %s", c.ID)
		if c.Tier == ticketing.TierPremium {
			premium++
			require.NotEmpty(t, c.Channels)
		}
		for _, ch := range c.Channels {
			require.Empty(t, ch.URL, "no webhook: nothing to call")
			if ch.Type == "email" {
				require.True(t, strings.HasSuffix(ch.Address, ".invalid"), ch.Address)
			}
		}
	}
	require.Greater(t, premium, 5)
	require.Less(t, premium, 50)
	for i, d := range devices {
		require.Equal(t, string(f.ID(i)), d.ID)
		require.Contains(t, byID, d.CustomerID)
		require.Equal(t, f.Kind(i).Model(), d.Model)
		require.Equal(t, f.Site(i), d.Site)
		require.Contains(t, kindSpecs[f.Kind(i)].firmware, d.Firmware)
		td := ticketing.Device{ID: d.ID, Model: d.Model, CustomerID: d.CustomerID, Site: d.Site, Firmware: d.Firmware}
		require.NoError(t, td.Normalize())
	}
	c2, d2 := registryFleet(t, 200).Registry()
	require.Equal(t, customers, c2, "deterministic from the seed")
	require.Equal(t, devices, d2)
}

// fakeRegistry is an API that stores PUT customers and devices, refuses a
// device whose customer it does not have (as Forewarn does), and records
// the most requests in flight.
type fakeRegistry struct {
	mu                  sync.Mutex
	customers, devices  map[string][]byte
	inFlight, maxFlight atomic.Int64
	failDevice          string
}

func (s *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for m := s.maxFlight.Load(); n > m && !s.maxFlight.CompareAndSwap(m, n); m = s.maxFlight.Load() {
	}
	time.Sleep(time.Millisecond)
	if r.Method != http.MethodPut || r.Header.Get("Authorization") != "Bearer tok" {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b, _ := json.Marshal(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	store := s.customers
	id, ok := strings.CutPrefix(r.URL.Path, "/api/v1/customers/")
	if !ok {
		id, _ = strings.CutPrefix(r.URL.Path, "/api/v1/devices/")
		store = s.devices
		if _, ok := s.customers[body["customer_id"].(string)]; !ok || id == s.failDevice {
			http.Error(w, `{"detail":"customer_id: no customer; create it first"}`, http.StatusBadRequest)
			return
		}
	}
	_, had := store[id]
	store[id] = b
	if had {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
	_, _ = w.Write(b)
}

func TestRegisterFleet(t *testing.T) {
	fake := &fakeRegistry{customers: map[string][]byte{}, devices: map[string][]byte{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	f := registryFleet(t, 60)

	st, err := RegisterFleet(t.Context(), srv.Client(), srv.URL+"/", "tok", f, 3)
	require.NoError(t, err)
	require.Equal(t, RegisterStats{Customers: 30, CustomersCreated: 30, Devices: 60, DevicesCreated: 60, Elapsed: st.Elapsed}, st)
	require.Len(t, fake.customers, 30)
	require.Len(t, fake.devices, 60)
	require.LessOrEqual(t, fake.maxFlight.Load(), int64(3), "bounded concurrency")
	require.JSONEq(t, `{"model":"heatpump-a2","customer_id":"cust-00000","site":"site-00000","firmware":"`+f.firmware(0, f.start)+`"}`,
		string(fake.devices["sim-00000"]))

	// Again: everything is replaced, nothing created.
	st, err = RegisterFleet(t.Context(), srv.Client(), srv.URL, "tok", f, 3)
	require.NoError(t, err)
	require.Equal(t, 30, st.Customers)
	require.Zero(t, st.CustomersCreated)
	require.Equal(t, 60, st.Devices)
	require.Zero(t, st.DevicesCreated)

	// A refusal stops the run with the device and the API's reason.
	fake.mu.Lock()
	fake.failDevice = "sim-00042"
	fake.mu.Unlock()
	_, err = RegisterFleet(t.Context(), srv.Client(), srv.URL, "tok", f, 3)
	require.ErrorContains(t, err, "register device sim-00042")
	require.ErrorContains(t, err, "400 Bad Request")
	require.ErrorContains(t, err, "create it first")

	_, err = RegisterFleet(t.Context(), srv.Client(), srv.URL, "wrong", f, 3)
	require.ErrorContains(t, err, "register customer cust-")
	require.ErrorContains(t, err, "401")
}
