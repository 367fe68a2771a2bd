package kernel_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
)

// openAll opens every dump file of every fixture.
func forEachDump(t *testing.T, fn func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, k *kernel.Kernel)) {
	for _, m := range fixture.All(t) {
		for _, d := range m.Dumps {
			t.Run(m.Name+"/"+d.File, func(t *testing.T) { fn(t, m, d, testkernel.Open(t, m, d)) })
		}
	}
}

func TestRealKernels(t *testing.T) {
	forEachDump(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, k *kernel.Kernel) {
		want := strings.TrimSpace(m.Oracle(t, d.Oracle+".uname"))
		rel, err := k.Var("init_uts_ns", "struct uts_namespace").Field("name.release").String()
		if err != nil {
			t.Fatal(err)
		}
		if rel != want {
			t.Errorf("init_uts_ns.name.release %q, guest uname -r %q", rel, want)
		}
		if k.Release() != want {
			t.Errorf("Release %q, want %q", k.Release(), want)
		}
		// linux_banner through the page tables: "Linux version <OSRELEASE> (...".
		bva, err := k.Symbol("linux_banner")
		if err != nil {
			t.Fatal(err)
		}
		banner, err := k.ReadCString(bva, 512)
		if err != nil {
			t.Fatal(err)
		}
		osrelease := want
		if k.Info() != nil {
			osrelease = k.Info().OSRelease
		}
		if f := strings.Fields(banner); len(f) < 3 || f[0] != "Linux" || f[2] != osrelease {
			t.Errorf("linux_banner %q, OSRELEASE %q", banner, osrelease)
		}
		wantLoc := "vmcoreinfo"
		if !m.Guest.FwCfg {
			wantLoc = "cpu-state"
		}
		if k.Layout().LocatedBy != wantLoc {
			t.Errorf("located by %s, want %s", k.Layout().LocatedBy, wantLoc)
		}
		wantLevels := 4
		if m.Guest.Machine == "la57" {
			wantLevels = 5
		}
		if k.Layout().Levels != wantLevels {
			t.Errorf("%d-level paging, want %d", k.Layout().Levels, wantLevels)
		}

		// The modules list, newest first like /proc/modules.
		mods, err := oracle.ParseModules(m.Oracle(t, d.Oracle+".modules"))
		if err != nil {
			t.Fatal(err)
		}
		var wantNames, haveNames []string
		for _, mo := range mods {
			wantNames = append(wantNames, mo.Name)
		}
		head, err := k.Symbol("modules")
		if err != nil {
			t.Fatal(err)
		}
		for e, err := range k.ListHead(head, 10000) {
			if err != nil {
				t.Fatal(err)
			}
			name, err := k.Object(e, "struct list_head").ContainerOf("struct module", "list").Field("name").String()
			if err != nil {
				t.Fatal(err)
			}
			haveNames = append(haveNames, name)
		}
		if len(wantNames) == 0 {
			t.Errorf("the guest's /proc/modules capture lists no module")
		}
		if !slices.Equal(haveNames, wantNames) {
			t.Errorf("modules list %v, /proc/modules %v", haveNames, wantNames)
		}

		offs, err := k.PerCPUOffsets()
		if err != nil {
			t.Fatal(err)
		}
		if len(offs) != m.Guest.SMP {
			t.Errorf("%d per-CPU offsets, guest had %d CPUs", len(offs), m.Guest.SMP)
		}
		for i, o := range offs {
			// Each CPU's area lies in the direct map or vmalloc space, page aligned.
			if o%4096 != 0 || o < k.Layout().PageOffset {
				t.Errorf("__per_cpu_offset[%d] = %#x", i, o)
			}
		}
	})
}

