package forensics

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// The kinds of run-time patching the text check explains, each from the
// kernel's own table of the places it patches (or, for kaslr_reloc, the
// relocations the boot code applies).
const (
	siteAlternative  = "alternative"       // .altinstructions (struct alt_instr)
	siteParavirt     = "paravirt"          // .parainstructions (struct paravirt_patch_site), up to v6.7
	siteJumpLabel    = "jump_label"        // __jump_table (struct jump_entry)
	siteStaticCall   = "static_call"       // .static_call_sites (struct static_call_site)
	siteStaticTramp  = "static_call_tramp" // the __SCT__ trampolines of .static_call.text
	siteFtrace       = "ftrace"            // __mcount_loc: the __fentry__ calls
	siteFtraceCaller = "ftrace_caller"     // ftrace_call, ftrace_regs_call, ftrace_graph_call
	siteRetpoline    = "retpoline"         // .retpoline_sites
	siteReturn       = "return_thunk"      // .return_sites
	siteEndbrSeal    = "ibt_seal"          // .ibt_endbr_seal
	siteCallDepth    = "call_depth"        // .call_sites (call depth tracking thunks)
	siteSMPLock      = "smp_lock"          // .smp_locks
	siteRuntimeConst = "runtime_const"     // runtime_ptr_*/runtime_shift_* (v6.11+)
	siteKprobe       = "kprobe"            // kprobe_table: int3 or the optimized jump
	kindKASLRReloc   = "kaslr_reloc"       // absolute addresses moved by KASLR
)

// textSite is one place the kernel patches its text at run time.
type textSite struct {
	addr uint64 // run-time
	n    int    // bytes; 0: the vmlinux instruction at addr
	kind string
	// jump_label: the entry's jump target; static_call: the key's current
	// function (0 when unknown).
	target uint64
	tail   bool // static_call: a tail call (jmp) site
	// runtime_const: the constant's value and width (8: a pointer, 1: a
	// shift count), and the variable's name.
	value      uint64
	valueKnown bool
	width      int
	name       string
}

// textRange is [start, end) of run-time addresses.
type textRange struct{ start, end uint64 }

func (r textRange) size() uint64 { return r.end - r.start }

// textFtraceOps is one registered struct ftrace_ops.
type textFtraceOps struct {
	addr             uint64
	fn               uint64 // ops->func
	tramp, trampSize uint64 // ops->trampoline (0: none)
	direct           uint64 // ops->direct_call (0: none)
	// filter holds the ips the ops traces (nil: every function); notrace
	// the ones it does not.
	filter, notrace map[uint64]bool
}

func (o *textFtraceOps) traces(ip uint64) bool {
	return (o.filter == nil || o.filter[ip]) && !o.notrace[ip]
}

// textKprobe is one registered kprobe (an aggregate with its probes'
// handlers).
type textKprobe struct {
	addr      uint64 // the probed instruction
	kp        uint64 // struct kprobe
	handlers  []uint64
	optimized bool
	optTarget uint64 // optimized: the detour buffer the jump goes to
	ftrace    bool   // on an ftrace site: no int3, the ftrace call instead
}

// textWorld names addresses and finds the function holding one.
type textWorld interface {
	Resolve(va uint64) Place
	// FuncStart is the start and size of the symbol holding va.
	FuncStart(va uint64) (start, size uint64, ok bool)
}

// textInput is one text image: everything the comparison reads. That is
// the bytes the text must hold at run-time addresses before any run-time
// patching (the vmlinux's text, or a module's core text sections laid out
// at their load addresses and relocated), a reader of the dump's, the
// patch sites and what the validation of their new bytes needs. The
// kernel and each module with a .ko are images of their own, compared by
// the same code.
type textInput struct {
	start uint64 // run-time address of want[0]
	want  []byte // the expected text
	// label names the text in summaries ("kernel text", "module
	// virtio_net's text"), file what want comes from ("vmlinux",
	// "virtio_net.ko"); module is the module's name (findings' Module).
	label, file, module string
	// alsoText are the ranges outside the image its patched branches may
	// go to (a module's: the kernel text); base is the kernel's image,
	// whose bytes a module's static call may inline.
	alsoText []textRange
	base     *textInput
	read     func(p []byte, va uint64) error
	// missing tells a read error of memory absent from the dump.
	missing func(error) bool
	exclude []textRange // not compared (holes between sections)
	kaslr   uint64
	// relocs are the absolute relocations of the text (when the vmlinux
	// keeps them); relocsKnown false means none are known and a KASLR
	// shift is recognized by its value alone.
	relocs      []textReloc
	relocsKnown bool
	sites       []textSite
	// staticCallText holds the static call trampolines.
	staticCallText textRange
	ftraceCallers  map[uint64]string // ftrace_caller, ftrace_regs_caller, ...
	ops            []textFtraceOps
	kprobes        map[uint64]*textKprobe
	world          textWorld
}

