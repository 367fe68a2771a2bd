package forensics

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/goldenfile"
	"github.com/vmleak/vmleak/internal/synth"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/modules"
)

// world is a synthetic kernel with the tables the checks read: functions
// in .text, a module's code outside any list, and what a test tampers.
type world struct {
	sk                 *synth.Kernel
	read, write, other uint64 // kernel functions
	evil               uint64 // code in module space no module owns
	listed             uint64 // code of the listed module "tracer"
	tracerBase         uint64
	initFn             uint64 // early_idt_handler_array, in init text
	table, tcp         uint64
}

func newWorld(t *testing.T) *world {
	w := &world{sk: synth.New(synth.Config{Version: synth.V6_1, Forensics: true})}
	sk := w.sk
	w.read = sk.Func("__x64_sys_read", 64)
	w.write = sk.Func("__x64_sys_write", 64)
	ni := sk.Func("__x64_sys_ni_syscall", 16)
	w.other = sk.Func("tcp4_seq_show", 64)
	start, stop, next := sk.Func("tcp_seq_start", 32), sk.Func("tcp_seq_stop", 32), sk.Func("tcp_seq_next", 32)
	exc := sk.Func("asm_exc_divide_error", 32)
	irq := sk.Func("irq_entries_start", 256*8)
	w.initFn = sk.TextBounds()
	w.table = sk.Table("sys_call_table", []uint64{w.read, w.write, ni, ni})
	w.tcp = sk.Table("tcp4_seq_ops", []uint64{start, stop, next, w.other})
	w.tracerBase = sk.ModuleText(2 * synth.PageSize)
	w.listed = w.tracerBase + 0x40
	w.evil = sk.ModuleText(synth.PageSize) + 0x100
	handlers := make([]uint64, 256)
	handlers[0] = exc
	for v := 32; v < 256; v++ {
		handlers[v] = irq + uint64(v-32)*8
	}
	handlers[20] = w.initFn + 20*9 // a reserved vector left at its boot handler
	w.sk.IDT(handlers)
	_ = t
	return w
}

// open writes the world and runs the named checks on it, with the module
// "tracer" listed.
func (w *world) open(t *testing.T) (*Context, *kernel.Kernel) {
	t.Helper()
	k := testkernel.Synth(t, w.sk)
	mods := []kernel.Module{{Name: "tracer", Addr: 0, Ranges: []kernel.ModuleRange{{Kind: "text", Base: w.tracerBase, Size: 2 * synth.PageSize}}}}
	res, err := NewResolver(k, mods)
	if err != nil {
		t.Fatal(err)
	}
	return &Context{K: k, Modules: mods, Resolver: res}, k
}

func word(v uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

func kinds(fs []Finding) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Severity.String()+":"+f.Kind)
	}
	return strings.Join(s, " ")
}

func TestSyscallsSynthetic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(w *world)
		want   string
		module string
	}{
		{"clean", func(w *world) {}, "", ""},
		{"into unknown memory", func(w *world) { w.sk.Tamper(w.table+8, word(w.evil)) }, "high:syscall-hook", ""},
		{"into a listed module", func(w *world) { w.sk.Tamper(w.table, word(w.listed)) }, "high:syscall-hook", "tracer"},
		{"to another kernel function", func(w *world) { w.sk.Tamper(w.table, word(w.write)) }, "high:syscall-hook", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			tc.tamper(w)
			c, _ := w.open(t)
			fs, res := checkSyscalls(c)
			if got := kinds(fs); got != tc.want {
				t.Fatalf("findings %q, want %q: %+v", got, tc.want, fs)
			}
			if res.Checked != 4 || res.Status != "" {
				t.Errorf("result %+v, want 4 entries checked", res)
			}
			if len(fs) == 1 && fs[0].Module != tc.module {
				t.Errorf("module %q, want %q", fs[0].Module, tc.module)
			}
		})
	}
	// The name of a hooked system call comes from its original entry point.
	w := newWorld(t)
	w.sk.Tamper(w.table+8, word(w.evil))
	c, _ := w.open(t)
	fs, _ := checkSyscalls(c)
	if len(fs) != 1 || !strings.Contains(fs[0].Summary, "system call 1 (write) redirected to unknown memory") {
		t.Errorf("summary: %+v", fs)
	}
}

