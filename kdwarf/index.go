package kdwarf

import (
	"bytes"
	"debug/dwarf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
)

// index maps a kind letter (see kindLetter) plus a name to the offset of
// the first DIE that defines it. Enumerator keys ('k') map to their enum.
type index struct {
	m map[string]dwarf.Offset
}

// unitSpan is one unit of .debug_info: the offset of its header, of its
// first DIE and of the next unit.
type unitSpan struct {
	hdr, die, end uint64
}

// parseUnits walks the unit headers of .debug_info without decoding DIEs.
func parseUnits(info []byte, order binary.ByteOrder) ([]unitSpan, error) {
	var us []unitSpan
	for off := uint64(0); off < uint64(len(info)); {
		u, err := parseUnit(info[off:min(off+maxUnitHeader, uint64(len(info)))], off, uint64(len(info)), order)
		if err != nil {
			return nil, err
		}
		if u.end == 0 {
			break
		}
		us = append(us, u)
		off = u.end
	}
	return us, nil
}

// parseUnitsAt is parseUnits over a section read through r (at offset
// base, size bytes long), one header at a time: walking thousands of
// units through a mapping maps a page or more around each header.
func parseUnitsAt(r io.ReaderAt, base, size uint64, order binary.ByteOrder) ([]unitSpan, error) {
	var us []unitSpan
	var buf [maxUnitHeader]byte
	for off := uint64(0); off < size; {
		n := min(uint64(len(buf)), size-off)
		if _, err := r.ReadAt(buf[:n], int64(base+off)); err != nil {
			return nil, fmt.Errorf("kdwarf: unit header at %#x: %w", off, err)
		}
		u, err := parseUnit(buf[:n], off, size, order)
		if err != nil {
			return nil, err
		}
		if u.end == 0 {
			break
		}
		us = append(us, u)
		off = u.end
	}
	return us, nil
}

// maxUnitHeader is the longest unit header: DWARF 5, 64-bit, split type unit.
const maxUnitHeader = 12 + 2 + 1 + 1 + 8 + 8 + 8

// parseUnit reads the unit header in rest (up to maxUnitHeader bytes of
// the section from off, which is size bytes long). A zero end means the
// section ends with padding shorter than a header.
func parseUnit(rest []byte, off, size uint64, order binary.ByteOrder) (unitSpan, error) {
	if len(rest) < 4 {
		return unitSpan{}, nil
	}
	length := uint64(order.Uint32(rest))
	hlen := uint64(4)
	offSize := uint64(4)
	if length == 0xffffffff {
		if len(rest) < 12 {
			return unitSpan{}, fmt.Errorf("kdwarf: truncated unit header at %#x", off)
		}
		length = order.Uint64(rest[4:])
		hlen, offSize = 12, 8
	} else if length >= 0xfffffff0 {
		return unitSpan{}, fmt.Errorf("kdwarf: bad unit length at %#x", off)
	}
	if length > size-off-hlen || len(rest) < int(hlen)+2 {
		return unitSpan{}, fmt.Errorf("kdwarf: unit at %#x overruns .debug_info", off)
	}
	end := off + hlen + length
	vers := order.Uint16(rest[hlen:])
	var h uint64
	switch {
	case vers >= 2 && vers <= 4:
		h = hlen + 2 + offSize + 1
	case vers == 5:
		if len(rest) < int(hlen)+3 {
			return unitSpan{}, fmt.Errorf("kdwarf: truncated unit header at %#x", off)
		}
		h = hlen + 2 + 1 + 1 + offSize
		switch rest[hlen+2] { // unit_type
		case 0x04, 0x05: // skeleton, split_compile: dwo_id
			h += 8
		case 0x02, 0x06: // type, split_type: signature, type_offset
			h += 8 + offSize
		}
	default:
		return unitSpan{}, fmt.Errorf("kdwarf: unsupported DWARF version %d at %#x", vers, off)
	}
	if h > hlen+length {
		return unitSpan{}, fmt.Errorf("kdwarf: unit at %#x too short", off)
	}
	return unitSpan{hdr: off, die: off + h, end: end}, nil
}