// textReloc is one absolute address field in the text.
type textReloc struct {
	addr    uint64
	width   uint8 // 4 or 8
	inverse bool  // the boot code subtracts the offset
}

// textCount is what one kind of patching explained.
type textCount struct {
	Sites int `json:"sites"`
	Bytes int `json:"bytes"`
}

// textOutput is the comparison's result.
type textOutput struct {
	findings    []Finding
	counts      map[string]*textCount
	checked     int // bytes compared
	differ      int // bytes that differ
	missing     []textRange
	unreadable  []textRange
	unexplained int // unexplained regions (each a finding, up to the cap)
	badSites    int // patch sites whose new bytes fail validation
	undecodable int
}

// maxTextFindings caps the findings of unexplained differences: a wrong
// vmlinux (--force) would otherwise give one per function.
const maxTextFindings = 64

// textEntrySlack is how far into a function a hook still counts as at its
// entry: past an endbr64 (4), the __fentry__ call (5) and a little more.
const textEntrySlack = 16

type textCompare struct {
	in      *textInput
	out     *textOutput
	have    []byte
	runs    []textSpan // differing bytes, by offset
	claimed []uint64   // bitset of offsets explained or reported
	funcs   map[uint64][]int32
	rc      map[string][2]uint64 // runtime constants without a variable: value, sites
	insBuf  []textInsn
}

// textSpan is [s, e) of offsets into the text.
type textSpan struct{ s, e int }

func compareText(in *textInput) *textOutput {
	c := &textCompare{in: in, out: &textOutput{counts: map[string]*textCount{}}, funcs: map[uint64][]int32{}}
	c.readDump()
	c.diff()
	c.claimed = make([]uint64, (len(in.want)+63)/64)
	c.sites()
	c.relocations()
	c.unexplained()
	return c.out
}

func (c *textCompare) claim(s, e int) {
	for i := s; i < e; i++ {
		c.claimed[i/64] |= 1 << (i % 64)
	}
}

func (c *textCompare) isClaimed(i int) bool { return c.claimed[i/64]&(1<<(i%64)) != 0 }

const textPage = 4096

// readDump reads the dump's text in chunks, page by page where a chunk
// fails; what cannot be read is taken from the vmlinux (so it shows no
// difference) and recorded.
func (c *textCompare) readDump() {
	in := c.in
	n := len(in.want)
	c.have = make([]byte, n)
	const chunk = 64 * textPage
	for off := 0; off < n; {
		va := in.start + uint64(off)
		end := min(n, off+int(chunk-va%chunk))
		if in.read(c.have[off:end], va) == nil {
			off = end
			continue
		}
		for p := off; p < end; {
			pva := in.start + uint64(p)
			pe := min(end, p+int(textPage-pva%textPage))
			if err := in.read(c.have[p:pe], pva); err != nil {
				copy(c.have[p:pe], in.want[p:pe])
				r := textRange{pva, in.start + uint64(pe)}
				if in.missing != nil && in.missing(err) {
					c.out.missing = appendRange(c.out.missing, r)
				} else {
					c.out.unreadable = appendRange(c.out.unreadable, r)
				}
			}
			p = pe
		}
		off = end
	}
	for _, r := range in.exclude {
		s, e := c.offsets(r.start, r.end)
		copy(c.have[s:e], in.want[s:e])
	}
	c.out.checked = n
	for _, rs := range [][]textRange{c.out.missing, c.out.unreadable, in.exclude} {
		for _, r := range rs {
			s, e := c.offsets(r.start, r.end)
			c.out.checked -= e - s
		}
	}
}

// offsets clips [start, end) to the text and returns offsets.
func (c *textCompare) offsets(start, end uint64) (int, int) {
	lo, hi := c.in.start, c.in.start+uint64(len(c.in.want))
	start, end = max(start, lo), min(end, hi)
	if start >= end {
		return 0, 0
	}
	return int(start - lo), int(end - lo)
}

func appendRange(rs []textRange, r textRange) []textRange {
	if n := len(rs); n > 0 && rs[n-1].end == r.start {
		rs[n-1].end = r.end
		return rs
	}
	return append(rs, r)
}

// diff finds the runs of differing bytes, comparing 8 bytes at a time.
func (c *textCompare) diff() {
	a, b := c.in.want, c.have
	n := len(a)
	c.runs = make([]textSpan, 0, 1024)
	in := false
	start := 0
	step := func(off int, differ bool) {
		switch {
		case differ && !in:
			in, start = true, off
		case !differ && in:
			in = false
			c.runs = append(c.runs, textSpan{start, off})
		}
		if differ {
			c.out.differ++
		}
	}
	off := 0
	for ; off+8 <= n; off += 8 {
		x := binary.LittleEndian.Uint64(a[off:]) ^ binary.LittleEndian.Uint64(b[off:])
		if x == 0 && !in {
			continue
		}
		for i := 0; i < 8; i++ {
			step(off+i, x>>(8*i)&0xff != 0)
		}
	}
	for ; off < n; off++ {
		step(off, a[off] != b[off])
	}
	if in {
		c.runs = append(c.runs, textSpan{start, n})
	}
}

