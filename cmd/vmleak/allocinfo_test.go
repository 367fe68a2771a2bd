package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/allocinfo"
	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/synth"
)

// sampleAllocinfo has the shapes rendering must handle: the kernel's tags
// and a module's, a tag gone negative on the sum, one the kernel marked
// inaccurate, and an unreadable tag.
func sampleAllocinfo() *allocinfo.Report {
	on := true
	tags := []allocinfo.Tag{
		{Addr: 0xffffffff82e5ca00, Bytes: 127664128, Calls: 31168, File: "mm/page_ext.c", Line: 270, Function: "alloc_page_ext"},
		{Addr: 0xffffffff82e5ca28, Bytes: 56373248, Calls: 4737, File: "mm/slub.c", Line: 2259, Function: "alloc_slab_page"},
		{Addr: 0xffffffff82e5ca50, Bytes: -256, Calls: 1, File: "mm/percpu.c", Line: 1721, Function: "pcpu_alloc"},
		{Addr: 0xffffffff82e5ca78, File: "init/main.c", Line: 1314, Function: "do_initcalls"},
		{Addr: 0xffffffffc0a00000, Bytes: 232000, Calls: 1000, File: "vmleak_test.c", Line: 42, Function: "grow", Module: "vmleak_test"},
		{Addr: 0xffffffffc0a00028, Bytes: 49152, Calls: 48, File: "vmleak_test.c", Line: 57, Function: "leak", Module: "vmleak_test", Flags: allocinfo.FlagInaccurate},
	}
	bad := []allocinfo.BadTag{{Addr: 0xffffffffc0a00050, Module: "vmleak_test",
		Error: "allocinfo: tag at 0xffffffffc0a00050 of module vmleak_test: kernel: reading 0xffffffffc0a00050: elfcore: physical address 0x1234000 not in dump (excluded)"}}
	return &allocinfo.Report{Schema: allocinfo.Schema, Release: "6.13.0-synth-amd64", Dump: "vmcore", Enabled: &on,
		Tags: tags, Modules: allocinfo.Totals(tags, bad), Unreadable: bad, Warnings: []string{}, Partial: true}
}

func TestGoldenAllocinfo(t *testing.T) {
	var b bytes.Buffer
	rep := sampleAllocinfo()
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "allocinfo.txt", b.Bytes())
	b.Reset()
	writeAllocModules(&b, rep)
	golden(t, "allocinfo-modules.txt", b.Bytes())
	j, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "allocinfo.json", append(j, '\n'))
	var back allocinfo.Report
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	if again, _ := json.MarshalIndent(&back, "", "  "); !bytes.Equal(again, j) {
		t.Error("allocinfo JSON does not round-trip")
	}
}

// synthDump writes a synthetic kernel and returns the arguments that open
// it.
func synthDump(t *testing.T, sk *synth.Kernel) []string {
	t.Helper()
	fs, err := sk.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return []string{fs.Vmcore, "--vmlinux", fs.Vmlinux}
}

func synthAllocTags(cfg synth.Config) (*synth.Kernel, *synth.AllocTags) {
	sk := synth.New(cfg)
	spec := &synth.AllocTags{
		Kernel: []*synth.AllocTag{
			{File: "mm/slub.c", Line: 2259, Function: "alloc_slab_page", Bytes: []uint64{4096, 8192}, Calls: []uint64{1, 2}},
			{File: "init/main.c", Line: 1314, Function: "do_initcalls"},
		},
		Modules: []*synth.AllocModule{{Name: "vmleak_alloc", Tags: []*synth.AllocTag{
			{File: "vmleak_alloc.c", Line: 42, Function: "grow", Bytes: []uint64{116000, 116000}, Calls: []uint64{500, 500}},
		}}},
	}
	sk.AddAllocTags(spec)
	return sk, spec
}

