package forensics

import (
	"strings"
	"testing"

	"github.com/vmleak/vmleak/kernel"
)

var testSpace = space{0xffffffffc0000000, 0xffffffffff000000}

// goodCandidate is a 6.1-shaped struct module of 896 bytes at 0x...c0080
// in the data part of its core layout.
func goodCandidate() *candidate {
	name := make([]byte, 56)
	copy(name, "isofs")
	const addr = 0xffffffffc0549080
	return &candidate{
		addr: addr, size: 896, state: stateLive, name: name, mkobjMod: addr,
		listNext: 0xffffffffc0530088, listPrev: 0xffffffff9d6077d0,
		regions: []candRegion{
			{kind: "core", base: 0xffffffffc0546000, size: 0xd000, sub: []uint64{0x2000, 0x3000, 0x3000}, data: true},
			{kind: "init", sub: []uint64{0, 0, 0}},
		},
	}
}

func TestCandidateValidate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func(c *candidate)
		needSelf bool
		want     string // "" valid
		shaped   bool
	}{
		{"valid", func(c *candidate) {}, true, "", false},
		{"list_del_init", func(c *candidate) { c.listNext, c.listPrev = c.addr+8, c.addr+8 }, true, "", false},
		{"list_del poison", func(c *candidate) { c.listNext, c.listPrev = listPoison1, listPoison2 }, true, "", false},
		{"state out of range", func(c *candidate) { c.state = 7 }, true, "state 7 out of range", false},
		{"no NUL", func(c *candidate) {
			for i := range c.name {
				c.name[i] = 'a'
			}
		}, true, "not NUL-terminated", false},
		{"empty name", func(c *candidate) { c.name[0] = 0 }, true, "empty name", false},
		{"control byte", func(c *candidate) { c.name[2] = 0x1b }, true, "has byte 0x1b", false},
		{"no self pointer", func(c *candidate) { c.mkobjMod = 0 }, true, "does not point back", false},
		{"no self pointer, COMING, led by the tree", func(c *candidate) { c.mkobjMod, c.state = 0, stateComing }, false, "", false},
		{"no self pointer, LIVE, led by the tree", func(c *candidate) { c.mkobjMod = 0 }, false, "does not point back", false},
		{"user list pointer", func(c *candidate) { c.listNext = 0x7ffc12340000 }, true, "not a kernel address", false},
		{"lying size", func(c *candidate) { c.regions[0].size = 0xffffffff }, true, "exceeds", true},
		{"outside module space", func(c *candidate) { c.regions[0].base = 0xffff888000000000 }, true, "outside module space", true},
		{"wraps past module space", func(c *candidate) { c.regions[0].base, c.regions[0].size = 0xfffffffffeff0000, 0x20000 }, true, "outside module space", true},
		{"sizes do not nest", func(c *candidate) { c.regions[0].sub = []uint64{0x3000, 0x2000, 0x3000} }, true, "do not nest", true},
		{"ro_after_init past size", func(c *candidate) { c.regions[0].sub[2] = 0xe000 }, true, "do not nest", true},
		{"in the read-only part", func(c *candidate) { c.regions[0].sub = []uint64{0x2000, 0x3000, 0x4000} }, true, "outside its own data region", true},
		{"runs past its region", func(c *candidate) { c.regions[0].size = 0x3200 }, true, "outside its own data region", true},
		{"no region", func(c *candidate) { c.regions[0].size = 0 }, true, "no memory region", true},
		{"6.4 layout", func(c *candidate) {
			c.regions = []candRegion{
				{kind: "text", base: 0xffffffffc0540000, size: 0x6000},
				{kind: "data", base: 0xffffffffc0549000, size: 0x4000, data: true},
				{kind: "rodata", base: 0xffffffffc054e000, size: 0x3000},
			}
		}, true, "", false},
		{"6.4 layout, struct module in text", func(c *candidate) {
			c.regions = []candRegion{
				{kind: "text", base: 0xffffffffc0549000, size: 0x6000},
				{kind: "data", base: 0xffffffffc0550000, size: 0x4000, data: true},
			}
		}, true, "outside its own data region", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goodCandidate()
			tc.edit(c)
			err := c.validate(testSpace, stateUnformed, tc.needSelf)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want == "":
				return
			case err == nil:
				t.Fatalf("accepted, want %q", tc.want)
			case !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q, want %q", err, tc.want)
			}
			if shaped(err) != tc.shaped {
				t.Errorf("shaped %v, want %v (%v)", shaped(err), tc.shaped, err)
			}
		})
	}
}