// firstRun is the index of the first run ending after offset s.
func (c *textCompare) firstRun(s int) int {
	return sort.Search(len(c.runs), func(i int) bool { return c.runs[i].e > s })
}

// differs counts the differing bytes in [s, e).
func (c *textCompare) differs(s, e int) int {
	n := 0
	for i := c.firstRun(s); i < len(c.runs) && c.runs[i].s < e; i++ {
		n += min(e, c.runs[i].e) - max(s, c.runs[i].s)
	}
	return n
}

func (c *textCompare) count(kind string, bytes int) {
	t := c.out.counts[kind]
	if t == nil {
		t = &textCount{}
		c.out.counts[kind] = t
	}
	t.Sites++
	t.Bytes += bytes
}

// sites validates every patch site whose bytes differ.
func (c *textCompare) sites() {
	in := c.in
	sites := in.sites // n is filled in where 0
	// The static call trampolines have no table: each differing one is a
	// site, from its symbol (the jmp at its start; RET variants write 5
	// bytes too).
	if r := in.staticCallText; r.end > r.start {
		s, e := c.offsets(r.start, r.end)
		seen := map[uint64]bool{}
		for i := c.firstRun(s); i < len(c.runs) && c.runs[i].s < e; i++ {
			va := in.start + uint64(c.runs[i].s)
			if st, _, ok := in.world.FuncStart(va); ok && !seen[st] {
				seen[st] = true
				sites = append(sites, textSite{addr: st, n: 5, kind: siteStaticTramp})
			}
		}
	}
	for _, kp := range in.kprobes {
		n := 1
		if kp.optimized {
			n = 5
		}
		sites = append(sites, textSite{addr: kp.addr, n: n, kind: siteKprobe})
	}
	// Where sites overlap, the kernel's order decides what is left:
	// alternatives are applied after the retpoline, return and call
	// thunk rewrites (alternative_instructions) and overwrite them, so
	// those are only validated where no alternative claimed the bytes;
	// the sites of exact shape (ftrace, jump labels, static calls, ...)
	// are validated first, and one that fails inside an alternative is
	// left to the alternative's validation.
	altCover := make([]uint64, len(c.claimed))
	for i := range sites {
		if p := textSitePriority(sites[i].kind); p == 1 && sites[i].n > 0 {
			s, e := c.offsets(sites[i].addr, sites[i].addr+uint64(sites[i].n))
			for j := s; j < e; j++ {
				altCover[j/64] |= 1 << (j % 64)
			}
		}
	}
	covered := func(bits []uint64, s, e int) bool {
		for j := s; j < e; j++ {
			if bits[j/64]&(1<<(j%64)) != 0 {
				return true
			}
		}
		return false
	}
	for pass := 0; pass < 3; pass++ {
		for i := range sites {
			st := &sites[i]
			if textSitePriority(st.kind) != pass {
				continue
			}
			s, e := c.offsets(st.addr, st.addr+1)
			if e == s {
				continue // outside the text (init text, modules' sites)
			}
			if st.n == 0 {
				ins, err := textDecode(in.want[s:], st.addr)
				if err != nil {
					continue
				}
				st.n = ins.len
			}
			s, e = c.offsets(st.addr, st.addr+uint64(st.n))
			d := c.differs(s, e)
			if d == 0 {
				continue
			}
			if pass == 2 && covered(c.claimed, s, e) {
				continue
			}
			v := c.validate(st, c.have[s:e])
			if !v.ok && pass == 0 && covered(altCover, s, e) {
				continue
			}
			c.claim(s, e)
			if v.ok {
				c.count(v.kind, d)
				if v.finding != nil {
					c.out.findings = append(c.out.findings, *v.finding)
				}
				continue
			}
			c.out.badSites++
			c.out.findings = append(c.out.findings, c.badSite(st, s, e, v))
		}
	}
}

// textSitePriority orders the validation of overlapping sites: 0 the
// exact shapes, 1 alternatives and paravirt, 2 the thunk rewrites they
// may overwrite.
func textSitePriority(kind string) int {
	switch kind {
	case siteAlternative, siteParavirt:
		return 1
	case siteRetpoline, siteReturn, siteCallDepth:
		return 2
	}
	return 0
}

