package elfcore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vmleak/vmleak/internal/elfnote"
)

// Note types and names this package decodes.
const (
	ntPRStatus   = 1 // NT_PRSTATUS, name "CORE"
	ntTaskStruct = 4 // NT_TASKSTRUCT, name "CORE": /proc/kcore's reader
	ntVMCOREINFO = 0 // name "VMCOREINFO"
	ntQEMU       = 0 // name "QEMU": QEMUCPUState

	prstatusRegOff = 112 // offsetof(struct elf_prstatus, pr_reg) on 64-bit Linux
	prstatusPIDOff = 32  // offsetof(struct elf_prstatus, pr_pid)
)

// parseNotes decodes a buffer of ELF notes (4-byte aligned as in every core
// file). An empty note ends the list: Linux ends its crash notes with one
// and older kernels pad the per-CPU note buffers with zeros. Sizes that run
// past the buffer are an error rather than silently truncated notes.
func parseNotes(b []byte, bo binary.ByteOrder) ([]Note, error) {
	var notes []Note
	for n, err := range elfnote.All(b, bo) {
		if err != nil {
			var fe *elfnote.FormatError
			if errors.As(err, &fe) {
				return notes, fmt.Errorf("note %d at +%#x: %s", len(notes), fe.Off, fe.Msg)
			}
			return notes, err
		}
		if n.Empty() {
			break
		}
		notes = append(notes, Note{Name: n.Name, Type: n.Type, Desc: n.Desc})
	}
	return notes, nil
}

// Sizes of a 64-bit struct elf_prstatus: 112 bytes before pr_reg, the
// registers, and pr_fpvalid padded to 8.
const (
	prstatusSizeX86_64  = prstatusRegOff + NumX86Regs*8 + 8 // user_regs_struct
	prstatusSizeAArch64 = prstatusRegOff + 34*8 + 8         // user_pt_regs: x0-x30, sp, pc, pstate
)

// machineFromPRStatus names the machine the NT_PRSTATUS notes were written
// for, by their size, or "" when there are none or they disagree.
func machineFromPRStatus(notes []Note) string {
	m := ""
	for _, n := range notes {
		if n.Name != "CORE" || n.Type != ntPRStatus {
			continue
		}
		var this string
		switch len(n.Desc) {
		case prstatusSizeX86_64:
			this = "x86_64"
		case prstatusSizeAArch64:
			this = "aarch64"
		default:
			return ""
		}
		if m != "" && m != this {
			return ""
		}
		m = this
	}
	return m
}