func TestWrongVmlinuxRefused(t *testing.T) {
	a := fixture.Load(t, "bookworm-qemu")
	b := fixture.Load(t, "trixie-qemu")
	for _, tc := range []struct {
		name          string
		dump, vmlinux string
		what          string
	}{
		{"6.1 dump, 6.12 vmlinux", a.DumpPath(a.Dumps[0]), b.Vmlinux(), "build-id"},
		{"6.12 dump, 6.1 vmlinux", b.DumpPath(b.Dumps[0]), a.Vmlinux(), "build-id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kernel.Open(tc.dump, kernel.Options{Vmlinux: tc.vmlinux})
			var me *kernel.MismatchError
			if !errors.As(err, &me) || me.What != tc.what {
				t.Fatalf("have error %v, want a %s mismatch", err, tc.what)
			}
			// --force proceeds, and says why it should not have.
			k, err := kernel.Open(tc.dump, kernel.Options{Vmlinux: tc.vmlinux, Force: true})
			if err != nil {
				t.Fatalf("with Force: %v", err)
			}
			defer func() {
				if err := k.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			named := false
			for _, w := range k.Warnings() {
				if strings.Contains(w, tc.what) && strings.Contains(w, "does not match") && strings.Contains(w, tc.vmlinux) {
					named = true
				}
			}
			if !named {
				t.Errorf("with Force: warnings %q name no %s mismatch of %s", k.Warnings(), tc.what, tc.vmlinux)
			}
		})
	}
	t.Run("no VMCOREINFO, 6.12 vmlinux", func(t *testing.T) {
		n := fixture.Load(t, "bookworm-novmci")
		_, err := kernel.Open(n.DumpPath(n.Dumps[0]), kernel.Options{Vmlinux: b.Vmlinux()})
		if err == nil {
			t.Fatal("a 6.12 vmlinux was accepted for a 6.1 dump without VMCOREINFO")
		}
		// Refused because of the vmlinux: its symbols do not locate the
		// kernel (or its banner differs), while the dump's own vmlinux does.
		var me *kernel.MismatchError
		if !errors.As(err, &me) && !strings.Contains(err.Error(), "cannot locate the kernel") {
			t.Errorf("refused for another reason: %v", err)
		}
		testkernel.Open(t, n, n.Dumps[0])
	})
}

// The kernel log decodes on every kernel, starts with the banner, and the
// panic message found in it is the one crash's `sys` reports (PANIC: "").
func TestLogAndPanic(t *testing.T) {
	forEachDump(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, k *kernel.Kernel) {
		log, err := k.Log()
		if err != nil {
			t.Fatal(err)
		}
		if len(log) < 100 || !strings.HasPrefix(log[0].Text, "Linux version "+m.KernelRelease+" ") {
			var first string
			if len(log) > 0 {
				first = log[0].Text
			}
			t.Fatalf("%d records, first %q", len(log), first)
		}
		for i := 1; i < len(log); i++ {
			if log[i].Seq <= log[i-1].Seq {
				t.Fatalf("records out of order at %d: seq %d after %d", i, log[i].Seq, log[i-1].Seq)
			}
		}
		sys := "crash/" + strings.Replace(d.File, "flat-", "", 1) + ".sys"
		if !m.HasOracle(sys) {
			if m.CrashReads() {
				t.Fatalf("no crash output %s for a %s dump", sys, m.KernelRelease)
			}
			// crash cannot read this kernel; a QEMU dump is of a live guest.
			if have := kernel.PanicMessage(log); strings.HasPrefix(d.Producer, "qemu") && have != "" {
				t.Errorf("panic %q in the log of a live guest", have)
			}
			return
		}
		var want string
		found := false
		for _, l := range strings.Split(m.Oracle(t, sys), "\n") {
			if f := strings.TrimSpace(l); strings.HasPrefix(f, "PANIC: ") {
				want = strings.Trim(strings.TrimPrefix(f, "PANIC: "), `"`)
				found = true
			}
		}
		if !found {
			t.Fatalf("%s has no PANIC: line", sys)
		}
		// A genuine kdump is of a panic: comparing "" with "" would prove nothing.
		if strings.HasPrefix(d.Producer, "kdump") && want == "" {
			t.Errorf("%s: crash reports no panic message for a kdump", sys)
		}
		// A QEMU dump is of a live guest: no panic in the log, crash says "".
		if have := kernel.PanicMessage(log); have != want {
			t.Errorf("panic %q, crash says %q", kernel.PanicMessage(log), want)
		}
	})
}
