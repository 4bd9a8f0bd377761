package simulator

import "testing"

// TestSaltsDistinct: every purpose draws from its own salt. (They were once
// all equal: a const block that repeats `1 << 20` rather than counting, so
// a device's fault episodes, charging sessions and defrosts were the same
// random draws.)
func TestSaltsDistinct(t *testing.T) {
	salts := map[string]uint64{
		"phase": saltPhase, "episode": saltEpisode, "draw": saltDraw, "session": saltSession,
		"site": saltSite, "weather": saltWeather, "fault": saltFault, "spike": saltSpike,
		"oddity": saltOddity, "owner": saltOwner,
	}
	seen := map[uint64]string{}
	for name, s := range salts {
		if s < 64 {
			t.Errorf("salt %s = %d overlaps the noise salts (metric index 0..63)", name, s)
		}
		if other, dup := seen[s]; dup {
			t.Errorf("salts %s and %s are both %d", name, other, s)
		}
		seen[s] = name
	}
	// key keeps devices apart for any salt: no two (device, salt) pairs
	// give one hash input, as device<<8|salt did beyond device 4,095.
	for _, c := range []struct{ i, j uint32 }{{0, 4096}, {1, 4097}, {100000, 100000 ^ 4096}} {
		if key(c.i, saltFault) == key(c.j, saltFault) {
			t.Errorf("key(%d) == key(%d) for saltFault", c.i, c.j)
		}
	}
}