// relocations explains differences that are the KASLR shift of an absolute
// address: 4 or 8 bytes whose value moved by exactly the offset, at a
// relocation of the vmlinux when it keeps them.
func (c *textCompare) relocations() {
	in := c.in
	delta := in.kaslr
	if delta == 0 {
		return
	}
	matches := func(off, width int, inverse bool) bool {
		if off < 0 || off+width > len(in.want) {
			return false
		}
		if width == 8 {
			d := binary.LittleEndian.Uint64(c.have[off:]) - binary.LittleEndian.Uint64(in.want[off:])
			return d == delta || inverse && d == -delta
		}
		d := binary.LittleEndian.Uint32(c.have[off:]) - binary.LittleEndian.Uint32(in.want[off:])
		return d == uint32(delta) || inverse && d == uint32(-delta)
	}
	for _, r := range c.runs {
		for p := r.s; p < r.e; p++ {
			if c.isClaimed(p) {
				continue
			}
			if in.relocsKnown {
				va := in.start + uint64(p)
				i := sort.Search(len(in.relocs), func(i int) bool { return in.relocs[i].addr+uint64(in.relocs[i].width) > va })
				for ; i < len(in.relocs) && in.relocs[i].addr <= va; i++ {
					rl := in.relocs[i]
					off := int(rl.addr - in.start)
					if w := int(rl.width); matches(off, w, rl.inverse) {
						c.claim(off, off+w)
						c.count(kindKASLRReloc, c.differs(off, off+w))
						break
					}
				}
				continue
			}
			for _, w := range []int{4, 8} {
				done := false
				for off := p - w + 1; off <= p; off++ {
					if off >= 0 && !c.isClaimed(off) && matches(off, w, w == 4) {
						c.claim(off, off+w)
						c.count(kindKASLRReloc, c.differs(off, off+w))
						done = true
						break
					}
				}
				if done {
					break
				}
			}
		}
	}
}

// boundary is the start of the vmlinux instruction holding offset p, from
// decoding its function from the symbol's start; p itself when unknown.
func (c *textCompare) boundary(p int) (int, int, bool) {
	in := c.in
	va := in.start + uint64(p)
	fs, fsize, ok := in.world.FuncStart(va)
	if !ok || fs < in.start {
		return p, p, false
	}
	s, e := c.offsets(fs, fs+max(fsize, 1))
	if p >= e {
		e = min(len(in.want), p+1)
	}
	offs, ok := c.funcs[fs]
	if !ok || (len(offs) > 0 && int(offs[len(offs)-1]) < p-s) {
		offs = offs[:0]
		for off := s; off < max(e, p+1) && off < len(in.want); {
			offs = append(offs, int32(off-s))
			ins, err := textDecode(in.want[off:], in.start+uint64(off))
			if err != nil {
				break
			}
			off += ins.len
		}
		c.funcs[fs] = offs
	}
	i := sort.Search(len(offs), func(i int) bool { return int(offs[i]) > p-s }) - 1
	if i < 0 {
		return p, s, true
	}
	return s + int(offs[i]), s, true
}

// unexplained reports each region of differences nothing explains.
func (c *textCompare) unexplained() {
	for ri := 0; ri < len(c.runs); ri++ {
		r := c.runs[ri]
		for p := r.s; p < r.e; p++ {
			if c.isClaimed(p) {
				continue
			}
			b, fs, ok := c.boundary(p)
			end := c.regionEnd(p)
			c.claim(b, end)
			c.out.unexplained++
			if c.out.unexplained <= maxTextFindings {
				c.out.findings = append(c.out.findings, c.unexplainedFinding(b, end, ok && b-fs < textEntrySlack))
			}
			p = end - 1
		}
	}
	if n := c.out.unexplained - maxTextFindings; n > 0 {
		label, file := c.in.labels()
		c.out.findings = append(c.out.findings, Finding{
			Kind: "patched-text", Severity: High, Module: c.in.module,
			Summary: fmt.Sprintf("%d more unexplained regions of %s differ from the %s (not listed one by one)", n, label, file),
		})
	}
}

// regionEnd extends a region from the unexplained difference at p over
// the vmlinux instructions holding it and any unexplained difference close
// after.
func (c *textCompare) regionEnd(p int) int {
	in := c.in
	end := p + 1
	for {
		if b, _, ok := c.boundary(end - 1); ok {
			if bi, err := textDecode(in.want[b:], in.start+uint64(b)); err == nil {
				end = max(end, b+bi.len)
			}
		}
		end = min(end, len(in.want))
		next := -1
		for q := end; q < min(len(in.want), end+8); q++ {
			if in.want[q] != c.have[q] && !c.isClaimed(q) {
				next = q
				break
			}
		}
		if next < 0 {
			return end
		}
		end = next + 1
	}
}

