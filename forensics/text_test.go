package forensics

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A synthetic kernel text for the comparison: a few functions, each with
// one kind of patch site, a listed module and some unknown memory.
const (
	tStart  = uint64(0xffffffff81000000)
	tSize   = 0x3000
	tMod    = uint64(0xffffffffc0000000) // a listed module's text
	tUnk    = uint64(0xffffffffc8000000) // no module
	tKASLR  = uint64(0x20000000)
	tFentry = 0x800 // __fentry__
	tCaller = 0x880 // ftrace_caller
	tTramp  = 0xa00 // a static call trampoline
)

type tFunc struct {
	name      string
	off, size int
}

var tFuncs = []tFunc{
	{"fa", 0x000, 0x40}, {"fb", 0x100, 0x40}, {"fc", 0x200, 0x40}, {"fd", 0x300, 0x40},
	{"fe", 0x400, 0x40}, {"ff", 0x500, 0x40}, {"fg", 0x600, 0x40}, {"fh", 0x700, 0x40},
	{"__fentry__", tFentry, 1}, {"ftrace_caller", tCaller, 1}, {"__SCT__x", tTramp, 8},
	{"fi", 0x1000, 0x40}, {"fj", 0x2000, 0x40},
}

type tWorld struct{}

func (tWorld) Resolve(va uint64) Place {
	switch {
	case va >= tStart && va < tStart+tSize:
		if s, _, ok := (tWorld{}).FuncStart(va); ok {
			for _, f := range tFuncs {
				if tStart+uint64(f.off) == s {
					return Place{Where: InKernelText, Name: fmt.Sprintf("%s+%#x", f.name, va-s)}
				}
			}
		}
		return Place{Where: InKernelText, Name: fmt.Sprintf("%#x", va)}
	case va >= tMod && va < tMod+0x1000:
		return Place{Where: InModule, Module: "mod", Name: fmt.Sprintf("mod:handler+%#x", va-tMod)}
	}
	return Place{Where: InUnknown, Name: fmt.Sprintf("unknown memory %#x", va)}
}

func (tWorld) FuncStart(va uint64) (uint64, uint64, bool) {
	for _, f := range tFuncs {
		if s := tStart + uint64(f.off); va >= s && va < s+uint64(f.size) {
			return s, uint64(f.size), true
		}
	}
	return 0, 0, false
}

// rel32 encodes a 5-byte call (e8) or jmp (e9) at off to target.
func rel32(op byte, off int, target uint64) []byte {
	b := []byte{op, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[1:], uint32(target-(tStart+uint64(off)+5)))
	return b
}

func tImage() []byte {
	w := make([]byte, tSize)
	for i := range w {
		w[i] = 0xcc
	}
	put := func(off int, b ...byte) { copy(w[off:], b) }
	put(0x000, rel32(0xe8, 0, tStart+tFentry)...) // fa: call __fentry__
	put(0x005, 0x48, 0x89, 0xe5, 0xc3)
	put(0x100, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3) // fb: jump label nop
	put(0x200, 0x55, 0x48, 0x89, 0xe5)             // fc: ...
	for i := 0x204; i < 0x210; i++ {
		w[i] = 0x90
	}
	put(0x210, rel32(0xe8, 0x210, tStart+0x900)...)  // fc+0x10: an alternative
	put(0x300, rel32(0xe8, 0x300, tStart+tTramp)...) // fd: static call site
	put(0x400, 0x48, 0xb8)                           // fe: movabs $ff, %rax
	binary.LittleEndian.PutUint64(w[0x402:], tStart-tKASLR+0x500)
	put(0x40a, 0xc3)
	put(0x500, 0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3, 0x90, 0x90) // ff: push; mov; pop; ret
	put(0x600, 0xf0, 0x0f, 0xb1, 0x11, 0xc3)                   // fg: lock cmpxchg
	put(0x700, 0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3)             // fh: kprobed
	put(tFentry, 0xc3)
	put(tCaller, 0xc3)
	put(tTramp, rel32(0xe9, tTramp, tStart+0x500)...)
	put(0x1000, 0x55, 0x5d, 0xc3)
	put(0x2000, 0x48, 0xb8, 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, 0xc3) // fj: runtime const
	return w
}

