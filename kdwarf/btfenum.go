package kdwarf

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// BTF kinds (include/uapi/linux/btf.h) and the bytes each type record
// carries after its 12-byte struct btf_type.
const (
	btfKindInt      = 1
	btfKindArray    = 3
	btfKindStruct   = 4
	btfKindUnion    = 5
	btfKindEnum     = 6
	btfKindFuncProt = 13
	btfKindVar      = 14
	btfKindDatasec  = 15
	btfKindDeclTag  = 17
	btfKindEnum64   = 19
	btfKindMax      = 19
)

var errBTFLayout = errors.New("btf: unexpected layout")

// scanBTFEnums reads every enumerator of a raw .BTF section into a map
// without inflating a single type: an enumerator lookup (a flag value, a
// page type) would otherwise decode all ~100k types of a vmlinux's BTF
// through btf.Spec.All, a third of a command's start-up. The first of
// equal names wins, as in the type order of the spec.
func scanBTFEnums(raw []byte) (map[string]int64, error) {
	le := binary.LittleEndian
	if len(raw) < 24 || le.Uint16(raw) != 0xeb9f {
		return nil, fmt.Errorf("%w: no little-endian BTF header", errBTFLayout)
	}
	hdrLen := uint64(le.Uint32(raw[4:]))
	typeOff, typeLen := uint64(le.Uint32(raw[8:])), uint64(le.Uint32(raw[12:]))
	strOff, strLen := uint64(le.Uint32(raw[16:])), uint64(le.Uint32(raw[20:]))
	if hdrLen < 24 || hdrLen+typeOff+typeLen > uint64(len(raw)) || hdrLen+strOff+strLen > uint64(len(raw)) {
		return nil, fmt.Errorf("%w: header lengths past the section's %d bytes", errBTFLayout, len(raw))
	}
	types := raw[hdrLen+typeOff : hdrLen+typeOff+typeLen]
	strs := raw[hdrLen+strOff : hdrLen+strOff+strLen]
	name := func(off uint32) (string, error) {
		if uint64(off) >= uint64(len(strs)) {
			return "", fmt.Errorf("%w: name offset %d past the strings", errBTFLayout, off)
		}
		s := strs[off:]
		for i, c := range s {
			if c == 0 {
				return string(s[:i]), nil
			}
		}
		return "", fmt.Errorf("%w: unterminated name at %d", errBTFLayout, off)
	}
	out := make(map[string]int64)
	for p := uint64(0); p < uint64(len(types)); {
		if p+12 > uint64(len(types)) {
			return nil, fmt.Errorf("%w: type record cut at %d", errBTFLayout, p)
		}
		info := le.Uint32(types[p+4:])
		kind, vlen, signed := info>>24&0x1f, uint64(info&0xffff), info>>31 == 1
		p += 12
		var extra uint64
		switch kind {
		case btfKindInt, btfKindVar, btfKindDeclTag:
			extra = 4
		case btfKindArray:
			extra = 12
		case btfKindStruct, btfKindUnion, btfKindDatasec, btfKindEnum64:
			extra = 12 * vlen
		case btfKindEnum, btfKindFuncProt:
			extra = 8 * vlen
		default:
			if kind == 0 || kind > btfKindMax {
				return nil, fmt.Errorf("%w: kind %d at %d", errBTFLayout, kind, p-12)
			}
		}
		if p+extra > uint64(len(types)) {
			return nil, fmt.Errorf("%w: type record cut at %d", errBTFLayout, p)
		}
		if kind == btfKindEnum || kind == btfKindEnum64 {
			stride := map[uint32]uint64{btfKindEnum: 8, btfKindEnum64: 12}[kind]
			for i := uint64(0); i < vlen; i++ {
				e := types[p+i*stride:]
				n, err := name(le.Uint32(e))
				if err != nil {
					return nil, err
				}
				var v int64
				switch {
				case kind == btfKindEnum64:
					v = int64(uint64(le.Uint32(e[8:]))<<32 | uint64(le.Uint32(e[4:])))
				case signed:
					v = int64(int32(le.Uint32(e[4:])))
				default:
					v = int64(le.Uint32(e[4:]))
				}
				if _, dup := out[n]; !dup {
					out[n] = v
				}
			}
		}
		p += extra
	}
	return out, nil
}
