package forensics

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
)

// moduleCheck runs the modules check on k as Run does.
func moduleCheck(t testing.TB, k *kernel.Kernel) (*Context, []Finding, CheckResult) {
	t.Helper()
	c := &Context{K: k}
	c.Modules, c.ModulesErr = k.Modules()
	fs, res := checkModules(c)
	return c, fs, res
}

func above(fs []Finding, s Severity) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Severity > s {
			out = append(out, f)
		}
	}
	return out
}

// On every clean dump of every kernel (5.10, 6.1, 6.12, 7.2; ELF, kdump and
// flattened) the four views agree with the guest's /proc/modules: every
// view names exactly the listed modules, carving finds them and nothing
// else, and the check is clean.
func TestModulesCheckClean(t *testing.T) {
	for _, m := range fixture.All(t) {
		if hasRootkit(t, m) {
			continue // TestModulesCheckRootkit
		}
		for _, d := range m.Dumps {
			t.Run(m.Name+"/"+d.File, func(t *testing.T) {
				want, err := oracle.ParseModules(m.Oracle(t, d.Oracle+".modules"))
				if err != nil {
					t.Fatal(err)
				}
				var wantNames []string
				for _, mo := range want {
					wantNames = append(wantNames, mo.Name)
				}
				slices.Sort(wantNames)
				k := testkernel.Open(t, m, d)
				c, fs, res := moduleCheck(t, k)
				if res.Status != "" || len(fs) != 0 || len(c.Hidden) != 0 {
					t.Errorf("status %q, findings %+v, hidden %v; note %s", res.Status, fs, c.Hidden, res.Note)
				}
				if res.Checked != len(want) {
					t.Errorf("checked %d modules, /proc/modules has %d", res.Checked, len(want))
				}
				l, err := newModLayout(k)
				if err != nil {
					t.Fatal(err)
				}
				views, carvedAt := readViews(c, l, moduleSpace(k))
				names := map[uint64]string{}
				for _, mo := range c.Modules {
					names[mo.Addr] = mo.Name
				}
				for vi, v := range views {
					var have []string
					for _, a := range v.mods {
						have = append(have, names[a])
					}
					slices.Sort(have)
					if !slices.Equal(have, wantNames) || !v.complete() {
						t.Errorf("%s: %v (status %q %v), want %v", viewNames[vi], have, v.status, v.problems, wantNames)
					}
				}
				for a, cv := range carvedAt {
					if cv.err != nil && shaped(cv.err) {
						t.Errorf("carving: a struct module at %#x that does not hold together: %v", a, cv.err)
					}
				}
				t.Logf("%s", res.Note)
			})
		}
	}
}

// rootkitFacts are what the rootkit fixture's manifest says of the module
// that unlinked itself from the modules list (list_del_init).
type rootkitFacts struct {
	Module       string `json:"module"`
	StructModule string `json:"struct_module"`
	CoreBase     string `json:"core_base"`
	CoreSize     uint64 `json:"core_size"`
}

