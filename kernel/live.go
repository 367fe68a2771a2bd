package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/vmleak/vmleak/internal/regular"
	"github.com/vmleak/vmleak/vmcoreinfo"
)

// Live kernels: /proc/kcore is the running kernel's memory as an ELF core
// (with VMCOREINFO since v4.19, commit 23c85094fe18 "proc/kcore: add
// vmcoreinfo note to /proc/kcore"). Its types and symbols come from the
// kernel's own interfaces, /sys/kernel/btf/vmlinux and /proc/kallsyms,
// rather than from a search of its memory; either missing or unreadable,
// the dump-only path reads them from memory as it does for a dump.

// Default locations of the running kernel's BTF and symbols.
const (
	DefaultLiveBTF      = "/sys/kernel/btf/vmlinux"
	DefaultLiveKallsyms = "/proc/kallsyms"
)

// openLiveSources serves types and symbols from the running kernel's files.
// done is false (with a nil error) when they cannot be used and the dump's
// memory must serve instead: the files are absent, or kallsyms hides its
// addresses (kptr_restrict, or a reader without CAP_SYSLOG).
func (k *Kernel) openLiveSources(info *vmcoreinfo.Info) (done bool, err error) {
	ksPath, btfPath := k.liveKallsyms, k.liveBTF
	ks, err := readProcKallsyms(ksPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) || errors.Is(err, errHiddenKallsyms) {
			k.warnings = append(k.warnings, fmt.Sprintf("live kernel: %v; kallsyms read from memory", err))
			return false, nil
		}
		return false, err
	}
	// The file must describe the kernel being read: VMCOREINFO names a
	// symbol of its own.
	if want, ok := info.Symbol("init_top_pgt"); ok {
		got, found := uint64(0), false
		for _, s := range ks {
			if s.Name == "init_top_pgt" {
				got, found = s.Addr, true
				break
			}
		}
		if !found || got != want {
			return false, fmt.Errorf("kernel: %s does not describe the kernel in %s: init_top_pgt is %#x there, %#x in VMCOREINFO", ksPath, k.path, got, want)
		}
	}
	raw, err := regular.ReadFile(btfPath, maxBTF)
	var start, size uint64
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrPermission) {
			return false, err
		}
		k.warnings = append(k.warnings, fmt.Sprintf("live kernel: %v; BTF read from memory", err))
		btfPath = ""
		var stop uint64
		if start, stop, err = btfBounds(ks); err != nil {
			return false, err
		}
		if raw, err = k.readBTF(start, stop); err != nil {
			return false, err
		}
	}
	size = uint64(len(raw))
	if err := k.useBTF(raw, ks, info); err != nil {
		return false, err
	}
	k.origin = Origin{BTFAddr: start, BTFSize: size, Kallsyms: len(ks), LiveBTF: btfPath, LiveKallsyms: ksPath}
	return true, nil
}

// errHiddenKallsyms: /proc/kallsyms printed every address as zero.
var errHiddenKallsyms = errors.New("addresses hidden")

// readProcKallsyms reads the kernel's own symbols from a /proc/kallsyms
// file: "address type name", then module symbols ("... [module]"), BPF
// and ftrace trampolines, which the kernel's table does not hold and are
// left out. Per-CPU symbols show their offsets, as in the table.
func readProcKallsyms(path string) ([]KSym, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	var ks []KSym
	nonzero := false
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if bytes.IndexByte(b, '\t') >= 0 || bytes.IndexByte(b, '[') >= 0 {
			continue // a module's, BPF's or a trampoline's
		}
		fs := bytes.Fields(b)
		if len(fs) != 3 || len(fs[1]) != 1 || len(fs[2]) > ksymNameLen {
			return nil, fmt.Errorf("kernel: %s:%d: not a kallsyms line: %q", path, line, PrintableName(string(b)))
		}
		addr, err := strconv.ParseUint(string(fs[0]), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("kernel: %s:%d: bad address %q", path, line, PrintableName(string(fs[0])))
		}
		if len(ks) == maxKallsyms {
			return nil, fmt.Errorf("kernel: %s: more than %d symbols", path, maxKallsyms)
		}
		nonzero = nonzero || addr != 0
		ks = append(ks, KSym{Name: string(fs[2]), Addr: addr, Type: fs[1][0]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kernel: %s:%d: %w", path, line+1, err)
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("kernel: %s holds no kernel symbols", path)
	}
	if !nonzero {
		return nil, fmt.Errorf("kernel: %s: %w", path, errHiddenKallsyms)
	}
	return ks, nil
}