func TestIDTSynthetic(t *testing.T) {
	w := newWorld(t)
	c, _ := w.open(t)
	fs, res := checkIDT(c)
	if kinds(fs) != "info:idt-early-handler" || res.Checked != 256 {
		t.Fatalf("clean IDT: %q %+v", kinds(fs), res)
	}
	w = newWorld(t)
	sk := w.sk
	gate := sk.Symbol("idt_table") + 0x80*16 // vector 0x80
	sk.Tamper(gate, []byte{byte(w.evil), byte(w.evil >> 8)})
	sk.Tamper(gate+6, []byte{byte(w.evil >> 16), byte(w.evil >> 24), byte(w.evil >> 32), byte(w.evil >> 40), byte(w.evil >> 48), byte(w.evil >> 56)})
	c, _ = w.open(t)
	fs, _ = checkIDT(c)
	if kinds(fs) != "high:idt-hook info:idt-early-handler" || fs[0].Target != w.evil || fs[0].Symbol != "idt_table[128]" {
		t.Fatalf("hooked vector 0x80: %+v", fs)
	}
}

func TestFtraceSynthetic(t *testing.T) {
	w := newWorld(t)
	w.sk.FtraceOps(w.other, nil)                        // the kernel's own, all functions
	w.sk.FtraceOps(w.listed, []uint64{w.read, w.write}) // a listed module's
	w.sk.FtraceOps(w.evil, []uint64{w.read + 4})        // nobody's
	c, _ := w.open(t)
	fs, res := checkFtrace(c)
	if got := kinds(fs); got != "high:ftrace-hook medium:ftrace-hook info:ftrace-ops" || res.Checked != 3 {
		t.Fatalf("findings %q, result %+v", got, res)
	}
	if !strings.Contains(fs[0].Evidence[0], "__x64_sys_read+0x4") {
		t.Errorf("filter of the hidden ops: %v", fs[0].Evidence)
	}
	if !strings.Contains(fs[1].Evidence[0], "__x64_sys_read+0x0") || !strings.Contains(fs[1].Evidence[0], "__x64_sys_write+0x0") || fs[1].Module != "tracer" {
		t.Errorf("filter of the module's ops: %+v", fs[1])
	}

	// A loop in the list is reported and ends the walk.
	w = newWorld(t)
	a := w.sk.FtraceOps(w.other, nil)
	b := w.sk.FtraceOps(w.other, nil)
	w.sk.Tamper(a+8, word(b)) // a.next = b, b.next = a
	c, _ = w.open(t)
	_, res = checkFtrace(c)
	if res.Status != StatusPartial || !strings.Contains(res.Note, "loop") {
		t.Errorf("loop: %+v", res)
	}
}

func TestKprobesSynthetic(t *testing.T) {
	w := newWorld(t)
	w.sk.Kprobe(w.read, w.other, 0)
	w.sk.Kprobe(w.write, w.listed, 0)
	w.sk.Kprobe(w.write+8, 0, w.evil)
	c, _ := w.open(t)
	fs, res := checkKprobes(c)
	sortFindings(fs, nil)
	if got := kinds(fs); got != "high:kprobe-hook medium:kprobe-hook info:kprobe" || res.Checked != 3 {
		t.Fatalf("findings %q, result %+v", got, res)
	}
	if fs[0].Symbol != "__x64_sys_write+0x8" || fs[0].Target != w.evil || fs[1].Module != "tracer" {
		t.Errorf("findings: %+v", fs)
	}
}

