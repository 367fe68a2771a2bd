package forensics

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// textInsn is one decoded x86-64 instruction at a run-time address.
type textInsn struct {
	pc   uint64
	len  int
	inst x86asm.Inst
	// endbr is set for endbr64/endbr32, which x86asm does not know (it
	// decodes f3 0f 1e fa as a lone rep prefix).
	endbr bool
	// other names an instruction x86asm does not decode (the
	// register-form 0f 01 group: vmcall, vmmcall, ...); inst is zero.
	other string
	// fast: decoded by textDecode's fast path; String decodes again.
	fast  bool
	bytes [5]byte
}

// text0f01 names the register forms of 0f 01 that x86asm does not decode
// and the kernel uses (hypercalls, SVM, SMAP, xgetbv, ...): three bytes,
// no operands in memory.
var text0f01 = map[byte]string{
	0xc1: "vmcall", 0xc2: "vmlaunch", 0xc3: "vmresume", 0xc4: "vmxoff", 0xc5: "pconfig",
	0xc8: "monitor", 0xc9: "mwait", 0xca: "clac", 0xcb: "stac", 0xcf: "encls",
	0xd0: "xgetbv", 0xd1: "xsetbv", 0xd4: "vmfunc", 0xd5: "xend", 0xd6: "xtest", 0xd7: "enclu",
	0xd8: "vmrun", 0xd9: "vmmcall", 0xda: "vmload", 0xdb: "vmsave", 0xdc: "stgi", 0xdd: "clgi",
	0xde: "skinit", 0xdf: "invlpga", 0xe8: "serialize", 0xee: "rdpkru", 0xef: "wrpkru",
	0xf8: "swapgs", 0xf9: "rdtscp", 0xfa: "monitorx", 0xfb: "mwaitx", 0xfc: "clzero", 0xfd: "rdpru",
}

var errTextUndecodable = errors.New("undecodable instruction")

// textDecode decodes the instruction at the start of b, which sits at pc.
func textDecode(b []byte, pc uint64) (textInsn, error) {
	if len(b) >= 4 && b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && (b[3] == 0xfa || b[3] == 0xfb) {
		return textInsn{pc: pc, len: 4, endbr: true}, nil
	}
	// The shapes most patch sites hold, without x86asm (a quarter of a
	// million sites per kernel): call/jmp rel32, jmp rel8, the 5-byte nop,
	// ret, int3.
	if len(b) > 0 {
		var in x86asm.Inst
		switch c := b[0]; {
		case (c == 0xe8 || c == 0xe9) && len(b) >= 5:
			in = x86asm.Inst{Op: x86asm.CALL, Len: 5, Args: x86asm.Args{x86asm.Rel(int32(binary.LittleEndian.Uint32(b[1:])))}}
			if c == 0xe9 {
				in.Op = x86asm.JMP
			}
		case c == 0xeb && len(b) >= 2:
			in = x86asm.Inst{Op: x86asm.JMP, Len: 2, Args: x86asm.Args{x86asm.Rel(int8(b[1]))}}
		case c == 0x0f && len(b) >= 5 && b[1] == 0x1f && b[2] == 0x44 && b[3] == 0 && b[4] == 0:
			in = x86asm.Inst{Op: x86asm.NOP, Len: 5}
		case c == 0xc3:
			in = x86asm.Inst{Op: x86asm.RET, Len: 1}
		case c == 0xcc:
			in = x86asm.Inst{Op: x86asm.INT, Len: 1, Args: x86asm.Args{x86asm.Imm(3)}}
		case c == 0x90:
			in = x86asm.Inst{Op: x86asm.NOP, Len: 1}
		}
		if in.Op != 0 {
			t := textInsn{pc: pc, len: in.Len, inst: in, fast: true}
			copy(t.bytes[:], b[:in.Len])
			return t, nil
		}
	}
	in, err := x86asm.Decode(b, 64)
	if (err != nil || in.Op == 0) && len(b) >= 3 && b[0] == 0x0f && b[1] == 0x01 {
		if name, ok := text0f01[b[2]]; ok {
			return textInsn{pc: pc, len: 3, other: name}, nil
		}
	}
	if err != nil || in.Op == 0 {
		if n, name := textUD(b); n > 0 {
			return textInsn{pc: pc, len: n, other: name}, nil
		}
	}
	if err != nil || in.Op == 0 || in.Len == 0 {
		return textInsn{pc: pc}, fmt.Errorf("%#x: %w (% x)", pc, errTextUndecodable, b[:min(len(b), 8)])
	}
	return textInsn{pc: pc, len: in.Len, inst: in}, nil
}

// textDecodeAll decodes b (at pc) into instructions that exactly fill it.
func textDecodeAll(b []byte, pc uint64) ([]textInsn, error) {
	return textDecodeInto(nil, b, pc)
}