var errTMissing = errors.New("missing page")

type tCase struct {
	name    string
	patch   map[int][]byte // dump bytes at offsets
	missing []int          // page offsets absent from the dump
	setup   func(in *textInput)
	counts  map[string]int // explained sites by kind
	finds   []struct {
		kind, sym string
		sev       Severity
	} // findings above info, in order
	check func(t *testing.T, out *textOutput)
}

func tInput() *textInput {
	want := tImage()
	return &textInput{
		start: tStart, want: want, kaslr: tKASLR, world: tWorld{},
		missing: func(err error) bool { return errors.Is(err, errTMissing) },
		sites: []textSite{
			{addr: tStart + 0x000, n: 5, kind: siteFtrace},
			{addr: tStart + 0x100, kind: siteJumpLabel, target: tStart + 0x105},
			{addr: tStart + 0x210, n: 5, kind: siteAlternative},
			{addr: tStart + 0x300, n: 5, kind: siteStaticCall, target: tMod + 0x10},
			{addr: tStart + 0x600, n: 1, kind: siteSMPLock},
			{addr: tStart + 0x2002, n: 8, kind: siteRuntimeConst, width: 8, name: "c", value: 0xffff888012345678, valueKnown: true},
		},
		staticCallText: textRange{tStart + tTramp, tStart + tTramp + 8},
		ftraceCallers:  map[uint64]string{tStart + tCaller: "ftrace_caller"},
		ops:            []textFtraceOps{{addr: 0xffff888000001000, fn: tMod + 0x40, filter: map[uint64]bool{tStart: true}}},
		kprobes:        map[uint64]*textKprobe{tStart + 0x700: {addr: tStart + 0x700, kp: 0xffff888000002000, handlers: []uint64{tMod + 0x80}}},
	}
}

type tFind = struct {
	kind, sym string
	sev       Severity
}

