package kernel

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vmleak/vmleak/kdwarf"
)

// LogRecord is one kernel log message.
type LogRecord struct {
	Seq    uint64 `json:"seq"`
	TimeNS uint64 `json:"ts_nsec"`
	Text   string `json:"text"`
}

// The lockless printk ring buffer (kernel/printk/printk_ringbuffer.h, since
// 896fbe20b4e2, v5.10): a ring of descriptors whose state_var holds the
// record id and, in its top two bits, the state; text lives in a data ring
// of blocks that begin with the record id (struct prb_data_block: an
// unsigned long id, then the text).
const (
	descStateShift = 62
	descIDMask     = 1<<descStateShift - 1
	descCommitted  = 1
	descFinalized  = 2
	maxLogRecords  = 1 << 20
	maxLogText     = 1 << 16 // text_len is a u16
	maxCountBits   = 24      // 16M descriptors: far beyond any log_buf_len
	maxSizeBits    = 32      // 4 GiB of text
	maxLogStruct   = 4096
	blockIDSize    = 8 // sizeof(unsigned long): the id heading each data block
)

// LogError reports a printk ring-buffer value that cannot be right: a size,
// count, position or length, read from the dump or the types, that is out
// of range. VA is the address of the structure holding it.
type LogError struct {
	VA  uint64
	Msg string
}

func (e *LogError) Error() string { return fmt.Sprintf("kernel: log: %#x: %s", e.VA, e.Msg) }

// errNoText is a record without stored text: data-less (printk stores none
// for an empty or too-large message) or of length 0. It is skipped, as the
// kernel's own readers skip it, and is no corruption.
var errNoText = errors.New("no text")

// logRing is struct printk_ringbuffer as Log reads it, each value checked.
type logRing struct {
	descs, infos Value // struct prb_desc *, struct printk_info *
	count        uint64
	head, tail   uint64 // descriptor ids
	text         textRing
}

// textRing is the data ring, struct prb_data_ring: the text array and its
// size, always a power of two (1 << size_bits).
type textRing struct {
	va, size uint64
}

// checkRingArray checks an array of n elements of size bytes at va, read
// from the dump and the types: a non-NULL base, a plausible element size,
// and an end that does not wrap the address space. at is the address of the
// structure holding the pointer, what names the pointer.
func checkRingArray(at uint64, what string, va, n, size uint64) error {
	switch {
	case va == 0:
		return &LogError{VA: at, Msg: what + " is NULL"}
	case size == 0 || size > maxLogStruct:
		return &LogError{VA: at, Msg: fmt.Sprintf("%s: element size %d out of range [1,%d]", what, size, maxLogStruct)}
	case n == 0 || n > 1<<maxSizeBits:
		return &LogError{VA: at, Msg: fmt.Sprintf("%s: %d elements", what, n)}
	case va+n*size-1 < va: // n*size <= 2^44: the product cannot overflow
		return &LogError{VA: at, Msg: fmt.Sprintf("%s %#x of %d x %d bytes wraps the address space", what, va, n, size)}
	}
	return nil
}

// newTextRing checks the data ring's address and size_bits; at is the
// address of the struct prb_data_ring.
func newTextRing(at, va, sizeBits uint64) (textRing, error) {
	if sizeBits > maxSizeBits {
		return textRing{}, &LogError{VA: at, Msg: fmt.Sprintf("text data ring of 2^%d bytes", sizeBits)}
	}
	r := textRing{va: va, size: 1 << sizeBits}
	if err := checkRingArray(at, "text data ring", va, r.size, 1); err != nil {
		return textRing{}, err
	}
	return r, nil
}

