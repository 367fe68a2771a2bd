// Package vmcoreinfo parses the text of a Linux kernel's VMCOREINFO note.
//
// The kernel publishes VMCOREINFO (a NUL-terminated ASCII blob of
// KEY=VALUE lines) so that offline tools can analyse a crash dump without
// matching debug info: the release string, build ID, page size, addresses
// of key symbols, sizes and member offsets of key structures, and a few
// arch constants such as the KASLR offset.
//
// This package owns only the text format. Locating the note inside an ELF
// or compressed dump, and interpreting the values (for example deriving
// the direct-map base from SYMBOL(page_offset_base)), belong to the layers
// above it.
//
// The format is emitted by kernel/vmcore_info.c (formerly kexec_core.c)
// and the arch_crash_save_vmcoreinfo hooks:
//
//	OSRELEASE=%s          BUILD-ID=%20phN       PAGESIZE=%ld
//	SYMBOL(name)=%lx      SIZE(name)=%lu        OFFSET(s.m)=%lu
//	LENGTH(name)=%lu      NUMBER(name)=%ld      KERNELOFFSET=%lx
//	CRASHTIME=%lld
//
// Some arch hooks print NUMBER values as 0x-prefixed hex (arm64's
// NUMBER(kimage_voffset), NUMBER(KERNELPACMASK)), which may not fit in an
// int64; those are stored as the two's-complement int64 of the 64-bit
// value, matching what the kernel's unsigned long would be if reread as a
// long.
package vmcoreinfo

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxSize bounds the input Parse accepts. The kernel's buffer is a single
// page (VMCOREINFO_BYTES == PAGE_SIZE), so anything much larger is not a
// VMCOREINFO note and is refused rather than parsed into large maps.
const MaxSize = 1 << 20

// ErrTooLarge is returned (wrapped) by Parse for input larger than MaxSize.
var ErrTooLarge = errors.New("vmcoreinfo: input too large")

// Info is the parsed content of a VMCOREINFO note.
//
// Keys the kernel emits in a known form are decoded into typed fields and
// maps; every other KEY=VALUE line is kept verbatim in Other so callers can
// use arch- or version-specific keys this package does not know about.
// When a key occurs more than once, the last occurrence wins, as it would
// for a reader scanning the buffer top to bottom.
type Info struct {
	// Raw is a copy of the input passed to Parse, unmodified.
	Raw []byte

	OSRelease string // OSRELEASE, e.g. "6.1.0-18-amd64"
	BuildID   string // BUILD-ID, lower-case hex

	PageSize uint64 // PAGESIZE; 0 if absent

	// KernelOffset is KERNELOFFSET, the KASLR virtual displacement of the
	// kernel image. HasKernelOffset distinguishes "absent" from 0.
	KernelOffset    uint64
	HasKernelOffset bool

	CrashTime int64 // CRASHTIME, seconds since the epoch; 0 if absent

	Symbols map[string]uint64 // SYMBOL(name): run-time (relocated) addresses
	Sizes   map[string]int64  // SIZE(name): sizeof in bytes
	Offsets map[string]int64  // OFFSET(struct.member): offsetof in bytes
	Lengths map[string]int64  // LENGTH(name): array element counts
	Numbers map[string]int64  // NUMBER(name): arbitrary constants
	Other   map[string]string // every other KEY=VALUE line
}

// ParseError reports a malformed line. Line is 1-based; Text is the line
// as it appeared (without its line terminator).
type ParseError struct {
	Line int
	Text string
	Msg  string
}

func (e *ParseError) Error() string {
	text := e.Text
	if len(text) > 80 {
		text = text[:77] + "..."
	}
	return fmt.Sprintf("vmcoreinfo: line %d: %s: %q", e.Line, e.Msg, text)
}

// Parse decodes VMCOREINFO text.
//
// It is tolerant of what real notes contain: the text ends at the first
// NUL (the note descriptor is NUL-terminated and padded, and whatever
// follows is not part of it), lines may end in CRLF, blank lines are
// skipped, and unknown keys go to Info.Other. A line that is not of the
// form KEY=VALUE, or a known key whose value does not decode, is an error
// of type *ParseError: a half-parsed note would silently yield wrong
// offsets further up, which is worse than failing loudly.
func Parse(raw []byte) (*Info, error) {
	if len(raw) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), MaxSize)
	}
	info := &Info{
		Raw:     append([]byte(nil), raw...),
		Symbols: make(map[string]uint64),
		Sizes:   make(map[string]int64),
		Offsets: make(map[string]int64),
		Lengths: make(map[string]int64),
		Numbers: make(map[string]int64),
		Other:   make(map[string]string),
	}
	text := string(raw)
	if i := strings.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	lineNo := 0
	for len(text) > 0 {
		lineNo++
		var line string
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			line, text = text, ""
		}
		// CRLF from text copied through other tools; strip every trailing
		// CR so a value never ends in one.
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if err := info.parseLine(line); err != "" {
			return nil, &ParseError{Line: lineNo, Text: line, Msg: err}
		}
	}
	return info, nil
}

