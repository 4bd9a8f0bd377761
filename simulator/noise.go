package simulator

import "math"

// The fleet draws every random number from a hash of (seed, device, time,
// purpose) instead of a stateful generator. A reading is then a pure
// function of its inputs: the fleet needs no generator per device (state per
// device stays a few bytes), and the order in which devices are generated
// cannot change a value.

// mix is the SplitMix64 finalizer: a bijective, well-mixed 64-bit hash.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hash3 combines a seed and two keys.
func hash3(seed, a, b uint64) uint64 { return mix(mix(seed^mix(a)) ^ b) }

// unit maps h to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// gauss maps h to an approximately standard normal value: the Irwin–Hall
// sum of four 16-bit uniforms, rescaled (range ±3.46, sd 1). One hash per
// value, no logarithm or cosine.
func gauss(h uint64) float64 {
	s := float64(h&0xffff) + float64(h>>16&0xffff) + float64(h>>32&0xffff) + float64(h>>48)
	return (s/65536 - 2) / 0.5773502691896258
}

// smooth is value noise: a standard normal value at every knot of width
// period, cosine-interpolated in between, so it drifts slowly and
// continuously over t (seconds).
func smooth(seed, key uint64, t, period float64) float64 {
	k := math.Floor(t / period)
	x := t/period - k
	a := gauss(hash3(seed, key, uint64(int64(k))))
	b := gauss(hash3(seed, key, uint64(int64(k)+1)))
	w := (1 - math.Cos(math.Pi*x)) / 2
	return a*(1-w) + b*w
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

func round2(v float64) float64 { return math.Round(v*100) / 100 }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