func TestSeqOpsSynthetic(t *testing.T) {
	w := newWorld(t)
	fake := w.sk.ModuleText(synth.PageSize)
	for i, fn := range []uint64{w.evil, w.evil, w.evil, w.evil} {
		w.sk.Poke64(fake+8*uint64(i), fn)
	}
	w.sk.ProcNet([]string{"tcp", "udp"}, []uint64{w.tcp, fake})
	w.sk.Tamper(w.tcp+24, word(w.evil)) // tcp4_seq_ops.show
	c, _ := w.open(t)
	fs, res := checkSeqOps(c)
	got := kinds(fs)
	// show of tcp4_seq_ops differs from the vmlinux (seq-ops-hook); through
	// /proc/net/tcp the same pointer leads to unknown memory, and
	// /proc/net/udp shows through a table of unknown code.
	if got != "high:seq-ops-hook high:proc-seq-hook high:proc-seq-hook high:proc-seq-hook high:proc-seq-hook high:proc-seq-hook" {
		t.Fatalf("findings %q: %+v", got, fs)
	}
	if fs[0].Symbol != "tcp4_seq_ops.show" || res.Note != "1 seq_operations tables, 2 /proc/net entries" {
		t.Errorf("first %+v, result %+v", fs[0], res)
	}
}

// TestReportGolden runs every check through Run on a kernel with one of
// each hook and compares the JSON report with its golden file; the CLI's
// text rendering of the same report is golden-tested in cmd/vmleak.
func TestReportGolden(t *testing.T) {
	w := newWorld(t)
	w.sk.Tamper(w.table+8, word(w.evil))
	w.sk.FtraceOps(w.listed, []uint64{w.read})
	w.sk.Kprobe(w.write, w.evil, 0)
	w.sk.ProcNet([]string{"tcp"}, []uint64{w.tcp})
	k := testkernel.Synth(t, w.sk)
	rep, err := Run(k, Options{Checks: []string{"syscalls", "idt", "ftrace", "kprobes", "seq_ops"}})
	if err != nil {
		t.Fatal(err)
	}
	rep.Warnings = nil // module-list reading on a kernel without modules: not under test
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	goldenfile.Check(t, filepath.Join("testdata", "synthetic-report.json"), append(b, '\n'))
	if h, _ := rep.Highest(); h != High {
		t.Errorf("highest severity %v, want high", h)
	}
}

// Taint flags become findings rated by what they say about loading: a
// forced load is medium, unsigned and out-of-tree modules low, the crash's
// own flags info; a hidden module's bits name it, marked hidden.
func TestTaintFindings(t *testing.T) {
	tt := modules.Taint{Mask: 1<<0 | 1<<1 | 1<<9 | 1<<12 | 1<<13, String: "Tainted: PF  W   OE",
		Flags: []modules.TaintFlag{
			{Bit: 0, Char: "P", Name: "PROPRIETARY_MODULE", Modules: []string{"nvidia"}},
			{Bit: 1, Char: "F", Name: "FORCED_MODULE"},
			{Bit: 9, Char: "W", Name: "WARN"},
			{Bit: 12, Char: "O", Name: "OOT_MODULE", Modules: []string{"vmleak_test"}},
			{Bit: 13, Char: "E", Name: "UNSIGNED_MODULE", Modules: []string{"vmleak_test"}},
			{Bit: 20, Char: "", Name: ""},
		}}
	fs := taintFindings(tt, map[string]uint64{"rk": 1<<1 | 1<<12 | 1<<13})
	want := []struct {
		sev     Severity
		summary string
		module  string
	}{
		{Low, "kernel tainted P (PROPRIETARY_MODULE) by nvidia", "nvidia"},
		{Medium, "kernel tainted F (FORCED_MODULE) by rk (hidden)", "rk"},
		{Info, "kernel tainted W (WARN)", ""},
		{Low, "kernel tainted O (OOT_MODULE) by vmleak_test, rk (hidden)", ""},
		{Low, "kernel tainted E (UNSIGNED_MODULE) by vmleak_test, rk (hidden)", ""},
		{Info, "kernel tainted  (bit 20)", ""},
	}
	if len(fs) != len(want) {
		t.Fatalf("%d findings: %+v", len(fs), fs)
	}
	for i, w := range want {
		if fs[i].Severity != w.sev || fs[i].Summary != w.summary || fs[i].Module != w.module {
			t.Errorf("flag %d: %s %q module %q; want %s %q %q", i, fs[i].Severity, fs[i].Summary, fs[i].Module, w.sev, w.summary, w.module)
		}
	}
}