// hasRootkit tells a fixture whose manifest describes a rootkit.
func hasRootkit(t *testing.T, m *fixture.Manifest) bool {
	b, err := os.ReadFile(filepath.Join(m.Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	_, ok := raw["rootkit"]
	return ok
}

func loadRootkit(t *testing.T) (*fixture.Manifest, rootkitFacts) {
	m, err := fixture.LoadManifest("bookworm-rootkit")
	if os.IsNotExist(err) {
		t.Skip("no bookworm-rootkit fixture")
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(m.Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Rootkit rootkitFacts `json:"rootkit"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Rootkit.Module == "" {
		t.Fatal("bookworm-rootkit manifest names no rootkit module")
	}
	return m, raw.Rootkit
}

func hexU(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// vmleak_rootkit took itself off the modules list (list_del_init) and
// kept sysfs and mod_tree: it is the one hidden module, seen by sysfs,
// mod_tree and carving, with its core range, and goes to c.Hidden; the
// listed modules are not flagged.
func TestModulesCheckRootkit(t *testing.T) {
	m, rk := loadRootkit(t)
	addr, base := hexU(t, rk.StructModule), hexU(t, rk.CoreBase)
	for _, d := range m.Dumps {
		t.Run(d.File, func(t *testing.T) {
			k := testkernel.Open(t, m, d)
			c, fs, res := moduleCheck(t, k)
			t.Logf("%s", res.Note)
			if res.Status != "" {
				t.Errorf("status %q: %s", res.Status, res.Note)
			}
			high := above(fs, Medium)
			if len(high) != 1 || len(above(fs, Info)) != 1 {
				t.Fatalf("findings %+v, want one, the hidden module", fs)
			}
			f := high[0]
			ev := strings.Join(f.Evidence, "\n")
			if f.Kind != "hidden-module" || f.Module != rk.Module || f.Addr != addr || f.Size != rk.CoreSize {
				t.Errorf("finding %+v, want hidden-module %s at %#x of %d bytes", f, rk.Module, addr, rk.CoreSize)
			}
			for _, w := range []string{"seen by sysfs, mod_tree, carving", fmt.Sprintf("core %#x-%#x", base, base+rk.CoreSize), "list_del_init", "build-id "} {
				if !strings.Contains(ev, w) {
					t.Errorf("evidence lacks %q:\n%s", w, ev)
				}
			}
			if len(c.Hidden) != 1 || c.Hidden[0].Addr != addr || c.Hidden[0].Name != rk.Module {
				t.Fatalf("hidden %+v", c.Hidden)
			}
			if r, ok := c.Hidden[0].Contains(base); !ok || r.Size != rk.CoreSize {
				t.Errorf("hidden module's ranges %+v lack the core %#x+%d", c.Hidden[0].Ranges, base, rk.CoreSize)
			}
			for _, mo := range c.Modules {
				if mo.Name == rk.Module {
					t.Errorf("%s is on the modules list", rk.Module)
				}
			}
			// What the later checks make of the hook's address (the new
			// getdents64 entry, at the start of the core).
			r, err := NewResolver(k, c.Modules)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range c.Hidden {
				r.AddHidden(h)
			}
			if pl := r.Resolve(base); pl.Where != InHidden || pl.Module != rk.Module || !strings.Contains(pl.Name, "vmleak_rootkit_getdents64+0x0") {
				t.Errorf("%#x resolves to %+v", base, pl)
			}
			t.Logf("%s\n%s", f.Summary, ev)
		})
	}
}

// patchable is the bookworm-qemu ELF dump (6.1), opened as it is and
// reopened with words overwritten.
type patchable struct {
	m    *fixture.Manifest
	path string
	good *kernel.Kernel
	mods []kernel.Module
	l    *modLayout
}

func loadPatchable(t *testing.T) *patchable {
	m := fixture.Load(t, "bookworm-qemu")
	d := m.Dumps[0]
	if d.Format != "elf" {
		t.Fatalf("want the ELF dump first, have %s", d.File)
	}
	k := testkernel.Open(t, m, d)
	mods, err := k.Modules()
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) < 4 {
		t.Fatalf("%d modules; the tests need 4", len(mods))
	}
	l, err := newModLayout(k)
	if err != nil {
		t.Fatal(err)
	}
	return &patchable{m: m, path: m.DumpPath(d), good: k, mods: mods, l: l}
}

func (p *patchable) open(t *testing.T, words map[uint64]uint64) *kernel.Kernel {
	return testkernel.OpenPatched(t, p.m, p.path, p.good, words)
}

func (p *patchable) word(t *testing.T, va uint64) uint64 {
	t.Helper()
	w, err := p.good.ReadPtr(va)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// unlink is list_del_init(&mod->list) as words to write.
func (p *patchable) unlink(t *testing.T, m kernel.Module, words map[uint64]uint64) {
	self := m.Addr + p.l.list
	next, prev := p.word(t, self), p.word(t, self+8)
	words[prev] = next   // prev->next
	words[next+8] = prev // next->prev
	words[self], words[self+8] = self, self
}

// coreSize is the address of the word holding core_layout.size (the low
// half) and text_size.
func (p *patchable) coreSize(t *testing.T, m kernel.Module) uint64 {
	t.Helper()
	r := p.l.regions[0]
	if r.kind != "core" || r.size.Offset() != 8 {
		t.Fatalf("not the 6.1 core_layout: %+v", r)
	}
	return m.Addr + r.off + 8
}

func wantIn(t *testing.T, what, have string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(have, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, have)
		}
	}
}

// Bad input, made by overwriting words of a real dump: a module taken off
// the list as a rootkit does, a list loop, lying sizes, a mod_tree cycle
// and an unreadable tree root. Each is reported with its address and the
// check goes on with the other views.
func TestModulesCheckPatched(t *testing.T) {
	p := loadPatchable(t)
	k := p.good
	victim := p.mods[2]
	treeRoot := func() uint64 {
		root, err := k.Symbol("mod_tree")
		if err != nil {
			t.Fatal(err)
		}
		r, _ := k.Member("struct mod_tree_root", "root")
		tr, _ := k.Member("struct latch_tree_root", "tree")
		return root + r.Offset() + tr.Offset()
	}()
	// A node of the tree with a child, and that child's link.
	var parent uint64
	rbRight, _ := k.Member("struct rb_node", "rb_right")
	rbLeft, _ := k.Member("struct rb_node", "rb_left")
	top := p.word(t, treeRoot)
	for _, off := range []uint64{rbLeft.Offset(), rbRight.Offset()} {
		if ch := p.word(t, top+off); ch != 0 {
			parent = ch
		}
	}
	if parent == 0 {
		t.Fatal("mod_tree root has no child")
	}
	lyingWord := func(m kernel.Module) uint64 {
		w := p.word(t, p.coreSize(t, m))
		return w | 0xffffffff // size 4 GiB - 1, text_size kept
	}

	for _, tc := range []struct {
		name  string
		words func() map[uint64]uint64
		check func(t *testing.T, c *Context, fs []Finding, res CheckResult)
	}{
		{"taken off the list", func() map[uint64]uint64 {
			w := map[uint64]uint64{}
			p.unlink(t, victim, w)
			return w
		}, func(t *testing.T, c *Context, fs []Finding, res CheckResult) {
			if h := above(fs, Info); len(h) != 1 || h[0].Kind != "hidden-module" || h[0].Severity != High || h[0].Module != victim.Name || h[0].Addr != victim.Addr {
				t.Fatalf("findings %+v, want %s hidden", fs, victim.Name)
			}
			wantIn(t, "evidence", strings.Join(fs[0].Evidence, "\n"), "seen by sysfs, mod_tree, carving", "list_del_init", fmt.Sprintf("core %#x-", victim.Ranges[0].Base))
			if len(c.Hidden) != 1 || !slices.Equal(c.Hidden[0].Ranges, victim.Ranges) {
				t.Errorf("hidden %+v, want %+v", c.Hidden, victim)
			}
		}},
		{"list loop", func() map[uint64]uint64 {
			// The third module's next leads back to the first.
			return map[uint64]uint64{victim.Addr + p.l.list: p.mods[0].Addr + p.l.list}
		}, func(t *testing.T, c *Context, fs []Finding, res CheckResult) {
			if res.Status != StatusPartial {
				t.Errorf("status %q, want partial", res.Status)
			}
			wantIn(t, "note", res.Note, "modules list: ", "cycle", fmt.Sprintf("%#x", victim.Addr))
			if len(c.Hidden) != 0 || len(above(fs, Info)) != 0 {
				// The list is read back past the loop: nothing is lost.
				t.Errorf("findings %+v hidden %v", fs, c.Hidden)
			}
		}},
		{"hidden and lying about its size", func() map[uint64]uint64 {
			w := map[uint64]uint64{p.coreSize(t, victim): lyingWord(victim)}
			p.unlink(t, victim, w)
			return w
		}, func(t *testing.T, c *Context, fs []Finding, res CheckResult) {
			h := above(fs, Info)
			if len(h) != 1 || h[0].Kind != "hidden-module" || h[0].Severity != High || h[0].Addr != victim.Addr {
				t.Fatalf("findings %+v, want %s hidden", fs, victim.Name)
			}
			// Carving rejects it; sysfs and the tree lead to it.
			wantIn(t, "evidence", strings.Join(h[0].Evidence, "\n"), "seen by sysfs, mod_tree;", "not a valid struct module", "core size 0xffffffff exceeds")
			if len(c.Hidden) != 0 {
				t.Errorf("a struct module that lies about its size is resolvable: %+v", c.Hidden)
			}
		}},
		{"listed and lying about its size", func() map[uint64]uint64 {
			return map[uint64]uint64{p.coreSize(t, victim): lyingWord(victim)}
		}, func(t *testing.T, c *Context, fs []Finding, res CheckResult) {
			h := above(fs, Info)
			if len(h) != 1 || h[0].Kind != "module-view-mismatch" || h[0].Module != victim.Name {
				t.Fatalf("findings %+v, want %s missing from carving", fs, victim.Name)
			}
			wantIn(t, "summary", h[0].Summary, "missing from carving", "MODULE_STATE_LIVE")
		}},
		{"mod_tree cycle", func() map[uint64]uint64 {
			// A child of the root points back up at the root.
			return map[uint64]uint64{parent + rbLeft.Offset(): top}
		}, func(t *testing.T, c *Context, fs []Finding, res CheckResult) {
			if res.Status != StatusPartial {
				t.Errorf("status %q, want partial", res.Status)
			}
			wantIn(t, "note", res.Note, "mod_tree: cycle: ", fmt.Sprintf("node %#x reached again from %#x", top, parent))
			if len(above(fs, Info)) != 0 {
				t.Errorf("findings %+v", fs)
			}
		}},
		{"mod_tree root unreadable", func() map[uint64]uint64 {
			return map[uint64]uint64{treeRoot: 0xffffffffff7ff000}
		}, func(t *testing.T, c *Context, fs []Finding, res CheckResult) {
			if res.Status != StatusPartial {
				t.Errorf("status %q, want partial", res.Status)
			}
			wantIn(t, "note", res.Note, "mod_tree: node 0xffffffffff7ff000", "sysfs 10")
			if len(above(fs, Info)) != 0 {
				t.Errorf("findings %+v", fs)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, fs, res := moduleCheck(t, p.open(t, tc.words()))
			t.Logf("%+v", res)
			for _, f := range fs {
				t.Logf("%s %s: %s\n\t%s", f.Severity, f.Kind, f.Summary, strings.Join(f.Evidence, "\n\t"))
			}
			tc.check(t, c, fs, res)
		})
	}
}
