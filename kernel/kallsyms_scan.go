package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Finding kallsyms without VMCOREINFO's SYMBOL(kallsyms_*) (kernels before
// 6.0): its tables are searched for in the kernel image's read-only data,
// where scripts/kallsyms.c lays them out one after the other, each 8-byte
// aligned (ALGN): kallsyms_offsets[n] (or kallsyms_addresses[n]),
// kallsyms_relative_base, kallsyms_num_syms, kallsyms_names,
// kallsyms_markers[(n+255)/256] (u32), kallsyms_token_table (256
// NUL-terminated tokens), kallsyms_token_index[256] (u16).
//
// The token table is found first: single-character tokens keep their own
// code as index, so the digits, which symbol names use, stand in a row:
// "0\0" "1\0" ... "9\0". Every candidate is checked by what follows: the
// token index must give each token's offset, the markers must be zero
// then increasing, and decoding num_syms names from kallsyms_names must end
// where the markers begin.

// scanImageSize bounds the kernel image searched (from _text).
const scanImageSize = 96 << 20

// scanKallsyms finds the kallsyms tables in the kernel image at
// [text, text+scanImageSize) and returns their run-time addresses, by
// symbol name.
func (k *Kernel) scanKallsyms(text uint64) (map[string]uint64, error) {
	digits := []byte("0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00")
	const chunk = 4 << 20
	buf := make([]byte, chunk+4096)
	for off := uint64(0); off < scanImageSize; off += chunk {
		va := text + off
		n, err := k.tr.ReadVirt(buf, va)
		if n < len(digits) {
			if err != nil && off > 0 {
				break // past the end of the mapped image
			}
			continue
		}
		b := buf[:n]
		for i := 0; ; {
			j := bytes.Index(b[i:], digits)
			if j < 0 {
				break
			}
			at := va + uint64(i+j)
			if syms, err := k.kallsymsAt(at); err == nil {
				return syms, nil
			}
			i += j + 1
		}
	}
	return nil, fmt.Errorf("%w: no kallsyms_token_table in the kernel image at %#x-%#x", ErrNoKallsyms, text, text+scanImageSize)
}

// kallsymsAt checks the candidate whose token '0' is at va, and returns
// the tables' addresses.
func (k *Kernel) kallsymsAt(zero uint64) (map[string]uint64, error) {
	// Back over the 0x30 tokens before '0': the table's start.
	const before = 4096
	var win [before]byte
	if err := k.ReadVirt(win[:], zero-before); err != nil {
		return nil, err
	}
	p := before // win[p:] starts token 0x30
	for t := 0; t < '0'; t++ {
		if p < 2 || win[p-1] != 0 {
			return nil, errors.New("no token before")
		}
		q := p - 1 // the NUL ending the previous token
		for q > 0 && win[q-1] != 0 {
			q--
		}
		if q == p-1 {
			return nil, errors.New("empty token")
		}
		p = q
	}
	tab := zero - uint64(before-p)
	if tab%8 != 0 {
		return nil, errors.New("token table not aligned")
	}
	// The 256 tokens and the index after them.
	var tb [maxTokenLen * 4]byte
	if err := k.ReadVirt(tb[:], tab); err != nil {
		return nil, err
	}
	var offs [256]uint16
	o := 0
	for t := range offs {
		offs[t] = uint16(o)
		e := bytes.IndexByte(tb[o:], 0)
		if e <= 0 {
			return nil, errors.New("bad token")
		}
		o += e + 1
	}
	idxVA := (tab + uint64(o) + 7) &^ 7
	var idx [512]byte
	if err := k.ReadVirt(idx[:], idxVA); err != nil {
		return nil, err
	}
	for t := range offs {
		if binary.LittleEndian.Uint16(idx[2*t:]) != offs[t] {
			return nil, errors.New("token index does not match")
		}
	}
	// The markers end before the token table: zero first, increasing.
	names, num, markers, err := k.kallsymsNamesBefore(tab)
	if err != nil {
		return nil, err
	}
	syms := map[string]uint64{
		"kallsyms_token_table": tab, "kallsyms_token_index": idxVA,
		"kallsyms_markers": markers, "kallsyms_names": names, "kallsyms_num_syms": num,
	}
	// Addresses: offsets and a relative base (CONFIG_KALLSYMS_BASE_RELATIVE,
	// every x86_64 kernel since 4.6), else absolute addresses.
	var b4 [4]byte
	if err := k.ReadVirt(b4[:], num); err != nil {
		return nil, err
	}
	n := uint64(binary.LittleEndian.Uint32(b4[:]))
	base := num - 8
	if b, err := k.readPtr(base); err == nil && b>>47 == 0x1ffff {
		syms["kallsyms_relative_base"] = base
		syms["kallsyms_offsets"] = base - (4*n+7)&^7
	} else {
		syms["kallsyms_addresses"] = num - 8*n
	}
	return syms, nil
}

// kallsymsNamesBefore finds kallsyms_markers, kallsyms_names and
// kallsyms_num_syms before the token table at tab.
func (k *Kernel) kallsymsNamesBefore(tab uint64) (names, num, markers uint64, err error) {
	// The markers: at most 8 KiB (2M symbols).
	const span = maxKallsyms / 256 * 4
	buf := make([]byte, span)
	if err := k.ReadVirt(buf, tab-span); err != nil {
		return 0, 0, 0, err
	}
	u32 := func(i int) uint32 { return binary.LittleEndian.Uint32(buf[i:]) }
	// From the last marker back: markers[0] is 0, and each is less than
	// the next. Padding to the token table is up to 7 zero bytes.
	end := span
	for end > span-8 && u32(end-4) == 0 {
		end -= 4
	}
	for start := end - 4; start >= 0; start -= 4 {
		if u32(start) != 0 {
			if start+4 < end && u32(start) >= u32(start+4) {
				break
			}
			continue
		}
		if (tab-span+uint64(start))%8 != 0 {
			continue
		}
		m := (end - start) / 4 // markers
		markersVA := tab - span + uint64(start)
		// kallsyms_names ends before the markers, past the entry markers[m-1]
		// points at and at most 256 entries further; kallsyms_num_syms is
		// 8 bytes before it, and (n+255)/256 = m.
		last := uint64(u32(end - 4))
		const maxEntry = 2 + ksymNameLen
		for namesVA := (markersVA - last - 1) &^ 7; namesVA+last+256*maxEntry > markersVA; namesVA -= 8 {
			var b4 [4]byte
			if err := k.ReadVirt(b4[:], namesVA-8); err != nil {
				break
			}
			n := binary.LittleEndian.Uint32(b4[:])
			if n == 0 || n > maxKallsyms || (int(n)+255)/256 != m {
				continue
			}
			if k.namesEnd(namesVA, int(n)) == markersVA {
				return namesVA, namesVA - 8, markersVA, nil
			}
		}
		break
	}
	return 0, 0, 0, errors.New("no kallsyms_names before the token table")
}

// namesEnd decodes n entries of kallsyms_names at va and returns where
// they end, 8-aligned; 0 if they cannot be read.
func (k *Kernel) namesEnd(va uint64, n int) uint64 {
	r := &vbuf{k: k, va: va, what: "kallsyms_names"}
	off := 0
	for range n {
		if r.ensure(off+2) != nil {
			return 0
		}
		l := int(r.b[off])
		off++
		if l&0x80 != 0 {
			l = l&0x7f | int(r.b[off])<<7
			off++
		}
		if l == 0 {
			return 0
		}
		off += l
	}
	return (va + uint64(off) + 7) &^ 7
}
