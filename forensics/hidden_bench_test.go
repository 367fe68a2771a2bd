package forensics

import (
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
)

// The modules check on the 6.1 kdump ELF dump (800 MiB): the views and the
// carving of module space. The kernel is opened once; its type lookups are
// cached after the first iteration, as in one run of every check.
func BenchmarkModulesCheck(b *testing.B) {
	m := fixture.Load(b, "bookworm-kdump")
	var d fixture.DumpFile
	for _, x := range m.Dumps {
		if x.File == "kdump.elf" {
			d = x
		}
	}
	k := testkernel.Open(b, m, d)
	mods, merr := k.Modules()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c := &Context{K: k, Modules: mods, ModulesErr: merr}
		if _, res := checkModules(c); res.Status != "" {
			b.Fatalf("%+v", res)
		}
	}
}

// Opening the dump and running the checks once, cold: what `vmleak check`
// costs on the 800 MiB dump (the modules check and what it shares with the
// others, which are measured by their own benchmarks).
func BenchmarkModulesCheckCold(b *testing.B) {
	m := fixture.Load(b, "bookworm-kdump")
	var d fixture.DumpFile
	for _, x := range m.Dumps {
		if x.File == "kdump.elf" {
			d = x
		}
	}
	b.ReportAllocs()
	for range b.N {
		k := testkernel.Open(b, m, d)
		rep, err := Run(k, Options{Checks: []string{"modules"}})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Checks[0].Status != StatusClean {
			b.Fatalf("%+v", rep.Checks[0])
		}
	}
}
