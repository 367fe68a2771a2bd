package kdwarf

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"unsafe"
)

// The start-up cache keeps what opening a vmlinux derives from it, so that
// the next Open of the same file reads it back in one read instead of
// deriving it again: the symbol table (here) and the type layouts looked up
// (typecache.go). One cache file per kind per vmlinux, named by its
// build-id and a hash of the file's identity (path, size, mtime); the key
// is stored in the file and compared too. The file is untrusted: a wrong
// magic, version, key, length or checksum, or any index out of bounds,
// makes it ignored and rebuilt (CacheError says why), never believed.
//
// Symbol cache layout (little-endian), after a 64-byte header:
//
//	key       the identity key (see cacheKey)
//	records   nsym × 32 bytes in .symtab order: value u64, size u64,
//	          name offset u32, name length u32, section u16 (0xffff: none),
//	          kind u8, flags u8 (1 global, 2 size bound), 4 zero bytes
//	addr      naddr × u32: record indexes of the address-sorted list
//	percpu    npcpu × u32: the same for the per-CPU symbols
//	slots     nslot × u32: the name hash table (FNV-1a, linear probing),
//	          record index + 1, 0 empty
//	sections  nsec × (offset u32, length u32) into strings
//	strings   the names
const (
	symCacheMagic   = "VMLKSYM\x00"
	symCacheVersion = 1
	symHeaderSize   = 64
	symRecSize      = 32
	noSection       = 0xffff
	// maxCacheFile bounds what is read back: far above a vmlinux's
	// symbols (about 15 MB for 200k), far below harm.
	maxCacheFile = 1 << 30
)

// CacheError says why a start-up cache file was not used.
type CacheError struct {
	Path   string
	Reason string
}

func (e *CacheError) Error() string {
	return fmt.Sprintf("kdwarf: start-up cache %s: %s", e.Path, e.Reason)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DefaultStartupCacheDir returns the default start-up cache directory,
// $XDG_CACHE_HOME/vmleak/types or ~/.cache/vmleak/types, or "" if no home
// directory is known.
func DefaultStartupCacheDir() string { return userCacheDir("types") }

// WithStartupCache sets the start-up cache directory (symbols and the type
// layouts looked up, per vmlinux build-id). The default is
// DefaultStartupCacheDir(); an empty dir disables the cache.
func WithStartupCache(dir string) Option { return func(c *config) { c.startupDir = dir } }

// cacheKey is the identity of the opened file the cache is valid for: its
// absolute path, size, modification time and build-id; "" when the file
// cannot have a cache (no build-id, not a linked file, not a plain file).
func (f *File) cacheKey() string {
	if f.cfg.startupDir == "" || f.osf == nil || f.ef == nil || f.ef.Type == elf.ET_REL ||
		len(f.buildID) == 0 || len(f.buildID) > 64 {
		return ""
	}
	st, err := f.osf.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return ""
	}
	abs, err := filepath.Abs(f.path)
	if err != nil {
		return ""
	}
	return "vmlinux\x00" + abs + "\x00" + strconv.FormatInt(st.Size(), 10) + "\x00" +
		strconv.FormatInt(st.ModTime().UnixNano(), 10) + "\x00" + hex.EncodeToString(f.buildID)
}

// cachePath is the cache file of a key: build-id (hex, so a safe file name
// whatever the file holds) and a hash of the whole key.
func (f *File) cachePath(key, ext string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(f.cfg.startupDir, hex.EncodeToString(f.buildID)+"-"+hex.EncodeToString(h[:6])+ext)
}

// symCache is a validated symbol cache file, read whole.
type symCache struct {
	buf   []byte
	recs  []byte
	addr  []byte
	pcpu  []byte
	slots []byte
	nslot uint32
	strs  string
	secs  []string
}

func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func (c *symCache) sym(i uint32) Symbol {
	r := c.recs[int(i)*symRecSize:]
	off, n := binary.LittleEndian.Uint32(r[16:]), binary.LittleEndian.Uint32(r[20:])
	s := Symbol{
		Name:      c.strs[off : off+n],
		Value:     binary.LittleEndian.Uint64(r),
		Size:      binary.LittleEndian.Uint64(r[8:]),
		Kind:      SymKind(r[26]),
		Global:    r[27]&1 != 0,
		SizeBound: r[27]&2 != 0,
	}
	if sec := binary.LittleEndian.Uint16(r[24:]); sec != noSection {
		s.Section = c.secs[sec]
	}
	return s
}