// textDecodeInto is textDecodeAll appending to out[:0].
func textDecodeInto(out []textInsn, b []byte, pc uint64) ([]textInsn, error) {
	out = out[:0]
	for off := 0; off < len(b); {
		in, err := textDecode(b[off:], pc+uint64(off))
		if err != nil {
			return out, err
		}
		out = append(out, in)
		off += in.len
	}
	return out, nil
}

// raw tells an instruction x86asm did not decode.
func (in textInsn) raw() bool { return in.endbr || in.other != "" }

// isNop tells whether the instruction does nothing: any form of nop, and
// the prefixed forms alternatives and the nop tables use.
func (in textInsn) isNop() bool { return !in.raw() && in.inst.Op == x86asm.NOP }

// isTrap tells an instruction that raises #UD or #BP on purpose (BUG,
// WARN, kprobes).
func (in textInsn) isTrap() bool {
	return in.other == "ud1" || in.other == "ud0" || (!in.raw() && (in.inst.Op == x86asm.UD1 || in.inst.Op == x86asm.UD2 || in.inst.Op == x86asm.UD0)) || in.isInt3()
}

func (in textInsn) isInt3() bool { return !in.raw() && in.inst.Op == x86asm.INT && in.len == 1 }

func (in textInsn) isRet() bool { return !in.raw() && (in.inst.Op == x86asm.RET) }

// isJmp and isCall: direct or indirect.
func (in textInsn) isJmp() bool  { return !in.raw() && in.inst.Op == x86asm.JMP }
func (in textInsn) isCall() bool { return !in.raw() && in.inst.Op == x86asm.CALL }

// target is where a direct (pc-relative) branch goes.
func (in textInsn) target() (uint64, bool) {
	if in.raw() {
		return 0, false
	}
	rel, ok := in.inst.Args[0].(x86asm.Rel)
	if !ok {
		return 0, false
	}
	return in.pc + uint64(in.len) + uint64(int64(rel)), true
}

// branches tells whether the instruction can transfer control (a jump,
// call, conditional jump or loop), direct or not.
func (in textInsn) branches() bool {
	if in.raw() {
		return false
	}
	switch in.inst.Op {
	case x86asm.JMP, x86asm.CALL, x86asm.LJMP, x86asm.LCALL, x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE,
		x86asm.JCXZ, x86asm.JE, x86asm.JECXZ, x86asm.JG, x86asm.JGE, x86asm.JL, x86asm.JLE, x86asm.JNE,
		x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO, x86asm.JP, x86asm.JRCXZ, x86asm.JS,
		x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE:
		return true
	}
	return false
}

// String is the instruction in AT&T syntax, as objdump and the kernel's
// own listings show it.
func (in textInsn) String() string {
	if in.endbr {
		return "endbr64"
	}
	if in.other != "" {
		return in.other
	}
	if in.fast {
		if full, err := x86asm.Decode(in.bytes[:in.len], 64); err == nil {
			return x86asm.GNUSyntax(full, in.pc, nil)
		}
	}
	return x86asm.GNUSyntax(in.inst, in.pc, nil)
}

// textDisasm describes bytes at pc as "hex | textInsn; textInsn", decoding as far as
// it can.
func textDisasm(b []byte, pc uint64) string {
	var parts []string
	for off := 0; off < len(b); {
		in, err := textDecode(b[off:], pc+uint64(off))
		if err != nil {
			parts = append(parts, "(undecodable)")
			break
		}
		parts = append(parts, in.String())
		off += in.len
	}
	return fmt.Sprintf("% x | %s", b, strings.Join(parts, "; "))
}

// textUD decodes the forms of ud1 (0f b9 /r) and ud0 (0f ff /r) with a
// memory operand, which x86asm does not: 7.x's __WARN_trap is
// "ud1 (%edx),%rdi" (67 48 0f b9 3a), and static calls inline it.
func textUD(b []byte) (int, string) {
	i := 0
	for i < len(b) && i < 4 {
		switch c := b[i]; {
		case c == 0x66 || c == 0x67 || c == 0x2e || c == 0x3e || c == 0x26 || c == 0x36 || c == 0x64 || c == 0x65:
			i++
			continue
		case c >= 0x40 && c <= 0x4f:
			i++
		}
		break
	}
	if i+3 > len(b) || b[i] != 0x0f || (b[i+1] != 0xb9 && b[i+1] != 0xff) {
		return 0, ""
	}
	name := "ud1"
	if b[i+1] == 0xff {
		name = "ud0"
	}
	modrm := b[i+2]
	n := i + 3
	mod, rm := modrm>>6, modrm&7
	if mod != 3 && rm == 4 {
		if n >= len(b) {
			return 0, ""
		}
		if mod == 0 && b[n]&7 == 5 {
			n += 4
		}
		n++
	}
	switch {
	case mod == 0 && rm == 5:
		n += 4
	case mod == 1:
		n++
	case mod == 2:
		n += 4
	}
	if n > len(b) {
		return 0, ""
	}
	return n, name
}