// finishNotes derives VMCOREINFO, PRStatus and QEMU CPU states from d.notes.
func (d *Dump) finishNotes() {
	for _, n := range d.notes {
		switch {
		case n.Name == "VMCOREINFO" && n.Type == ntVMCOREINFO:
			if d.vmcoreinfo == nil {
				d.vmcoreinfo = trimNUL(n.Desc)
			}
		case n.Name == "CORE" && n.Type == ntPRStatus:
			if s, ok := parsePRStatus(n.Desc, d.arch); ok {
				d.prstatus = append(d.prstatus, s)
			}
		case n.Name == "CORE" && n.Type == ntTaskStruct:
			// Only /proc/kcore carries the reader's task_struct: the
			// memory is the running kernel's.
			d.live = true
		case n.Name == "QEMU" && n.Type == ntQEMU:
			if s, ok := parseQEMUCPUState(n.Desc); ok {
				d.qemu = append(d.qemu, s)
			}
		}
	}
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// PRStatus is one NT_PRSTATUS note: the registers of one CPU at crash time.
// Regs holds pr_reg in the kernel's order for the architecture; on x86_64
// that is struct user_regs_struct (27 registers, see the Reg* indices).
type PRStatus struct {
	PID  int32
	Arch string
	Regs []uint64
}

// Indices into PRStatus.Regs on x86_64 (struct user_regs_struct order).
const (
	RegR15 = iota
	RegR14
	RegR13
	RegR12
	RegRBP
	RegRBX
	RegR11
	RegR10
	RegR9
	RegR8
	RegRAX
	RegRCX
	RegRDX
	RegRSI
	RegRDI
	RegOrigRAX
	RegRIP
	RegCS
	RegFlags
	RegRSP
	RegSS
	RegFSBase
	RegGSBase
	RegDS
	RegES
	RegFS
	RegGS
	NumX86Regs
)

var x86RegNames = [NumX86Regs]string{
	"r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
	"rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "flags",
	"rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
}

// parsePRStatus decodes the 64-bit Linux struct elf_prstatus: pr_reg starts
// at 112 and is followed by the 4-byte pr_fpvalid padded to 8.
func parsePRStatus(b []byte, arch string) (PRStatus, bool) {
	if len(b) < prstatusRegOff+8 {
		return PRStatus{}, false
	}
	s := PRStatus{
		PID:  int32(binary.LittleEndian.Uint32(b[prstatusPIDOff:])),
		Arch: arch,
	}
	n := (len(b) - prstatusRegOff - 8) / 8
	if arch == "x86_64" && n > NumX86Regs {
		n = NumX86Regs
	}
	s.Regs = make([]uint64, n)
	for i := range s.Regs {
		s.Regs[i] = binary.LittleEndian.Uint64(b[prstatusRegOff+8*i:])
	}
	return s, true
}

// Reg returns a register by its x86_64 user_regs_struct name ("rip",
// "rsp", "gs_base", ...), or for aarch64 "x0".."x30", "sp", "pc", "pstate".
func (s PRStatus) Reg(name string) (uint64, bool) {
	switch s.Arch {
	case "aarch64":
		idx := -1
		switch name {
		case "sp":
			idx = 31
		case "pc":
			idx = 32
		case "pstate":
			idx = 33
		default:
			var i int
			if _, err := fmt.Sscanf(name, "x%d", &i); err == nil && i >= 0 && i <= 30 && name == fmt.Sprintf("x%d", i) {
				idx = i
			}
		}
		if idx >= 0 && idx < len(s.Regs) {
			return s.Regs[idx], true
		}
	default:
		if len(s.Regs) < NumX86Regs {
			return 0, false
		}
		for i, n := range x86RegNames {
			if n == name {
				return s.Regs[i], true
			}
		}
	}
	return 0, false
}

func (s PRStatus) x86(i int) uint64 {
	if len(s.Regs) < NumX86Regs {
		return 0
	}
	return s.Regs[i]
}

// RIP, RSP, RBP, CS and GSBase return x86_64 registers (0 when the note is
// not an x86_64 one).
func (s PRStatus) RIP() uint64    { return s.x86(RegRIP) }
func (s PRStatus) RSP() uint64    { return s.x86(RegRSP) }
func (s PRStatus) RBP() uint64    { return s.x86(RegRBP) }
func (s PRStatus) CS() uint64     { return s.x86(RegCS) }
func (s PRStatus) GSBase() uint64 { return s.x86(RegGSBase) }

// PC and SP return the program counter and stack pointer for x86_64 and
// aarch64.
func (s PRStatus) PC() uint64 {
	if s.Arch == "aarch64" {
		v, _ := s.Reg("pc")
		return v
	}
	return s.RIP()
}

func (s PRStatus) SP() uint64 {
	if s.Arch == "aarch64" {
		v, _ := s.Reg("sp")
		return v
	}
	return s.RSP()
}

// QEMUSegment is QEMU's QEMUCPUSegment.
type QEMUSegment struct {
	Selector, Limit, Flags uint32
	Base                   uint64
}

// QEMUCPUState is QEMU's x86 QEMUCPUState note (target/i386/arch_dump.c),
// written by dump-guest-memory for each vCPU.
type QEMUCPUState struct {
	Version, Size uint32
	// GPR in QEMU's order: rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8..r15.
	GPR                             [16]uint64
	RIP, RFlags                     uint64
	CS, DS, ES, FS, GS, SS, LDT, TR QEMUSegment
	GDT, IDT                        QEMUSegment
	CR                              [5]uint64
	// KernelGSBase is MSR_KERNEL_GS_BASE; valid only if HasKernelGSBase
	// (QEMU appended it later, signalled by Size, not Version).
	KernelGSBase    uint64
	HasKernelGSBase bool
}

const (
	qemuStateMinSize = 432 // through cr[5]
	qemuStateFullSze = 440 // with kernel_gs_base
)

func (s QEMUCPUState) RSP() uint64 { return s.GPR[6] }
func (s QEMUCPUState) RBP() uint64 { return s.GPR[7] }
func (s QEMUCPUState) CR3() uint64 { return s.CR[3] }

func parseQEMUCPUState(b []byte) (QEMUCPUState, bool) {
	if len(b) < qemuStateMinSize {
		return QEMUCPUState{}, false
	}
	le := binary.LittleEndian
	var s QEMUCPUState
	s.Version = le.Uint32(b[0:])
	s.Size = le.Uint32(b[4:])
	for i := range s.GPR {
		s.GPR[i] = le.Uint64(b[8+8*i:])
	}
	s.RIP = le.Uint64(b[136:])
	s.RFlags = le.Uint64(b[144:])
	segs := []*QEMUSegment{&s.CS, &s.DS, &s.ES, &s.FS, &s.GS, &s.SS, &s.LDT, &s.TR, &s.GDT, &s.IDT}
	for i, sg := range segs {
		o := 152 + 24*i
		*sg = QEMUSegment{
			Selector: le.Uint32(b[o:]),
			Limit:    le.Uint32(b[o+4:]),
			Flags:    le.Uint32(b[o+8:]),
			Base:     le.Uint64(b[o+16:]),
		}
	}
	for i := range s.CR {
		s.CR[i] = le.Uint64(b[392+8*i:])
	}
	if s.Size >= qemuStateFullSze && len(b) >= qemuStateFullSze {
		s.KernelGSBase = le.Uint64(b[432:])
		s.HasKernelGSBase = true
	}
	return s, true
}