func (c *symCache) name(i uint32) string {
	r := c.recs[int(i)*symRecSize:]
	off, n := binary.LittleEndian.Uint32(r[16:]), binary.LittleEndian.Uint32(r[20:])
	return c.strs[off : off+n]
}

func (c *symCache) lookup(name string) (Symbol, bool) {
	mask := c.nslot - 1
	for h := uint32(fnv1a(name)) & mask; ; h = (h + 1) & mask {
		v := binary.LittleEndian.Uint32(c.slots[4*h:])
		if v == 0 {
			return Symbol{}, false
		}
		if c.name(v-1) == name {
			return c.sym(v - 1), true
		}
	}
}

func (c *symCache) addrLists() (byAddr, perCPU []Symbol) {
	list := func(b []byte) []Symbol {
		out := make([]Symbol, len(b)/4)
		for k := range out {
			out[k] = c.sym(binary.LittleEndian.Uint32(b[4*k:]))
		}
		return out
	}
	return list(c.addr), list(c.pcpu)
}

// encodeSymCache writes st (built by newSymtab) in the cache format.
func encodeSymCache(key string, st *symtab) []byte {
	secIdx := map[string]uint16{}
	var secNames []string
	strLen := 0
	for i := range st.all {
		strLen += len(st.all[i].Name)
		if sec := st.all[i].Section; sec != "" {
			if _, ok := secIdx[sec]; !ok && len(secNames) < noSection {
				secIdx[sec] = uint16(len(secNames))
				secNames = append(secNames, sec)
				strLen += len(sec)
			}
		}
	}
	nsym := len(st.all)
	nslot := 16
	for nslot < 2*nsym+1 {
		nslot <<= 1
	}
	size := symHeaderSize + len(key) + nsym*symRecSize + 4*(len(st.addrIdx)+len(st.pcpuIdx)+nslot) + 8*len(secNames) + strLen
	b := make([]byte, size)
	le := binary.LittleEndian
	copy(b, symCacheMagic)
	le.PutUint32(b[8:], symCacheVersion)
	le.PutUint32(b[12:], uint32(len(key)))
	le.PutUint32(b[16:], uint32(nsym))
	le.PutUint32(b[20:], uint32(len(st.addrIdx)))
	le.PutUint32(b[24:], uint32(len(st.pcpuIdx)))
	le.PutUint32(b[28:], uint32(nslot))
	le.PutUint32(b[32:], uint32(len(secNames)))
	le.PutUint32(b[36:], uint32(strLen))
	le.PutUint64(b[40:], uint64(size))
	p := symHeaderSize
	p += copy(b[p:], key)
	recs := b[p : p+nsym*symRecSize]
	p += len(recs)
	// strings after everything else
	strBase := size - strLen
	sp := 0
	for _, name := range secNames {
		sp += copy(b[strBase+sp:], name)
	}
	for i := range st.all {
		s := &st.all[i]
		r := recs[i*symRecSize:]
		le.PutUint64(r, s.Value)
		le.PutUint64(r[8:], s.Size)
		le.PutUint32(r[16:], uint32(sp))
		le.PutUint32(r[20:], uint32(len(s.Name)))
		sp += copy(b[strBase+sp:], s.Name)
		sec := uint16(noSection)
		if s.Section != "" {
			if k, ok := secIdx[s.Section]; ok {
				sec = k
			}
		}
		le.PutUint16(r[24:], sec)
		r[26] = byte(s.Kind)
		if s.Global {
			r[27] |= 1
		}
		if s.SizeBound {
			r[27] |= 2
		}
	}
	for _, idx := range [][]int32{st.addrIdx, st.pcpuIdx} {
		for _, i := range idx {
			le.PutUint32(b[p:], uint32(i))
			p += 4
		}
	}
	slots := b[p : p+4*nslot]
	p += len(slots)
	mask := uint32(nslot - 1)
	for _, v := range st.byName.slots {
		if v == 0 {
			continue
		}
		for h := uint32(fnv1a(st.all[v-1].Name)) & mask; ; h = (h + 1) & mask {
			if le.Uint32(slots[4*h:]) == 0 {
				le.PutUint32(slots[4*h:], uint32(v))
				break
			}
		}
	}
	off := 0
	for _, name := range secNames {
		le.PutUint32(b[p:], uint32(off))
		le.PutUint32(b[p+4:], uint32(len(name)))
		off += len(name)
		p += 8
	}
	le.PutUint32(b[48:], crc32.Checksum(b[symHeaderSize:], castagnoli))
	return b
}