// parseLine decodes one non-blank line into info, returning a non-empty
// message if the line is malformed.
func (info *Info) parseLine(line string) string {
	key, val, ok := strings.Cut(line, "=")
	if !ok {
		return "missing '='"
	}
	if key == "" {
		return "empty key"
	}
	if prefix, name, ok := splitFunc(key); ok {
		if name == "" {
			return "empty name in " + prefix + "()"
		}
		switch prefix {
		case "SYMBOL":
			v, err := parseHex(val)
			if err != nil {
				return "bad SYMBOL address: " + err.Error()
			}
			info.Symbols[name] = v
			return ""
		case "SIZE", "OFFSET", "LENGTH", "NUMBER":
			v, err := parseInt(val)
			if err != nil {
				return "bad " + prefix + " value: " + err.Error()
			}
			switch prefix {
			case "SIZE":
				info.Sizes[name] = v
			case "OFFSET":
				info.Offsets[name] = v
			case "LENGTH":
				info.Lengths[name] = v
			default:
				info.Numbers[name] = v
			}
			return ""
		}
	} else {
		for _, p := range [...]string{"SYMBOL", "SIZE", "OFFSET", "LENGTH", "NUMBER"} {
			if strings.HasPrefix(key, p+"(") {
				return "unterminated " + p + "("
			}
		}
	}
	switch key {
	case "OSRELEASE":
		if val == "" {
			return "empty OSRELEASE"
		}
		info.OSRelease = val
	case "BUILD-ID":
		if val == "" || !isHex(val) {
			return "BUILD-ID is not hex"
		}
		info.BuildID = strings.ToLower(val)
	case "PAGESIZE":
		v, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return "bad PAGESIZE: " + numErr(err)
		}
		if v == 0 || v&(v-1) != 0 {
			return "PAGESIZE is not a power of two"
		}
		info.PageSize = v
	case "KERNELOFFSET":
		v, err := parseHex(val)
		if err != nil {
			return "bad KERNELOFFSET: " + err.Error()
		}
		info.KernelOffset, info.HasKernelOffset = v, true
	case "CRASHTIME":
		v, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return "bad CRASHTIME: " + numErr(err)
		}
		info.CrashTime = v
	default:
		info.Other[key] = val
	}
	return ""
}

// splitFunc splits "PREFIX(name)" into its parts. Names may themselves
// contain parentheses in principle, so the name runs to the last ')'.
func splitFunc(key string) (prefix, name string, ok bool) {
	open := strings.IndexByte(key, '(')
	if open <= 0 || !strings.HasSuffix(key, ")") || len(key) < open+2 {
		return "", "", false
	}
	return key[:open], key[open+1 : len(key)-1], true
}

// parseHex decodes a hex address as printed by %lx, tolerating a 0x prefix.
func parseHex(s string) (uint64, error) {
	s = trim0x(s)
	if s == "" {
		return 0, errors.New("empty")
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, errors.New(numErr(err))
	}
	return v, nil
}

// parseInt decodes a %ld or %lu value, or a 0x-prefixed hex one. Values in
// the upper half of the uint64 range (an unsigned long printed with %lu or
// %llx) wrap to negative int64s rather than being rejected, since that is
// the bit pattern the kernel stored.
func parseInt(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimPrefix(s, "-")
	base := 10
	if t := trim0x(body); t != body {
		body, base = t, 16
	}
	if body == "" || body[0] == '+' || body[0] == '-' {
		return 0, errors.New("invalid syntax")
	}
	u, err := strconv.ParseUint(body, base, 64)
	if err != nil {
		return 0, errors.New(numErr(err))
	}
	if neg {
		if u > 1<<63 {
			return 0, errors.New("value out of range")
		}
		return -int64(u), nil
	}
	return int64(u), nil
}

func trim0x(s string) string {
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		return s[2:]
	}
	return s
}

// numErr strips strconv's "strconv.ParseUint: parsing "...": " prefix; the
// line is already quoted in ParseError.
func numErr(err error) string {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err.Error()
	}
	return err.Error()
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Symbol returns the address of SYMBOL(name). Addresses are those of the
// running kernel, so they already include the KASLR offset.
func (i *Info) Symbol(name string) (uint64, bool) {
	if i == nil {
		return 0, false
	}
	v, ok := i.Symbols[name]
	return v, ok
}

// Number returns the value of NUMBER(name).
func (i *Info) Number(name string) (int64, bool) {
	if i == nil {
		return 0, false
	}
	v, ok := i.Numbers[name]
	return v, ok
}

// Offset returns the value of OFFSET(name), where name is "struct.member".
func (i *Info) Offset(name string) (int64, bool) {
	if i == nil {
		return 0, false
	}
	v, ok := i.Offsets[name]
	return v, ok
}

// Size returns the value of SIZE(name).
func (i *Info) Size(name string) (int64, bool) {
	if i == nil {
		return 0, false
	}
	v, ok := i.Sizes[name]
	return v, ok
}

// Length returns the value of LENGTH(name).
func (i *Info) Length(name string) (int64, bool) {
	if i == nil {
		return 0, false
	}
	v, ok := i.Lengths[name]
	return v, ok
}
