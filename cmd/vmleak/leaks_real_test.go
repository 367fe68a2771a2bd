package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/leaks"
)

// vmleak leaks end to end. On a slub_debug=U dump, --module and --addresses
// give exactly each test module's leaked objects (by their text), and the
// JSON groups them under their allocating sites. On the -d 31 kdump the
// result is partial (exit code 5) and, without tracks, the leaks of the
// generic cache are there under --cache; a misspelt cache is a usage error.
func TestLeaksCommand(t *testing.T) {
	m := fixture.Load(t, "bookworm-slubdbg")
	d := dumpOf(t, m, "qemu1.zlib")
	k := testkernel.Open(t, m, d)
	for _, tm := range []*fixture.TestModule{m.TestModule, m.PeerModule} {
		t.Run("addresses/"+tm.Module, func(t *testing.T) {
			code, out, errs := vmleak(t, "leaks", m.DumpPath(d), "--vmlinux", m.Vmlinux(), "--module", tm.Module, "--addresses")
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			lines := strings.Fields(out)
			if len(lines) != tm.Leak {
				t.Errorf("%d addresses, want the %d leaked objects", len(lines), tm.Leak)
			}
			prefix := map[string]string{"vmleak_test": "VMLEAK-LEAK ", "vmleak_peer": "VMLEAK-PEER "}[tm.Module]
			head := make([]byte, 12)
			for _, l := range lines {
				va, err := strconv.ParseUint(l, 16, 64)
				if err != nil {
					t.Fatalf("address %q: %v", l, err)
				}
				if err := k.ReadVirt(head, va); err != nil || !bytes.HasPrefix(head, []byte(prefix)) {
					t.Errorf("object %#x begins %q (%v), want %q", va, head, err, prefix)
				}
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		code, out, errs := vmleak(t, "leaks", m.DumpPath(d), "--vmlinux", m.Vmlinux(), "--json")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errs)
		}
		var r leaks.Result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if r.Schema != leaks.Schema || r.Partial || r.Unreferenced < int64(m.TestModule.Leak+m.PeerModule.Leak) {
			t.Errorf("schema %d, partial %v, %d unreferenced", r.Schema, r.Partial, r.Unreferenced)
		}
		sites := map[string]int64{}
		for _, c := range r.Caches {
			for _, g := range c.Groups {
				if g.Evidence == leaks.EvidenceTrack {
					sites[g.Owner+" "+strings.SplitN(g.Site, "+", 2)[0]] += g.Objects
				}
			}
		}
		for _, tm := range []*fixture.TestModule{m.TestModule, m.PeerModule} {
			if got := sites[tm.Module+" "+tm.LeakSite]; got != int64(tm.Leak) {
				t.Errorf("%s at %s: %d objects, want %d; sites %v", tm.Module, tm.LeakSite, got, tm.Leak, sites)
			}
		}
	})
	kd := fixture.Load(t, "bookworm-kdump")
	lzo := kd.DumpPath(dumpOf(t, kd, "kdump.lzo"))
	t.Run("partial", func(t *testing.T) {
		code, out, errs := vmleak(t, "leaks", lzo, "--vmlinux", kd.Vmlinux(), "--cache", "kmalloc-1k")
		if code != ExitPartial || !strings.Contains(out, "partial") || !strings.Contains(out, "unattributed") {
			t.Errorf("exit %d (want %d), output:\n%s\nstderr:\n%s", code, ExitPartial, out, errs)
		}
		if !strings.Contains(out, "\nkmalloc-1k ") || strings.Contains(out, "\nkmalloc-8 ") {
			t.Errorf("--cache kmalloc-1k shows other caches or not it:\n%s", out)
		}
	})
	t.Run("usage", func(t *testing.T) {
		code, _, errs := vmleak(t, "leaks", lzo, "--vmlinux", kd.Vmlinux(), "--cache", "no-such-cache")
		if code != ExitUsage || !strings.Contains(errs, "no-such-cache") {
			t.Errorf("exit %d (want %d), stderr:\n%s", code, ExitUsage, errs)
		}
	})
}
