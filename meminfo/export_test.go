package meminfo

import "github.com/vmleak/vmleak/kernel"

// SIMemAvailable exposes si_mem_available()'s arithmetic to the tests.
var SIMemAvailable = siMemAvailable

// AvailableInputs returns the dump's totalreserve_pages and Σ low watermarks.
func AvailableInputs(k *kernel.Kernel) (reserve, wmarkLow int64, err error) {
	r := &reader{k: k, out: &Meminfo{}, memo: map[string]memoVal{}}
	return r.availableInputs()
}
