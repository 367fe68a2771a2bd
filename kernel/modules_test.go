package kernel_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
)

func moduleNames(mods []kernel.Module) []string {
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
	}
	return names
}

// Modules lists what the guest's /proc/modules listed, in its order, with
// memory for every module.
func TestModulesAsProcModules(t *testing.T) {
	forEachDump(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, k *kernel.Kernel) {
		want, err := oracle.ParseModules(m.Oracle(t, d.Oracle+".modules"))
		if err != nil {
			t.Fatal(err)
		}
		mods, err := k.Modules()
		if err != nil {
			t.Fatal(err)
		}
		var wantNames []string
		for _, mo := range want {
			wantNames = append(wantNames, mo.Name)
		}
		if have := moduleNames(mods); !slices.Equal(have, wantNames) {
			t.Errorf("modules %v, /proc/modules %v", have, wantNames)
		}
		for _, mo := range mods {
			if len(mo.Ranges) == 0 {
				t.Errorf("%s: no memory ranges", mo.Name)
			}
		}
	})
}

// A broken modules list loses no module that can still be read, and the
// error names the module where it broke.
func TestModulesCorrupt(t *testing.T) {
	c := loadCorruptible(t)
	good, err := c.good.Modules()
	if err != nil {
		t.Fatal(err)
	}
	if len(good) < 4 {
		t.Fatalf("%d modules; the test needs 4", len(good))
	}
	k := c.good
	list := func(m kernel.Module) uint64 { return k.Object(m.Addr, "struct module").Field("list").Addr() }
	listOff := list(good[0]) - good[0].Addr
	broken := good[2] // its list.next is overwritten

	// An entry whose list_head reads but whose name does not: the last 16
	// bytes of RAM in the direct map, the name in the page after it.
	var fake uint64
	for _, r := range k.Dump().PhysRanges() {
		va := k.Layout().PageOffset + r.End - 16
		if _, err := k.ReadPtr(va); err != nil {
			continue
		}
		if _, err := k.ReadPtr(va + 16); err != nil {
			fake = va
			break
		}
	}
	if fake == 0 {
		t.Fatal("no end of RAM followed by unreadable memory")
	}

	for _, tc := range []struct {
		name      string
		words     map[uint64]uint64
		want      []kernel.Module
		listErr   bool   // a *ListError from the broken entry
		cycle     bool   // and it is a cycle
		moduleErr uint64 // the struct module of a *ModuleError, if any
	}{
		{"next poisoned", map[uint64]uint64{list(broken): 0xdead000000000100}, good, true, false, 0},
		{"NULL next", map[uint64]uint64{list(broken): 0}, good, true, false, 0},
		{"next back to the newest module", map[uint64]uint64{list(broken): list(good[0])}, good, true, true, 0},
		{"unreadable module on the list", map[uint64]uint64{
			list(good[1]): fake, fake: list(good[2]), fake + 8: list(good[1]), list(good[2]) + 8: fake,
		}, good, false, false, fake - listOff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := c.open(t, tc.words)
			mods, err := k.Modules()
			if err == nil {
				t.Fatal("no error")
			}
			if !slices.EqualFunc(mods, tc.want, func(a, b kernel.Module) bool {
				return a.Name == b.Name && a.Addr == b.Addr && slices.Equal(a.Ranges, b.Ranges)
			}) {
				t.Errorf("modules %v, want %v", moduleNames(mods), moduleNames(tc.want))
			}
			var le *kernel.ListError
			if errors.As(err, &le) != tc.listErr {
				t.Fatalf("error %v: *ListError %v, want %v", err, !tc.listErr, tc.listErr)
			}
			if tc.listErr {
				if le.From != list(broken) {
					t.Errorf("list error from %#x, want %#x (%s)", le.From, list(broken), broken.Name)
				}
				wantIn(t, "error", err.Error(), "module "+broken.Name, hexVA(broken.Addr))
				if errors.Is(err, kernel.ErrListCycle) != tc.cycle {
					t.Errorf("error %v: cycle %v, want %v", err, !tc.cycle, tc.cycle)
				}
			}
			var me *kernel.ModuleError
			if errors.As(err, &me) != (tc.moduleErr != 0) {
				t.Fatalf("error %v: *ModuleError %v, want %v", err, me != nil, tc.moduleErr != 0)
			}
			if me != nil {
				if me.Addr != tc.moduleErr {
					t.Errorf("module error at %#x, want %#x", me.Addr, tc.moduleErr)
				}
				wantIn(t, "error", err.Error(), hexVA(tc.moduleErr))
			}
		})
	}
}

// ModuleAt reads what Modules reads for each module on the list, and
// fails, naming the address, where no struct module can be read.
func TestModuleAt(t *testing.T) {
	for _, m := range fixture.All(t) {
		d := m.Dumps[0]
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			k := testkernel.Open(t, m, d)
			mods, err := k.Modules()
			if err != nil {
				t.Fatal(err)
			}
			for _, mo := range mods {
				got, err := k.ModuleAt(mo.Addr)
				if err != nil {
					t.Fatal(err)
				}
				if got.Name != mo.Name || got.Addr != mo.Addr || !slices.Equal(got.Ranges, mo.Ranges) {
					t.Errorf("ModuleAt(%#x) = %+v, Modules has %+v", mo.Addr, got, mo)
				}
			}
			const bad = 0xffffffffff7ff000 // fixmap top, not mapped by any guest
			_, err = k.ModuleAt(bad)
			var me *kernel.ModuleError
			if !errors.As(err, &me) || me.Addr != bad {
				t.Errorf("ModuleAt(%#x): error %v, want a *ModuleError at it", uint64(bad), err)
			}
		})
	}
}