// span locates a record's data block from its text_blk_lpos (get_data() in
// printk_ringbuffer.c): begin and next are logical positions, counting
// wraps of the ring in their high bits. A block that does not fit before
// the ring's end is stored at its start. It returns the block's offset in
// the ring; the text follows the block id and has textLen bytes, and the
// whole of it lies inside the ring, or span returns an error.
func (r textRing) span(begin, next, textLen uint64) (uint64, error) {
	if r.size == 0 || r.size&(r.size-1) != 0 {
		return 0, fmt.Errorf("data ring size %d is not a power of two", r.size)
	}
	if begin&1 != 0 && next&1 != 0 || textLen == 0 {
		return 0, errNoText // data-less (both positions odd, as the kernel marks them) or empty
	}
	if textLen > maxLogText {
		return 0, fmt.Errorf("text length %d above %d", textLen, maxLogText)
	}
	if begin%blockIDSize != 0 || next%blockIDSize != 0 {
		return 0, fmt.Errorf("data block [%#x,%#x) not aligned to %d", begin, next, blockIDSize)
	}
	wraps := func(lpos uint64) uint64 { return lpos / r.size }
	var off, length uint64
	switch {
	case wraps(begin) == wraps(next) && begin < next:
		off, length = begin%r.size, next-begin
	case wraps(begin+r.size) == wraps(next): // unsigned wrap at 2^64, as in the kernel
		off, length = 0, next%r.size
	default:
		return 0, fmt.Errorf("data block [%#x,%#x) is not one block of a %d-byte ring", begin, next, r.size)
	}
	// Either way off+length <= size: the block lies in the ring, and so does
	// the text once it fits in the block.
	if length < blockIDSize || length-blockIDSize < textLen {
		return 0, fmt.Errorf("text of %d bytes does not fit in data block [%#x,%#x)", textLen, begin, next)
	}
	return off, nil
}

// elemSize is the size of what a pointer value points at (0 for void * or a
// non-pointer).
func (k *Kernel) elemSize(p Value) uint64 {
	t := p.Type().Strip()
	if t.Kind != kdwarf.Pointer || t.Elem == nil {
		return 0
	}
	return uint64(max(k.sizeOf(t.Elem), 0))
}

// readLogRing reads and checks the ring buffer's descriptor and data rings.
func (k *Kernel) readLogRing(prb Value) (logRing, error) {
	desc := prb.Field("desc_ring")
	countBits, err := desc.Field("count_bits").Uint()
	if err != nil {
		return logRing{}, err
	}
	if countBits > maxCountBits {
		return logRing{}, &LogError{VA: desc.Addr(), Msg: fmt.Sprintf("descriptor ring of 2^%d entries", countBits)}
	}
	r := logRing{descs: desc.Field("descs"), infos: desc.Field("infos"), count: 1 << countBits}
	descs, e1 := r.descs.Ptr()
	infos, e2 := r.infos.Ptr()
	head, e3 := desc.Field("head_id.counter").Uint()
	tail, e4 := desc.Field("tail_id.counter").Uint()
	text := prb.Field("text_data_ring")
	sizeBits, e5 := text.Field("size_bits").Uint()
	data, e6 := text.Field("data").Ptr()
	if err := firstErr(e1, e2, e3, e4, e5, e6); err != nil {
		return logRing{}, err
	}
	if err := checkRingArray(desc.Addr(), "descs", descs, r.count, k.elemSize(r.descs)); err != nil {
		return logRing{}, err
	}
	if err := checkRingArray(desc.Addr(), "infos", infos, r.count, k.elemSize(r.infos)); err != nil {
		return logRing{}, err
	}
	if r.text, err = newTextRing(text.Addr(), data, sizeBits); err != nil {
		return logRing{}, err
	}
	r.head, r.tail = head&descIDMask, tail&descIDMask
	if (r.head-r.tail)&descIDMask >= r.count {
		// The kernel keeps tail within one ring of head; a dump taken while
		// it moved, or a corrupt one, may not. Read the last ring's worth.
		k.Warnf("kernel: log: %#x: tail id %d is more than %d descriptors behind head id %d; reading from %d",
			desc.Addr(), r.tail, r.count, r.head, (r.head-r.count+1)&descIDMask)
		r.tail = (r.head - r.count + 1) & descIDMask
	}
	return r, nil
}