// textHookTarget is where the dump's instructions send control out of the
// kernel text: a direct jmp/call, movabs+jmp/call through the register, or
// push+ret.
func (c *textCompare) hookTarget(ins []textInsn) (uint64, bool) {
	for i, in := range ins {
		if t, ok := in.target(); ok && in.branches() && !c.inText(t) {
			return t, true
		}
		if i+1 < len(ins) {
			nx := ins[i+1]
			if t, ok := movImm(in); ok && (nx.isJmp() || nx.isCall()) && sameReg(in, nx) && !c.inText(t) {
				return t, true
			}
			if t, ok := pushImm(in); ok && nx.isRet() && !c.inText(t) {
				return t, true
			}
		}
	}
	return 0, false
}

func (c *textCompare) inText(va uint64) bool {
	return va >= c.in.start && va < c.in.start+uint64(len(c.in.want))
}

// allowed tells whether a patched branch may go to va: the image itself or
// the other text it may call (a module's: the kernel's).
func (c *textCompare) allowed(va uint64) bool {
	if c.inText(va) {
		return true
	}
	for _, r := range c.in.alsoText {
		if va >= r.start && va < r.end {
			return true
		}
	}
	return false
}

// wantAt is the expected bytes at [va, va+n) in the image or its base.
func (c *textCompare) wantAt(va uint64, n int) ([]byte, bool) {
	for in := c.in; in != nil; in = in.base {
		if va >= in.start && va+uint64(n) <= in.start+uint64(len(in.want)) {
			return in.want[va-in.start : va-in.start+uint64(n)], true
		}
	}
	return nil, false
}

// labels are the image's label and file, with the kernel's defaults.
func (in *textInput) labels() (string, string) {
	label, file := in.label, in.file
	if label == "" {
		label = "kernel text"
	}
	if file == "" {
		file = "vmlinux"
	}
	return label, file
}

// evidence is the two lines of expected and dump bytes, aligned.
func (in *textInput) evidence(want, have []byte, va uint64) []string {
	_, file := in.labels()
	w := max(len(file)+2, len("dump: "))
	return []string{
		fmt.Sprintf("%-*s%s", w, file+": ", textDisasm(want, va)),
		fmt.Sprintf("%-*s%s", w, "dump: ", textDisasm(have, va)),
	}
}

// suspect is the module a finding of the image names: the target's when
// it lies in another module, else the image's own.
func (in *textInput) suspect(target Place) string {
	if target.Module != "" {
		return target.Module
	}
	return in.module
}

func (c *textCompare) unexplainedFinding(b, end int, atEntry bool) Finding {
	in := c.in
	va := in.start + uint64(b)
	// Decode the dump over the region from the same boundary; the last
	// instruction may run past it.
	var ins []textInsn
	decodeErr := error(nil)
	dumpEnd := b
	for dumpEnd < end {
		i, err := textDecode(c.have[dumpEnd:], in.start+uint64(dumpEnd))
		if err != nil {
			decodeErr = err
			break
		}
		ins = append(ins, i)
		dumpEnd += i.len
	}
	shown := max(end, dumpEnd)
	if decodeErr != nil {
		shown = max(end, min(len(in.want), dumpEnd+8))
		c.out.undecodable++
	}
	sym := in.world.Resolve(va).Name
	label, file := in.labels()
	f := Finding{
		Kind: "patched-text", Severity: High, Addr: va, Symbol: sym, Size: uint64(end - b), Module: in.module,
		Evidence: in.evidence(in.want[b:shown], c.have[b:shown], va),
	}
	if decodeErr != nil {
		f.Evidence = append(f.Evidence, fmt.Sprintf("the dump's bytes at %#x do not decode as an instruction", in.start+uint64(dumpEnd)))
	}
	if t, ok := c.hookTarget(ins); ok {
		p := in.world.Resolve(t)
		f.Target, f.TargetName, f.Module = t, p.Name, in.suspect(p)
		if atEntry {
			f.Kind = "inline-hook"
			f.Summary = fmt.Sprintf("%s is hooked: the dump's code branches to %s, the %s's does not", sym, p.Name, file)
			return f
		}
		f.Summary = fmt.Sprintf("%s at %s is patched to branch to %s; no run-time patching explains it", label, sym, p.Name)
		return f
	}
	f.Summary = fmt.Sprintf("%d bytes of %s at %s differ from the %s; no run-time patching explains them", end-b, label, sym, file)
	return f
}