// decodeSymCache validates a cache file's bytes against key. b must not
// be modified afterwards: names are strings over it.
func decodeSymCache(path string, b []byte, key string) (*symCache, error) {
	bad := func(why string) (*symCache, error) { return nil, &CacheError{Path: path, Reason: why} }
	le := binary.LittleEndian
	if len(b) < symHeaderSize || string(b[:8]) != symCacheMagic {
		return bad("not a symbol cache")
	}
	if v := le.Uint32(b[8:]); v != symCacheVersion {
		return bad(fmt.Sprintf("version %d, want %d", v, symCacheVersion))
	}
	if le.Uint64(b[40:]) != uint64(len(b)) {
		return bad("truncated or extended")
	}
	if crc32.Checksum(b[symHeaderSize:], castagnoli) != le.Uint32(b[48:]) {
		return bad("checksum mismatch")
	}
	keyLen, nsym, naddr, npcpu := uint64(le.Uint32(b[12:])), uint64(le.Uint32(b[16:])), uint64(le.Uint32(b[20:])), uint64(le.Uint32(b[24:]))
	nslot, nsec, strLen := uint64(le.Uint32(b[28:])), uint64(le.Uint32(b[32:])), uint64(le.Uint32(b[36:]))
	want := symHeaderSize + keyLen + nsym*symRecSize + 4*(naddr+npcpu+nslot) + 8*nsec + strLen
	if want != uint64(len(b)) {
		return bad("section lengths do not add up")
	}
	if nslot == 0 || nslot&(nslot-1) != 0 || nslot <= nsym || naddr > nsym || npcpu > nsym || nsec > noSection {
		return bad("bad counts")
	}
	p := uint64(symHeaderSize)
	take := func(n uint64) []byte { s := b[p : p+n : p+n]; p += n; return s }
	if string(take(keyLen)) != key {
		return bad("for another file")
	}
	c := &symCache{buf: b, nslot: uint32(nslot)}
	c.recs = take(nsym * symRecSize)
	c.addr = take(4 * naddr)
	c.pcpu = take(4 * npcpu)
	c.slots = take(4 * nslot)
	secTab := take(8 * nsec)
	strs := take(strLen)
	if len(strs) > 0 {
		c.strs = unsafe.String(&strs[0], len(strs))
	}
	for k := uint64(0); k < nsec; k++ {
		off, n := uint64(le.Uint32(secTab[8*k:])), uint64(le.Uint32(secTab[8*k+4:]))
		if off+n > strLen {
			return bad("section name out of bounds")
		}
		c.secs = append(c.secs, c.strs[off:off+n])
	}
	for i := uint64(0); i < nsym; i++ {
		r := c.recs[i*symRecSize:]
		off, n := uint64(le.Uint32(r[16:])), uint64(le.Uint32(r[20:]))
		sec := uint64(le.Uint16(r[24:]))
		if off+n > strLen || n == 0 || (sec != noSection && sec >= nsec) || r[26] > byte(SymObject) || r[27] > 3 || le.Uint32(r[28:]) != 0 {
			return bad(fmt.Sprintf("record %d is malformed", i))
		}
	}
	for _, list := range [][]byte{c.addr, c.pcpu} {
		prev := uint64(0)
		for k := 0; k < len(list); k += 4 {
			i := uint64(le.Uint32(list[k:]))
			if i >= nsym {
				return bad("address list out of bounds")
			}
			v := le.Uint64(c.recs[i*symRecSize:])
			if v < prev {
				return bad("address list out of order")
			}
			prev = v
		}
	}
	used := uint64(0)
	for k := uint64(0); k < nslot; k++ {
		v := uint64(le.Uint32(c.slots[4*k:]))
		if v > nsym {
			return bad("name table out of bounds")
		}
		if v != 0 {
			used++
		}
	}
	if used >= nslot {
		return bad("name table full")
	}
	return c, nil
}

// readCacheFile reads a cache file whole, bounded.
func readCacheFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxCacheFile {
		return nil, &CacheError{Path: path, Reason: "not a regular file of sane size"}
	}
	b := make([]byte, st.Size())
	if _, err := fh.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// writeCacheFile writes b to path atomically (a temporary file renamed):
// a reader sees the old file or the new one, never half of one.
func writeCacheFile(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
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

// cachedSymbols returns the symbol table from the start-up cache, or nil
// when there is none for this file or it is not usable (the reason is
// kept in f.symCacheErr).
func (f *File) cachedSymbols(key string) *symtab {
	path := f.cachePath(key, ".sym")
	b, err := readCacheFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			f.symCacheErr = err
		}
		return nil
	}
	c, err := decodeSymCache(path, b, key)
	if err != nil {
		f.symCacheErr = err
		return nil
	}
	return &symtab{cached: c}
}