// The command on synthetic dumps: the kernel's format sorted by bytes,
// the selections, the totals, a partial result's exit code and a kernel
// without profiling in one line.
func TestAllocinfoCommand(t *testing.T) {
	cfg := synth.Config{Version: synth.V6_10, AllocProfiling: true}
	sk, _ := synthAllocTags(cfg)
	dump := synthDump(t, sk)
	const (
		header = "allocinfo - version: 1.0\n#     <size>  <calls> <tag info>\n"
		grow   = "      232000     1000 vmleak_alloc.c:42 [vmleak_alloc] func:grow \n"
		slab   = "       12288        3 mm/slub.c:2259 func:alloc_slab_page \n"
		init   = "           0        0 init/main.c:1314 func:do_initcalls \n"
	)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"by bytes", nil, header + grow + slab + init},
		{"kernel order", []string{"--sort", "kernel"}, header + slab + init + grow},
		{"nonzero", []string{"--nonzero", "--sort", "location"}, header + slab + grow},
		{"a module", []string{"--module", "vmleak_alloc"}, header + grow},
		{"the kernel", []string{"--module", "kernel"}, header + slab + init},
		{"by module", []string{"--by-module"}, "" +
			"MODULE                       TAGS          BYTES      SIZE      CALLS UNREADABLE\n" +
			"vmleak_alloc                    1         232000    226.6K       1000          0\n" +
			"kernel                          2          12288     12.0K          3          0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := vmleak(t, append(append([]string{"allocinfo"}, dump...), tc.args...)...)
			if code != ExitOK || errs != "" {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			if out != tc.want {
				t.Errorf("have:\n%s\nwant:\n%s", out, tc.want)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		code, out, errs := vmleak(t, append(append([]string{"allocinfo"}, dump...), "--json", "--nonzero")...)
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errs)
		}
		var rep allocinfo.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Tags) != 2 || rep.Tags[0].Function != "grow" || rep.Schema != allocinfo.Schema || rep.Partial {
			t.Errorf("report %+v", rep)
		}
	})
	t.Run("bad sort", func(t *testing.T) {
		if code, _, errs := vmleak(t, append(append([]string{"allocinfo"}, dump...), "--sort", "size")...); code != ExitUsage || !strings.Contains(errs, "--sort must be one of bytes, calls, location, kernel") {
			t.Errorf("exit %d, stderr %q", code, errs)
		}
	})
	t.Run("partial", func(t *testing.T) {
		sk, spec := synthAllocTags(cfg)
		sk.Poke64(spec.Modules[0].Tags[0].VA+sk.Offset("struct alloc_tag", "counters"), 0)
		code, out, errs := vmleak(t, append([]string{"allocinfo"}, synthDump(t, sk)...)...)
		if code != ExitPartial {
			t.Errorf("exit %d, want %d", code, ExitPartial)
		}
		if out != header+slab+init {
			t.Errorf("output:\n%s", out)
		}
		if !strings.Contains(errs, "vmleak: warning: allocinfo: tag at 0xffffffffc0") || !strings.Contains(errs, "counters pointer outside per-CPU space: NULL") {
			t.Errorf("stderr %q", errs)
		}
	})
	t.Run("not enabled", func(t *testing.T) {
		code, out, errs := vmleak(t, append([]string{"allocinfo"}, synthDump(t, synth.New(synth.Config{Version: synth.V6_10}))...)...)
		if code != ExitInput || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "vmleak: allocinfo: the kernel has no allocation profiling") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})
}

// On every real fixture (Debian kernels: none enables profiling) the
// command says so in one line and exits 3.
func TestAllocinfoRealNotEnabled(t *testing.T) {
	for _, m := range fixture.All(t) {
		d := m.Dumps[0]
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			code, out, errs := vmleak(t, "allocinfo", m.DumpPath(d), "--vmlinux", m.Vmlinux())
			if code != ExitInput || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "CONFIG_MEM_ALLOC_PROFILING") {
				t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
			}
		})
	}
}