// judge on synthetic views: which modules are hidden, which mismatched,
// and what a view read in part or a module's state excuses.
func TestJudge(t *testing.T) {
	const all = viewSet(1<<viewList | 1<<viewSysfs | 1<<viewTree | 1<<viewCarve)
	mod := func(name string, addr uint64, views viewSet, state uint64) *modInfo {
		return &modInfo{addr: addr, name: name, views: views, state: state, stateOK: true,
			mod: kernel.Module{Name: name, Addr: addr, Ranges: []kernel.ModuleRange{{Kind: "core", Base: addr &^ 0xfff, Size: 0x5000}}}}
	}
	whole := [numViews]bool{true, true, true, true}
	for _, tc := range []struct {
		name     string
		mods     []*modInfo
		complete [numViews]bool
		want     []string // kind/severity/module of each finding
		hidden   []string
	}{
		{"agree", []*modInfo{mod("a", 0x1000, all, stateLive), mod("b", 0x2000, all, stateLive)}, whole, nil, nil},
		{"hidden from the list", []*modInfo{mod("a", 0x1000, all, stateLive), mod("rk", 0x2000, all&^(1<<viewList), stateLive)}, whole,
			[]string{"hidden-module/high/rk"}, []string{"rk"}},
		{"carved only", []*modInfo{mod("rk", 0x2000, 1<<viewCarve, stateLive)}, whole, []string{"hidden-module/high/rk"}, []string{"rk"}},
		{"carved only, unformed", []*modInfo{mod("gone", 0x2000, 1<<viewCarve, stateUnformed)}, whole, []string{"hidden-module/medium/gone"}, []string{"gone"}},
		{"listed, not in sysfs", []*modInfo{mod("a", 0x1000, all&^(1<<viewSysfs), stateLive)}, whole, []string{"module-view-mismatch/medium/a"}, nil},
		{"listed, not in the tree", []*modInfo{mod("a", 0x1000, all&^(1<<viewTree), stateLive)}, whole, []string{"module-view-mismatch/medium/a"}, nil},
		{"coming, not yet in sysfs nor carved", []*modInfo{mod("a", 0x1000, 1<<viewList|1<<viewTree, stateComing)}, whole, []string{"module-view-mismatch/info/a"}, nil},
		{"coming, not in the tree", []*modInfo{mod("a", 0x1000, 1<<viewList, stateComing)}, whole, []string{"module-view-mismatch/medium/a"}, nil},
		{"going, out of sysfs", []*modInfo{mod("a", 0x1000, all&^(1<<viewSysfs), stateGoing)}, whole, []string{"module-view-mismatch/info/a"}, nil},
		// A list cut short (a truncated dump) may have lost the module to
		// its break: reported, not as proven hiding.
		{"off a list read in part", []*modInfo{mod("a", 0x1000, all, stateLive), mod("b", 0x2000, all&^(1<<viewList), stateLive)}, [numViews]bool{false, true, true, true},
			[]string{"hidden-module/medium/b"}, []string{"b"}},
		{"tree read in part", []*modInfo{mod("a", 0x1000, all&^(1<<viewTree), stateLive)}, [numViews]bool{true, true, false, true}, nil, nil},
		{"invalid, led by sysfs", []*modInfo{{addr: 0x3000, name: "x", views: 1 << viewSysfs, invalid: rejectf(true, "lying size")}}, whole,
			[]string{"hidden-module/high/x"}, nil},
		{"invalid, carved only", []*modInfo{{addr: 0x3000, name: "x", views: 1 << viewCarve, invalid: rejectf(true, "lying size")}}, whole,
			[]string{"invalid-module/medium/x"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, hidden := judge(tc.mods, tc.complete)
			var have, haveHidden []string
			for _, f := range fs {
				have = append(have, f.Kind+"/"+f.Severity.String()+"/"+f.Module)
			}
			for _, h := range hidden {
				haveHidden = append(haveHidden, h.Name)
			}
			if strings.Join(have, " ") != strings.Join(tc.want, " ") || strings.Join(haveHidden, " ") != strings.Join(tc.hidden, " ") {
				t.Errorf("findings %v hidden %v, want %v hidden %v", have, haveHidden, tc.want, tc.hidden)
				for _, f := range fs {
					t.Logf("%+v", f)
				}
			}
			for _, f := range fs {
				if f.Kind == "hidden-module" && f.Size != 0 && !strings.Contains(strings.Join(f.Evidence, "\n"), "core 0x") {
					t.Errorf("hidden module's evidence lacks its range: %v", f.Evidence)
				}
			}
		})
	}
}