// buildIndex scans the top-level DIEs of every unit, skipping children,
// on GOMAXPROCS goroutines, each with its own dwarf.Reader over a dwarf.Data
// of its own per unit, so no decoder state is shared. Contiguous chunks of
// units are handed out in order and merged in order, so for a name defined
// many times the lowest DIE offset wins, as in a serial scan. A whole-file
// dwarf.Data (relocatable objects, cross-unit references) is scanned
// serially: its Readers record per-unit state in the shared Data.
func (dt *dwarfTypes) buildIndex() (*index, error) {
	units := dt.units
	workers := max(1, runtime.GOMAXPROCS(0))
	if dt.whole != nil {
		workers = 1
	}
	// Chunks of roughly equal bytes, several per worker for balance.
	nchunks := min(len(units), workers*8)
	target := uint64(len(dt.info))/uint64(nchunks) + 1
	var chunks [][]unitSpan
	start := 0
	for i := range units {
		if units[i].end-units[start].hdr >= target || i == len(units)-1 {
			chunks = append(chunks, units[start:i+1])
			start = i + 1
		}
	}
	results := make([]map[string]dwarf.Offset, len(chunks))
	errs := make([]error, len(chunks))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(chunks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(chunks) {
					return
				}
				results[i], errs[i] = dt.scanUnits(chunks[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	n := 0
	for _, m := range results {
		n += len(m)
	}
	idx := &index{m: make(map[string]dwarf.Offset, n/2)}
	for _, m := range results {
		for k, off := range m {
			if old, ok := idx.m[k]; !ok || off < old {
				idx.m[k] = off
			}
		}
	}
	return idx, nil
}

// scanUnits indexes the top-level named type DIEs of units.
func (dt *dwarfTypes) scanUnits(units []unitSpan) (map[string]dwarf.Offset, error) {
	m := make(map[string]dwarf.Offset)
	var base dwarf.Offset
	add := func(letter byte, name string, off dwarf.Offset) {
		k := string(letter) + name
		if _, ok := m[k]; !ok {
			m[k] = off + base
		}
	}
	var r *dwarf.Reader
	if dt.whole != nil {
		r = dt.whole.Reader()
	}
	for _, u := range units {
		if dt.whole == nil {
			d, err := dt.secs.data(dt.info[u.hdr:u.end])
			if err != nil {
				return nil, fmt.Errorf("kdwarf: unit at %#x: %w", u.hdr, err)
			}
			r, base = d.Reader(), dwarf.Offset(u.hdr)
		}
		r.Seek(dwarf.Offset(u.die) - base)
		cu, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("kdwarf: unit at %#x: %w", u.hdr, err)
		}
		if cu == nil || !cu.Children {
			continue
		}
		for {
			e, err := r.Next()
			if err != nil {
				return nil, fmt.Errorf("kdwarf: unit at %#x: %w", u.hdr, err)
			}
			if e == nil || e.Tag == 0 || e.Tag == dwarf.TagCompileUnit || e.Tag == dwarf.TagPartialUnit {
				break
			}
			var letter byte
			switch e.Tag {
			case dwarf.TagStructType:
				letter = 's'
			case dwarf.TagUnionType:
				letter = 'u'
			case dwarf.TagEnumerationType:
				letter = 'e'
			case dwarf.TagTypedef:
				letter = 't'
			case dwarf.TagBaseType:
				letter = 'b'
			}
			if letter == 0 || e.Val(dwarf.AttrDeclaration) != nil {
				if e.Children {
					r.SkipChildren()
				}
				continue
			}
			if name, _ := e.Val(dwarf.AttrName).(string); name != "" {
				add(letter, name, e.Offset)
			}
			if letter != 'e' || !e.Children {
				if e.Children {
					r.SkipChildren()
				}
				continue
			}
			for {
				c, err := r.Next()
				if err != nil {
					return nil, fmt.Errorf("kdwarf: unit at %#x: %w", u.hdr, err)
				}
				if c == nil || c.Tag == 0 {
					break
				}
				if c.Tag == dwarf.TagEnumerator {
					if name, _ := c.Val(dwarf.AttrName).(string); name != "" {
						add('k', name, e.Offset)
					}
				}
				if c.Children {
					r.SkipChildren()
				}
			}
		}
	}
	return m, nil
}

// On-disk index format, little-endian:
//
//	magic       [8]byte "KDWIDX\r\n"
//	version     uint32
//	buildIDLen  uint32, buildID [buildIDLen]byte
//	infoLen     uint64  len(.debug_info)
//	abbrevCRC   uint32  CRC-32C of .debug_abbrev
//	count       uint32  number of entries
//	payloadLen  uint64
//	payloadCRC  uint32  CRC-32C of the payload
//	payload     count × {letter byte, uvarint len(name), name, uvarint offset}
//
// The file is written to a temporary name and renamed into place, so a
// reader sees a whole file or none. Any mismatch (size bounds, build-id,
// fingerprint, checksum, offsets beyond .debug_info) rejects the file and
// the index is rebuilt; lookups additionally check the DIE at each offset.
const (
	indexMagic   = "KDWIDX\r\n"
	indexVersion = 1
	maxIndexFile = 512 << 20
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// fingerprint identifies the DWARF an index was built from, beyond the
// build-id.
type fingerprint struct {
	buildID   []byte
	infoLen   uint64
	abbrevCRC uint32
}

func (dt *dwarfTypes) fingerprint() fingerprint {
	return fingerprint{buildID: dt.f.buildID, infoLen: uint64(len(dt.info)), abbrevCRC: crc32.Checksum(dt.abbrev, crc32c)}
}

func indexPath(dir string, buildID []byte) string {
	return filepath.Join(dir, hex.EncodeToString(buildID)+fmt.Sprintf(".v%d.kdwidx", indexVersion))
}

func encodeIndex(fp fingerprint, idx *index) []byte {
	keys := make([]string, 0, len(idx.m))
	for k := range idx.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var payload []byte
	for _, k := range keys {
		payload = append(payload, k[0])
		payload = binary.AppendUvarint(payload, uint64(len(k)-1))
		payload = append(payload, k[1:]...)
		payload = binary.AppendUvarint(payload, uint64(idx.m[k]))
	}
	le := binary.LittleEndian
	b := make([]byte, 0, 64+len(fp.buildID)+len(payload))
	b = append(b, indexMagic...)
	b = le.AppendUint32(b, indexVersion)
	b = le.AppendUint32(b, uint32(len(fp.buildID)))
	b = append(b, fp.buildID...)
	b = le.AppendUint64(b, fp.infoLen)
	b = le.AppendUint32(b, fp.abbrevCRC)
	b = le.AppendUint32(b, uint32(len(keys)))
	b = le.AppendUint64(b, uint64(len(payload)))
	b = le.AppendUint32(b, crc32.Checksum(payload, crc32c))
	return append(b, payload...)
}

var errBadIndex = errors.New("kdwarf: bad index file")

func decodeIndex(b []byte, fp fingerprint) (*index, error) {
	le := binary.LittleEndian
	take := func(n int) []byte {
		if n < 0 || n > len(b) {
			b = nil
			return nil
		}
		v := b[:n]
		b = b[n:]
		return v
	}
	if string(take(len(indexMagic))) != indexMagic {
		return nil, errBadIndex
	}
	if h := take(8); h == nil || le.Uint32(h) != indexVersion || le.Uint32(h[4:]) > 1024 {
		return nil, errBadIndex
	} else if id := take(int(le.Uint32(h[4:]))); !bytes.Equal(id, fp.buildID) {
		return nil, errBadIndex
	}
	h := take(8 + 4 + 4 + 8 + 4)
	if h == nil || le.Uint64(h) != fp.infoLen || le.Uint32(h[8:]) != fp.abbrevCRC {
		return nil, errBadIndex
	}
	count, plen, crc := le.Uint32(h[12:]), le.Uint64(h[16:]), le.Uint32(h[24:])
	if plen != uint64(len(b)) || crc32.Checksum(b, crc32c) != crc || uint64(count) > plen/3 {
		return nil, errBadIndex
	}
	m := make(map[string]dwarf.Offset, count)
	for range count {
		if len(b) < 1 {
			return nil, errBadIndex
		}
		letter := b[0]
		b = b[1:]
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errBadIndex
		}
		name := string(b[k : k+int(n)])
		b = b[k+int(n):]
		off, k := binary.Uvarint(b)
		if k <= 0 || off >= fp.infoLen {
			return nil, errBadIndex
		}
		b = b[k:]
		m[string(letter)+name] = dwarf.Offset(off)
	}
	if len(b) != 0 {
		return nil, errBadIndex
	}
	return &index{m: m}, nil
}

func readIndexFile(path string, fp fingerprint) (*index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxIndexFile {
		return nil, errBadIndex
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return decodeIndex(b, fp)
}

func writeIndexFile(path string, fp fingerprint, idx *index) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*.kdwidx")
	if err != nil {
		return err
	}
	_, err = tmp.Write(encodeIndex(fp, idx))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