func (c *textCompare) badSite(st *textSite, s, e int, v textVerdict) Finding {
	in := c.in
	va := st.addr
	sym := in.world.Resolve(va).Name
	f := Finding{
		Kind: "patched-text", Severity: High, Addr: va, Symbol: sym, Size: uint64(e - s), Module: in.module,
		Summary:  fmt.Sprintf("the %s site at %s holds code the kernel's patching does not write: %s", st.kind, sym, v.why),
		Evidence: append([]string{"site: " + st.kind}, in.evidence(in.want[s:e], c.have[s:e], va)...),
	}
	if v.undecodable {
		c.out.undecodable++
	}
	if v.target == 0 {
		if ins, _ := textDecodeAll(c.have[s:e], va); len(ins) > 0 {
			v.target, _ = c.hookTarget(ins)
		}
	}
	if v.target != 0 {
		p := in.world.Resolve(v.target)
		f.Target, f.TargetName, f.Module = v.target, p.Name, in.suspect(p)
		if fs, _, ok := in.world.FuncStart(va); ok && va-fs < textEntrySlack && !c.inText(v.target) {
			f.Kind = "inline-hook"
			f.Summary = fmt.Sprintf("%s is hooked: its %s site branches to %s: %s", sym, st.kind, p.Name, v.why)
		}
	}
	return f
}

// textVerdict is the validation of one site's new bytes.
type textVerdict struct {
	ok          bool
	kind        string   // the count it goes to
	finding     *Finding // an explained site worth more than info
	why         string   // not ok: what is wrong
	target      uint64   // not ok: the offending branch target
	undecodable bool
}

func textBad(format string, args ...any) textVerdict {
	return textVerdict{why: fmt.Sprintf(format, args...)}
}

// validate checks the dump's bytes at a site against what that kind of
// patching writes: decoded, they must be instructions of the expected
// shape whose branches stay in the kernel text, except where the kind
// allows otherwise (static calls into modules' functions, ftrace
// trampolines, kprobe detour buffers).
func (c *textCompare) validate(st *textSite, b []byte) textVerdict {
	switch st.kind {
	case siteSMPLock:
		// alternatives_smp_unlock/lock swap the lock prefix and a ds prefix.
		if b[0] == 0xf0 || b[0] == 0x3e {
			return textVerdict{ok: true, kind: st.kind}
		}
		return textBad("byte %#02x is neither the lock prefix nor its ds replacement", b[0])
	case siteRuntimeConst:
		got := textLE(b, st.width)
		if !st.valueKnown {
			// The variable can be optimized away once runtime_const_init
			// has read it (7.x's __filp_cache): every site of the
			// constant must then hold the one value most of them hold.
			want, n := c.runtimeConst(st.name)
			if got != want {
				return textBad("the constant is %#x, the other %d sites of %s hold %#x", got, n, st.name, want)
			}
			return textVerdict{ok: true, kind: st.kind}
		}
		want := st.value & (1<<(8*st.width) - 1)
		if st.width == 8 {
			want = st.value
		}
		if got != want {
			return textBad("the constant is %#x, %s is %#x", got, st.name, want)
		}
		return textVerdict{ok: true, kind: st.kind}
	}
	ins, err := textDecodeInto(c.insBuf, b, st.addr)
	c.insBuf = ins
	if err != nil {
		v := textBad("%v", err)
		v.undecodable = true
		return v
	}
	switch st.kind {
	case siteJumpLabel:
		if len(ins) == 1 && ins[0].isNop() {
			return textVerdict{ok: true, kind: st.kind}
		}
		if len(ins) == 1 && ins[0].isJmp() {
			if t, ok := ins[0].target(); ok && t == st.target {
				return textVerdict{ok: true, kind: st.kind}
			}
			t, _ := ins[0].target()
			v := textBad("jumps to %#x, the entry's target is %#x", t, st.target)
			v.target = t
			return v
		}
		return textBad("neither a nop nor the entry's jump: %s", textInsnList(ins))
	case siteEndbrSeal:
		if len(ins) == 1 && (ins[0].endbr || ins[0].isNop()) {
			return textVerdict{ok: true, kind: st.kind}
		}
		return textBad("neither endbr64 nor a nop: %s", textInsnList(ins))
	case siteStaticCall, siteStaticTramp:
		return c.validateStaticCall(st, b, ins)
	case siteFtrace:
		return c.validateFtrace(st, ins)
	case siteFtraceCaller:
		return c.validateFtraceCaller(st, ins)
	case siteKprobe:
		return c.validateKprobe(st, ins)
	}
	// Alternatives, paravirt, retpolines, return thunks, call depth
	// thunks: any code, but no branch may leave the kernel text (and, in
	// a module, its own).
	for _, i := range ins {
		if t, ok := i.target(); ok && i.branches() && !c.allowed(t) {
			v := textBad("%s branches to %#x, outside the kernel text", i, t)
			v.target = t
			return v
		}
	}
	return textVerdict{ok: true, kind: st.kind}
}

// textLE is the little-endian value of a 1-, 4- or 8-byte field.
func textLE(b []byte, width int) uint64 {
	switch width {
	case 8:
		return binary.LittleEndian.Uint64(b)
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	}
	return uint64(b[0])
}