// Log reads the kernel log (dmesg) from the printk ring buffer, oldest first.
// Records that are not committed or have no text are skipped; so are records
// whose positions or lengths are corrupt, with one warning that counts them
// and names the first. A ring whose sizes or pointers cannot be right is a
// *LogError. Records that cannot be read (memory missing from the dump) are
// skipped too, and Log returns the others with an error that counts them.
func (k *Kernel) Log() ([]LogRecord, error) {
	prbPtr, err := k.Symbol("prb")
	if err != nil {
		return nil, fmt.Errorf("kernel: log: %w (kernels before v5.10 are not supported)", err)
	}
	prb := k.Object(prbPtr, "struct printk_ringbuffer *").Deref()
	r, err := k.readLogRing(prb)
	if err != nil {
		var le *LogError
		if !errors.As(err, &le) { // a LogError already says "kernel: log"
			err = fmt.Errorf("kernel: log: %w", err)
		}
		return nil, err
	}
	var out []LogRecord
	var corrupt, unreadable int
	var firstCorrupt *LogError
	var firstUnreadable error
	for id, n := r.tail, uint64(0); n < r.count && n < maxLogRecords; id, n = (id+1)&descIDMask, n+1 {
		slot := int64(id & (r.count - 1))
		rec, err := k.logRecord(r, slot, id)
		var le *LogError
		switch {
		case err == nil:
			out = append(out, rec)
		case errors.Is(err, errNoText):
		case errors.As(err, &le):
			if corrupt++; firstCorrupt == nil {
				firstCorrupt = le
			}
		default:
			if unreadable++; firstUnreadable == nil {
				firstUnreadable = fmt.Errorf("record %d: %w", id, err)
			}
		}
		if id == r.head {
			break
		}
	}
	if corrupt > 0 {
		k.Warnf("kernel: log: %d corrupt records skipped; the first at %#x: %s", corrupt, firstCorrupt.VA, firstCorrupt.Msg)
	}
	if unreadable > 0 {
		return out, fmt.Errorf("kernel: log: %d records unreadable; the first: %w", unreadable, firstUnreadable)
	}
	return out, nil
}

// logRecord reads the record in descriptor slot, expected to be record id:
// errNoText unless it is committed and has text.
func (k *Kernel) logRecord(r logRing, slot int64, id uint64) (LogRecord, error) {
	d := r.descs.Index(slot)
	sv, err := d.Field("state_var.counter").Uint()
	if err != nil {
		return LogRecord{}, err
	}
	if state := sv >> descStateShift; sv&descIDMask != id || (state != descCommitted && state != descFinalized) {
		return LogRecord{}, errNoText // reserved, reused, or not yet written
	}
	info := r.infos.Index(slot)
	begin, e1 := d.Field("text_blk_lpos.begin").Uint()
	next, e2 := d.Field("text_blk_lpos.next").Uint()
	seq, e3 := info.Field("seq").Uint()
	ts, e4 := info.Field("ts_nsec").Uint()
	textLen, e5 := info.Field("text_len").Uint()
	if err := firstErr(e1, e2, e3, e4, e5); err != nil {
		return LogRecord{}, err
	}
	text, err := k.logText(r.text, d.Addr(), id, begin, next, textLen)
	if err != nil {
		return LogRecord{}, err
	}
	return LogRecord{Seq: seq, TimeNS: ts, Text: text}, nil
}

// logText reads a record's text from the data ring, checking that the block
// there belongs to the record: a block id of another record means the text
// was overwritten (a dump taken mid-update, or a corrupt one). descVA names
// the descriptor in errors.
func (k *Kernel) logText(r textRing, descVA, id, begin, next, textLen uint64) (string, error) {
	off, err := r.span(begin, next, textLen)
	if errors.Is(err, errNoText) {
		return "", err
	}
	if err != nil {
		return "", &LogError{VA: descVA, Msg: fmt.Sprintf("record %d: %v", id, err)}
	}
	block := r.va + off
	bid, err := k.Object(block, "unsigned long").Uint()
	if err != nil {
		return "", err
	}
	if bid != id {
		return "", &LogError{VA: block, Msg: fmt.Sprintf("data block of record %d holds record %d", id, bid)}
	}
	b := make([]byte, textLen)
	if err := k.ReadVirt(b, block+blockIDSize); err != nil {
		return "", err
	}
	// Log text is the kernel's own, but a corrupt ring must not inject escapes.
	for i, c := range b {
		if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
			b[i] = '?'
		}
	}
	return string(b), nil
}

// PanicMessage finds the reason the kernel died in its log: the "Kernel
// panic - not syncing" line, else the last Oops/BUG line.
func PanicMessage(log []LogRecord) string {
	var fallback string
	for i := len(log) - 1; i >= 0; i-- {
		t := log[i].Text
		if strings.HasPrefix(t, "Kernel panic - not syncing") {
			return t
		}
		if fallback == "" && (strings.HasPrefix(t, "BUG: ") || strings.HasPrefix(t, "Oops: ") ||
			strings.Contains(t, "general protection fault") || strings.HasPrefix(t, "sysrq: Trigger a crash")) {
			fallback = t
		}
	}
	return fallback
}
