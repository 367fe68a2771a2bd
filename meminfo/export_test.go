package meminfo

import (
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/kernel/mm"
)

// SIMemAvailable exposes si_mem_available()'s arithmetic to the tests.
var SIMemAvailable = siMemAvailable

// AvailableInputs returns the dump's totalreserve_pages and Σ low watermarks.
func AvailableInputs(k *kernel.Kernel) (reserve, wmarkLow int64, err error) {
	m, err := mm.New(k)
	if err != nil {
		return 0, 0, err
	}
	r := &reader{k: k, mm: m, out: &Meminfo{}, memo: map[string]memoVal{}}
	return r.availableInputs()
}