// runtimeConst is the value most sites of a runtime constant hold in the
// dump, and how many hold it.
func (c *textCompare) runtimeConst(name string) (uint64, int) {
	if c.rc == nil {
		c.rc = map[string][2]uint64{}
	}
	if v, ok := c.rc[name]; ok {
		return v[0], int(v[1])
	}
	votes := map[uint64]int{}
	for _, st := range c.in.sites {
		if st.kind != siteRuntimeConst || st.name != name {
			continue
		}
		if s, e := c.offsets(st.addr, st.addr+uint64(st.width)); e-s == st.width {
			votes[textLE(c.have[s:e], st.width)]++
		}
	}
	var best uint64
	n := -1
	for v, k := range votes {
		if k > n || k == n && v < best {
			best, n = v, k
		}
	}
	c.rc[name] = [2]uint64{best, uint64(n)}
	return best, n
}

func textInsnList(ins []textInsn) string {
	var s []string
	for _, i := range ins {
		s = append(s, i.String())
	}
	return strings.Join(s, "; ")
}

// validateStaticCall: arch_static_call_transform writes a call (or jmp,
// for tail calls and trampolines) to the key's function, a nop (NULL), a
// ret (tail call of NULL), or "xor %eax,%eax" (__static_call_return0). The
// function may be a listed module's.
func (c *textCompare) validateStaticCall(st *textSite, b []byte, ins []textInsn) textVerdict {
	// A call to a function that is one trap instruction is replaced by
	// that instruction (7.x: WARN's static call to __WARN_trap, whose
	// "ud1 (%edx),%rdi" the #UD handler decodes): the bytes must be the
	// function's own.
	if len(ins) > 0 && ins[0].isTrap() && st.target != 0 && c.allowed(st.target) {
		if w, ok := c.wantAt(st.target, len(b)); ok && bytes.Equal(w, b) {
			return textVerdict{ok: true, kind: st.kind}
		}
		return textBad("a trap that is not the inlined body of the key's function %#x: %s", st.target, textInsnList(ins))
	}
	for _, i := range ins {
		switch {
		case i.isNop(), i.isInt3(), i.isRet():
		case !i.raw() && (i.inst.Op == x86asm.XOR || i.inst.Op == x86asm.UD1):
		case i.isJmp() || i.isCall():
			t, ok := i.target()
			if !ok {
				return textBad("an indirect branch: %s", i)
			}
			if c.allowed(t) {
				continue
			}
			p := c.in.world.Resolve(t)
			if p.Where == InModule {
				continue
			}
			v := textBad("calls %s (%s), neither kernel text nor a listed module", p.Name, p.Where)
			v.target = t
			return v
		default:
			return textBad("%s is not what a static call update writes", i)
		}
	}
	return textVerdict{ok: true, kind: st.kind}
}

// validateFtrace: ftrace writes a nop (disabled) or a call to
// ftrace_caller/ftrace_regs_caller or to an ops' own trampoline (or its
// direct trampoline). An enabled site is worth a finding when a handler
// that runs there is a module's.
func (c *textCompare) validateFtrace(st *textSite, ins []textInsn) textVerdict {
	if len(ins) == 1 && ins[0].isNop() {
		return textVerdict{ok: true, kind: st.kind}
	}
	if len(ins) != 1 || !ins[0].isCall() {
		return textBad("neither a nop nor a call: %s", textInsnList(ins))
	}
	t, ok := ins[0].target()
	if !ok {
		return textBad("an indirect call: %s", ins[0])
	}
	var handlers []uint64
	via := ""
	if name, ok := c.in.ftraceCallers[t]; ok {
		via = name
		for i := range c.in.ops {
			if o := &c.in.ops[i]; o.traces(st.addr) {
				handlers = append(handlers, o.fn)
			}
		}
	} else {
		for i := range c.in.ops {
			o := &c.in.ops[i]
			if o.tramp != 0 && t >= o.tramp && t < o.tramp+max(o.trampSize, 1) {
				via = fmt.Sprintf("the trampoline of ftrace_ops %#x", o.addr)
				handlers = append(handlers, o.fn)
			} else if o.direct != 0 && t == o.direct {
				via = fmt.Sprintf("the direct trampoline of ftrace_ops %#x", o.addr)
				handlers = append(handlers, o.direct)
			}
		}
	}
	if via == "" {
		p := c.in.world.Resolve(t)
		v := textBad("calls %s (%s), not an ftrace trampoline", p.Name, p.Where)
		v.target = t
		return v
	}
	// A kprobe on the site runs through ftrace (kprobe_ftrace_handler): its
	// handlers are the kprobe's.
	kind, what := "ftrace-site", "an enabled ftrace site"
	if kp := c.in.kprobes[st.addr]; kp != nil {
		handlers = append(handlers, kp.handlers...)
		kind, what = "kprobe-site", fmt.Sprintf("a kprobe on ftrace (struct kprobe %#x)", kp.kp)
	}
	v := textVerdict{ok: true, kind: st.kind + " (enabled)"}
	v.finding = c.handlerFinding(st.addr, kind, what, via, t, handlers)
	return v
}