func TestCompareText(t *testing.T) {
	le64 := func(v uint64) []byte { b := make([]byte, 8); binary.LittleEndian.PutUint64(b, v); return b }
	cases := []tCase{
		{name: "clean"},
		{name: "ftrace nop", patch: map[int][]byte{0: {0x0f, 0x1f, 0x44, 0, 0}}, counts: map[string]int{siteFtrace: 1}},
		{name: "ftrace enabled, module's ops", patch: map[int][]byte{0: rel32(0xe8, 0, tStart+tCaller)},
			counts: map[string]int{siteFtrace + " (enabled)": 1}, finds: []tFind{{"ftrace-site", "fa+0x0", Medium}}},
		{name: "ftrace site calling elsewhere", patch: map[int][]byte{0: rel32(0xe8, 0, tStart+0x500)},
			finds: []tFind{{"patched-text", "fa+0x0", High}}},
		{name: "jump label on", patch: map[int][]byte{0x100: {0xe9, 0, 0, 0, 0}}, counts: map[string]int{siteJumpLabel: 1}},
		{name: "jump label to a module", patch: map[int][]byte{0x100: rel32(0xe9, 0x100, tMod)},
			finds: []tFind{{"inline-hook", "fb+0x0", High}}},
		{name: "alternative", patch: map[int][]byte{0x210: {0x0f, 0xae, 0xe8, 0x66, 0x90}}, counts: map[string]int{siteAlternative: 1}},
		{name: "alternative branching out of text", patch: map[int][]byte{0x210: rel32(0xe8, 0x210, tUnk)},
			finds: []tFind{{"patched-text", "fc+0x10", High}},
			check: func(t *testing.T, out *textOutput) {
				if f := out.findings[0]; f.Target != tUnk || !strings.HasPrefix(f.TargetName, "unknown memory") {
					t.Errorf("target %#x %q", f.Target, f.TargetName)
				}
			}},
		{name: "static call into a module", patch: map[int][]byte{0x300: rel32(0xe8, 0x300, tMod+0x10)}, counts: map[string]int{siteStaticCall: 1}},
		{name: "static call into unknown memory", patch: map[int][]byte{0x300: rel32(0xe8, 0x300, tUnk)},
			finds: []tFind{{"inline-hook", "fd+0x0", High}}},
		{name: "static call trampoline", patch: map[int][]byte{tTramp: rel32(0xe9, tTramp, tMod+0x10)}, counts: map[string]int{siteStaticTramp: 1}},
		{name: "kaslr relocation", patch: map[int][]byte{0x402: le64(tStart + 0x500)}, counts: map[string]int{kindKASLRReloc: 1}},
		{name: "kaslr relocation at a listed reloc", patch: map[int][]byte{0x402: le64(tStart + 0x500)}, counts: map[string]int{kindKASLRReloc: 1},
			setup: func(in *textInput) { in.relocsKnown, in.relocs = true, []textReloc{{addr: tStart + 0x402, width: 8}} }},
		{name: "kaslr-like change where no reloc is", patch: map[int][]byte{0x402: le64(tStart + 0x500)},
			setup: func(in *textInput) { in.relocsKnown = true }, finds: []tFind{{"patched-text", "fe+0x0", High}}},
		{name: "inline hook", patch: map[int][]byte{0x500: rel32(0xe9, 0x500, tMod+0x20)}, finds: []tFind{{"inline-hook", "ff+0x0", High}},
			check: func(t *testing.T, out *textOutput) {
				f := out.findings[0]
				if f.Target != tMod+0x20 || f.TargetName != "mod:handler+0x20" || f.Module != "mod" || f.Addr != tStart+0x500 || len(f.Evidence) != 2 ||
					!strings.Contains(f.Evidence[0], "push %rbp") || !strings.Contains(f.Evidence[1], "jmpq 0xffffffffc0000020") {
					t.Errorf("%+v", f)
				}
			}},
		{name: "patched text", patch: map[int][]byte{0x502: {0x31, 0xc0}}, finds: []tFind{{"patched-text", "ff+0x1", High}},
			check: func(t *testing.T, out *textOutput) {
				// The boundary is the vmlinux instruction holding the change:
				// mov %rsp,%rbp at ff+1.
				if f := out.findings[0]; f.Size != 3 || !strings.Contains(f.Evidence[0], "mov %rsp,%rbp") {
					t.Errorf("%+v", f)
				}
			}},
		{name: "undecodable bytes, and the check goes on", patch: map[int][]byte{0x501: {0x0f, 0x04}, 0x1000: rel32(0xe9, 0x1000, tUnk)},
			finds: []tFind{{"patched-text", "ff+0x1", High}, {"inline-hook", "fi+0x0", High}},
			check: func(t *testing.T, out *textOutput) {
				if out.undecodable != 1 || !strings.Contains(strings.Join(out.findings[0].Evidence, "\n"), "do not decode") {
					t.Errorf("undecodable %d, %v", out.undecodable, out.findings[0].Evidence)
				}
			}},
		{name: "smp lock to ds", patch: map[int][]byte{0x600: {0x3e}}, counts: map[string]int{siteSMPLock: 1}},
		{name: "smp lock to something else", patch: map[int][]byte{0x600: {0x90}}, finds: []tFind{{"patched-text", "fg+0x0", High}}},
		{name: "kprobe int3, handler in a module", patch: map[int][]byte{0x700: {0xcc}}, counts: map[string]int{siteKprobe: 1},
			finds: []tFind{{"kprobe-site", "fh+0x0", Medium}}},
		{name: "runtime constant", patch: map[int][]byte{0x2002: le64(0xffff888012345678)}, counts: map[string]int{siteRuntimeConst: 1}},
		{name: "runtime constant of another value", patch: map[int][]byte{0x2002: le64(0xffff888012345000)},
			finds: []tFind{{"patched-text", "fj+0x2", High}}},
		{name: "missing page", missing: []int{0x1000}, patch: map[int][]byte{0x1000: rel32(0xe9, 0x1000, tUnk)},
			check: func(t *testing.T, out *textOutput) {
				if len(out.missing) != 1 || out.missing[0] != (textRange{tStart + 0x1000, tStart + 0x2000}) || out.checked != tSize-0x1000 {
					t.Errorf("missing %v, checked %d", out.missing, out.checked)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tInput()
			dump := append([]byte(nil), in.want...)
			for off, b := range tc.patch {
				copy(dump[off:], b)
			}
			in.read = func(p []byte, va uint64) error {
				off := int(va - tStart)
				for _, m := range tc.missing {
					if off < m+0x1000 && off+len(p) > m {
						return fmt.Errorf("reading %#x: %w", va, errTMissing)
					}
				}
				copy(p, dump[off:])
				return nil
			}
			if tc.setup != nil {
				tc.setup(in)
			}
			out := compareText(in)
			got := map[string]int{}
			for k, n := range out.counts {
				got[k] = n.Sites
			}
			if fmt.Sprint(got) != fmt.Sprint(orEmpty(tc.counts)) {
				t.Errorf("explained %v, want %v", got, tc.counts)
			}
			var finds []tFind
			for _, f := range out.findings {
				if f.Severity > Info {
					finds = append(finds, tFind{f.Kind, f.Symbol, f.Severity})
				}
			}
			if fmt.Sprint(finds) != fmt.Sprint(tc.finds) {
				t.Errorf("findings %v, want %v", finds, tc.finds)
				for _, f := range out.findings {
					t.Logf("%+v", f)
				}
			}
			if len(tc.missing) == 0 && out.checked != tSize {
				t.Errorf("checked %d bytes, want %d", out.checked, tSize)
			}
			if tc.check != nil && !t.Failed() {
				tc.check(t, out)
			}
		})
	}
}

func orEmpty(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}

// Past maxTextFindings, unexplained regions are counted in one finding.
func TestCompareTextCap(t *testing.T) {
	in := tInput()
	dump := append([]byte(nil), in.want...)
	for i := 0; i < maxTextFindings+10; i++ {
		dump[0x1100+i*16] = 0x90 // int3 padding turned into nops, outside any function
	}
	in.read = func(p []byte, va uint64) error { copy(p, dump[va-tStart:]); return nil }
	out := compareText(in)
	if out.unexplained != maxTextFindings+10 || len(out.findings) != maxTextFindings+1 ||
		!strings.Contains(out.findings[maxTextFindings].Summary, "10 more") {
		t.Errorf("%d unexplained, %d findings", out.unexplained, len(out.findings))
	}
}

func TestTextDecode(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want string
		n    int
	}{
		{[]byte{0xf3, 0x0f, 0x1e, 0xfa}, "endbr64", 4},
		{[]byte{0x0f, 0x01, 0xd9}, "vmmcall", 3},
		{[]byte{0x0f, 0x01, 0xc1}, "vmcall", 3},
		{[]byte{0x67, 0x48, 0x0f, 0xb9, 0x3a}, "ud1", 5},
		{[]byte{0x2e, 0x2e, 0x2e, 0x31, 0xc0}, "cs cs cs xor %eax,%eax", 5},
		{[]byte{0x0f, 0x1f, 0x44, 0x00, 0x00}, "nopl (%rax,%rax)", 5},
	} {
		in, err := textDecode(tc.b, tStart)
		if err != nil || in.String() != tc.want || in.len != tc.n {
			t.Errorf("% x: %q (%d) %v, want %q (%d)", tc.b, in.String(), in.len, err, tc.want, tc.n)
		}
	}
	if _, err := textDecode([]byte{0x0f, 0x04}, tStart); !errors.Is(err, errTextUndecodable) {
		t.Errorf("0f 04 decodes: %v", err)
	}
}
