package kernel

import (
	"encoding/binary"
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
// of blocks that begin with the record id.
const (
	descStateShift = 62
	descCommitted  = 1
	descFinalized  = 2
	maxLogRecords  = 1 << 20
	maxLogText     = 1 << 16
)

// Log reads the kernel log (dmesg) from the printk ring buffer, oldest first.
// Records that are not committed or whose text was overwritten are skipped.
func (k *Kernel) Log() ([]LogRecord, error) {
	prbPtr, err := k.Symbol("prb")
	if err != nil {
		return nil, fmt.Errorf("kernel: log: %w (kernels before v5.10 are not supported)", err)
	}
	prb := k.Object(prbPtr, "struct printk_ringbuffer *").Deref()
	desc := prb.Field("desc_ring")
	countBits, err := desc.Field("count_bits").Uint()
	if err != nil {
		return nil, err
	}
	descs, e1 := desc.Field("descs").Ptr()
	infos, e2 := desc.Field("infos").Ptr()
	head, e3 := desc.Field("head_id").Field("counter").Uint()
	tail, e4 := desc.Field("tail_id").Field("counter").Uint()
	text := prb.Field("text_data_ring")
	sizeBits, e5 := text.Field("size_bits").Uint()
	data, e6 := text.Field("data").Ptr()
	if err := firstErr(e1, e2, e3, e4, e5, e6); err != nil {
		return nil, fmt.Errorf("kernel: log: %w", err)
	}
	if countBits > 24 || sizeBits > 32 {
		return nil, fmt.Errorf("kernel: log: implausible ring sizes (2^%d descriptors, 2^%d bytes)", countBits, sizeBits)
	}
	descT, err := k.TypeOf("struct prb_desc")
	if err != nil {
		return nil, err
	}
	infoT, err := k.TypeOf("struct printk_info")
	if err != nil {
		return nil, err
	}
	descSize, infoSize := k.sizeOf(descT), k.sizeOf(infoT)
	var offs [6]int
	for i, f := range []struct {
		t    *kdwarf.Type
		path string
	}{{descT, "state_var"}, {descT, "text_blk_lpos.begin"}, {descT, "text_blk_lpos.next"},
		{infoT, "seq"}, {infoT, "ts_nsec"}, {infoT, "text_len"}} {
		if offs[i], err = k.fieldOff(f.t, f.path); err != nil {
			return nil, fmt.Errorf("kernel: log: %w", err)
		}
	}
	fState, fBegin, fNext, fSeq, fTS, fLen := offs[0], offs[1], offs[2], offs[3], offs[4], offs[5]
	if descSize < int64(fNext)+8 || infoSize < int64(max(fSeq, fTS)+8) || infoSize < int64(fLen)+2 {
		return nil, fmt.Errorf("kernel: log: unexpected prb_desc/printk_info layout")
	}

	idMask := uint64(1)<<descStateShift - 1
	descMask := uint64(1)<<countBits - 1
	dataSize := uint64(1) << sizeBits
	var out []LogRecord
	db := make([]byte, descSize)
	ib := make([]byte, infoSize)
	for id, n := tail&idMask, 0; ; id, n = (id+1)&idMask, n+1 {
		if n > maxLogRecords || n > int(descMask)+1 {
			break
		}
		slot := id & descMask
		if err := k.ReadVirt(db, descs+slot*uint64(descSize)); err != nil {
			return out, fmt.Errorf("kernel: log: descriptor %d: %w", id, err)
		}
		sv := binary.LittleEndian.Uint64(db[fState:])
		state := sv >> descStateShift
		if sv&idMask == id && (state == descCommitted || state == descFinalized) {
			if err := k.ReadVirt(ib, infos+slot*uint64(infoSize)); err != nil {
				return out, fmt.Errorf("kernel: log: info %d: %w", id, err)
			}
			begin := binary.LittleEndian.Uint64(db[fBegin:])
			next := binary.LittleEndian.Uint64(db[fNext:])
			tlen := uint64(binary.LittleEndian.Uint16(ib[fLen:]))
			msg, ok := k.logText(data, sizeBits, dataSize, begin, next, tlen)
			if ok {
				out = append(out, LogRecord{Seq: binary.LittleEndian.Uint64(ib[fSeq:]), TimeNS: binary.LittleEndian.Uint64(ib[fTS:]), Text: msg})
			}
		}
		if id == head&idMask {
			break
		}
	}
	return out, nil
}

// logText reads a record's text from the data ring (get_data() in
// printk_ringbuffer.c): a block that wraps stores its data at the ring's start.
func (k *Kernel) logText(data, sizeBits, dataSize, begin, next, textLen uint64) (string, bool) {
	if begin&1 != 0 || next&1 != 0 || textLen == 0 || textLen > maxLogText {
		return "", false // data-less record, or the text was lost
	}
	var start, length uint64
	switch {
	case begin>>sizeBits == next>>sizeBits && next > begin:
		start, length = begin&(dataSize-1), next-begin
	case begin>>sizeBits+1 == next>>sizeBits:
		start, length = 0, next&(dataSize-1)
	default:
		return "", false
	}
	const idSize = 8 // each block begins with the record id
	if length < idSize+textLen || start+length > dataSize {
		return "", false
	}
	b := make([]byte, textLen)
	if err := k.ReadVirt(b, data+start+idSize); err != nil {
		return "", false
	}
	// Log text is the kernel's own, but a corrupt ring must not inject escapes.
	for i, c := range b {
		if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
			b[i] = '?'
		}
	}
	return string(b), true
}

// fieldOff is a member's byte offset in a struct.
func (k *Kernel) fieldOff(t *kdwarf.Type, path string) (int, error) {
	st, err := k.types.Resolve(t.Strip())
	if err != nil {
		return 0, err
	}
	m, err := st.Field(path)
	if err != nil {
		return 0, err
	}
	return int(m.Offset), nil
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