// handlerFinding is a Medium finding when one of the handlers is a
// module's (High when it is in no module nor the kernel), nil otherwise.
func (c *textCompare) handlerFinding(ip uint64, kind, what, via string, target uint64, handlers []uint64) *Finding {
	worst := -1
	var wp Place
	var wa uint64
	rank := map[string]int{InKernelText: 0, InKernel: 0, InModule: 1, InHidden: 2, InInitText: 3, InUnknown: 3}
	for _, h := range handlers {
		p := c.in.world.Resolve(h)
		if r := rank[p.Where]; r > worst {
			worst, wp, wa = r, p, h
		}
	}
	if worst <= 0 {
		return nil
	}
	sev := Medium
	if worst >= 3 {
		sev = High
	}
	sym := c.in.world.Resolve(ip).Name
	return &Finding{
		Kind: kind, Severity: sev, Addr: ip, Symbol: sym, Module: wp.Module, Target: wa, TargetName: wp.Name,
		Summary:  fmt.Sprintf("%s at %s runs %s", what, sym, wp.Name),
		Evidence: []string{fmt.Sprintf("via %s (%#x)", via, target)},
	}
}

// validateFtraceCaller: ftrace_update_ftrace_func and the graph caller's
// enable/disable patch the call (jmp) at these labels to a function in the
// kernel text, or to the one ops' handler.
func (c *textCompare) validateFtraceCaller(st *textSite, ins []textInsn) textVerdict {
	if len(ins) != 1 || !(ins[0].isCall() || ins[0].isJmp()) {
		return textBad("not a call or jmp: %s", textInsnList(ins))
	}
	t, ok := ins[0].target()
	if !ok {
		return textBad("an indirect branch: %s", ins[0])
	}
	if c.inText(t) {
		return textVerdict{ok: true, kind: st.kind}
	}
	for i := range c.in.ops {
		if c.in.ops[i].fn == t {
			v := textVerdict{ok: true, kind: st.kind}
			v.finding = c.handlerFinding(st.addr, "ftrace-site", "the ftrace caller", "ftrace_ops "+fmt.Sprintf("%#x", c.in.ops[i].addr), t, []uint64{t})
			return v
		}
	}
	p := c.in.world.Resolve(t)
	v := textBad("branches to %s (%s), neither kernel text nor an ftrace_ops handler", p.Name, p.Where)
	v.target = t
	return v
}

// validateKprobe: an armed kprobe is an int3 on the probed instruction's
// first byte; an optimized one a jmp to its detour buffer.
func (c *textCompare) validateKprobe(st *textSite, ins []textInsn) textVerdict {
	kp := c.in.kprobes[st.addr]
	if kp == nil {
		return textBad("no kprobe")
	}
	what := ""
	switch {
	case ins[0].isInt3():
		what = "a kprobe (int3)"
		if len(ins) > 1 {
			// Only the first byte is the kprobe's; the rest must match.
			s, _ := c.offsets(st.addr+1, st.addr+1)
			if c.differs(s, s+st.n-1) > 0 {
				return textBad("int3 followed by other changes: %s", textInsnList(ins))
			}
		}
	case kp.optimized && ins[0].isJmp():
		t, _ := ins[0].target()
		if t != kp.optTarget {
			v := textBad("jumps to %#x, the kprobe's detour buffer is %#x", t, kp.optTarget)
			v.target = t
			return v
		}
		what = "an optimized kprobe (jmp)"
	default:
		return textBad("not a kprobe's int3 or jump: %s", textInsnList(ins))
	}
	v := textVerdict{ok: true, kind: st.kind}
	v.finding = c.handlerFinding(st.addr, "kprobe-site", what, fmt.Sprintf("struct kprobe %#x", kp.kp), st.addr, kp.handlers)
	return v
}

// movImm is the immediate of "movabs $imm, %reg".
func movImm(i textInsn) (uint64, bool) {
	if i.raw() || i.inst.Op != x86asm.MOV {
		return 0, false
	}
	if _, ok := i.inst.Args[0].(x86asm.Reg); !ok {
		return 0, false
	}
	imm, ok := i.inst.Args[1].(x86asm.Imm)
	return uint64(imm), ok
}

func sameReg(mov, br textInsn) bool {
	r, ok := br.inst.Args[0].(x86asm.Reg)
	return ok && mov.inst.Args[0] == r
}

// pushImm is the sign-extended immediate of "push $imm32".
func pushImm(i textInsn) (uint64, bool) {
	if i.raw() || i.inst.Op != x86asm.PUSH {
		return 0, false
	}
	imm, ok := i.inst.Args[0].(x86asm.Imm)
	return uint64(int64(imm)), ok
}
