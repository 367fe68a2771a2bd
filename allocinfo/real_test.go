package allocinfo_test

import (
	"bufio"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/allocinfo"
	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
)

// No Debian kernel enables CONFIG_MEM_ALLOC_PROFILING: every fixture
// (6.1, 6.12, 7.x) is ErrNotEnabled. Independently of vmleak's symbol
// reader, the vmlinux's .symtab (read with debug/elf) has nothing
// lib/alloc_tag.c defines, and its tag section, where the linker script
// leaves the markers (6.12), is empty; the kernel's own config, where the
// image package ships one, does not set the option.
func TestRealNotEnabled(t *testing.T) {
	checked := map[string]bool{} // vmlinux files whose symbols were read
	for _, m := range fixture.All(t) {
		d := m.Dumps[0] // every file of a fixture holds the same kernel
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			k := testkernel.Open(t, m, d)
			_, err := allocinfo.Read(k)
			if !errors.Is(err, allocinfo.ErrNotEnabled) {
				t.Fatalf("error %v, want ErrNotEnabled", err)
			}
			if checked[m.Vmlinux()] {
				return
			}
			checked[m.Vmlinux()] = true
			ef, err := elf.Open(m.Vmlinux())
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			syms, err := ef.Symbols()
			if err != nil {
				t.Fatal(err)
			}
			markers := map[string]uint64{}
			for _, s := range syms {
				switch s.Name {
				case "mem_alloc_profiling_key", "alloc_tag_cttype", "_shared_alloc_tag":
					t.Errorf("%s has %s at %#x", m.Vmlinux(), s.Name, s.Value)
				case "__start_alloc_tags", "__stop_alloc_tags":
					markers[s.Name] = s.Value
				}
			}
			if len(markers) > 0 && (len(markers) != 2 || markers["__start_alloc_tags"] != markers["__stop_alloc_tags"]) {
				t.Errorf("%s: tag section markers %#x, not one empty section", m.Vmlinux(), markers)
			}
			t.Logf("tag section markers: start %#x, stop %#x", markers["__start_alloc_tags"], markers["__stop_alloc_tags"])
			if len(syms) < 10000 {
				t.Errorf("%s has %d symbols: not the full .symtab", m.Vmlinux(), len(syms))
			}
			checkConfig(t, m)
		})
	}
}

// checkConfig reads the kernel's boot/config-<release> where the extracted
// image package has one: CONFIG_MEM_ALLOC_PROFILING must not be set.
func checkConfig(t *testing.T, m *fixture.Manifest) {
	t.Helper()
	for _, kk := range fixture.Kernels() {
		if kk.Release != m.KernelRelease {
			continue
		}
		f, err := os.Open(filepath.Join(kk.Dir, "boot", "config-"+kk.Release))
		if os.IsNotExist(err) {
			t.Logf("%s: no boot/config in the image package; the symbol table alone says so", kk.Release)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		lines := 0
		for sc.Scan() {
			lines++
			if strings.HasPrefix(sc.Text(), "CONFIG_MEM_ALLOC_PROFILING=") {
				t.Errorf("%s sets %s", f.Name(), sc.Text())
			}
		}
		if err := sc.Err(); err != nil || lines < 1000 {
			t.Errorf("%s: %d lines, %v", f.Name(), lines, err)
		}
		return
	}
	t.Errorf("no extracted kernel %s", m.KernelRelease)
}
