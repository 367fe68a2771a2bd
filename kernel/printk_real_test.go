package kernel_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
)

// A real log decodes without a corrupt record: the checks added for crafted
// dumps reject nothing the kernel wrote.
func TestLogNoWarnings(t *testing.T) {
	forEachDump(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, k *kernel.Kernel) {
		if _, err := k.Log(); err != nil {
			t.Fatal(err)
		}
		for _, w := range k.Warnings() {
			if strings.Contains(w, "log") {
				t.Errorf("warning: %s", w)
			}
		}
	})
}

// Crafted ring-buffer values end in an error or a skipped record naming the
// address, never in a panic or in garbage text; every other record reads as
// before.
func TestLogCorrupt(t *testing.T) {
	c := loadCorruptible(t)
	good, err := c.good.Log()
	if err != nil {
		t.Fatal(err)
	}
	k := c.good
	prbPtr, err := k.Symbol("prb")
	if err != nil {
		t.Fatal(err)
	}
	prb := k.Object(prbPtr, "struct printk_ringbuffer *").Deref()
	ring := prb.Field("desc_ring")
	text := prb.Field("text_data_ring")
	countBits := testkernel.Uint(t, ring.Field("count_bits"))
	head := testkernel.Uint(t, ring.Field("head_id.counter"))
	// A committed record with text, a few before the newest.
	slot := int64((head - 3) & (1<<countBits - 1))
	desc := ring.Field("descs").Index(slot)
	info := ring.Field("infos").Index(slot)
	seq := testkernel.Uint(t, info.Field("seq"))
	beginVA := desc.Field("text_blk_lpos.begin").Addr()
	begin := c.word(t, beginVA)
	dataVA := testkernel.Uint(t, text.Field("data"))
	sizeBits := testkernel.Uint(t, text.Field("size_bits"))
	next := c.word(t, desc.Field("text_blk_lpos.next").Addr())
	blockVA := dataVA + begin&(1<<sizeBits-1)
	if begin>>sizeBits != next>>sizeBits {
		blockVA = dataVA // a wrapping block is stored at the ring's start
	}
	if !slices.ContainsFunc(good, func(r kernel.LogRecord) bool { return r.Seq == seq }) {
		t.Fatalf("record seq %d in slot %d is not in the log", seq, slot)
	}
	lenVA := info.Field("text_len").Addr()

	for _, tc := range []struct {
		name    string
		words   map[uint64]uint64
		wantErr []string // in Log's error; nil: Log succeeds with one record fewer
		warn    []string // in the warnings
	}{
		{"NULL data ring", map[uint64]uint64{text.Field("data").Addr(): 0},
			[]string{hexVA(text.Addr()), "text data ring is NULL"}, nil},
		{"data ring wrapping the address space", map[uint64]uint64{text.Field("data").Addr(): 0xffffffffffff0000},
			[]string{hexVA(text.Addr()), "wraps the address space"}, nil},
		{"2^40 descriptors", map[uint64]uint64{ring.Field("count_bits").Addr(): c.word(t, ring.Field("count_bits").Addr())&^0xffffffff | 40},
			[]string{hexVA(ring.Addr()), "descriptor ring of 2^40"}, nil},
		{"NULL descriptors", map[uint64]uint64{ring.Field("descs").Addr(): 0},
			[]string{hexVA(ring.Addr()), "descs is NULL"}, nil},
		{"misaligned text block", map[uint64]uint64{beginVA: begin + 4},
			nil, []string{"1 corrupt records", hexVA(desc.Addr()), "not aligned"}},
		{"text block of another record", map[uint64]uint64{blockVA: 12345},
			nil, []string{"1 corrupt records", hexVA(blockVA), "holds record 12345"}},
		{"text longer than its block", map[uint64]uint64{lenVA: c.word(t, lenVA) | 0xffff},
			nil, []string{"1 corrupt records", hexVA(desc.Addr()), "65535 bytes does not fit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := c.open(t, tc.words)
			log, err := k.Log()
			if tc.wantErr != nil {
				var le *kernel.LogError
				if !errors.As(err, &le) {
					t.Fatalf("error %v, want a *kernel.LogError", err)
				}
				wantIn(t, "error", err.Error(), tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantIn(t, "warnings", strings.Join(k.Warnings(), "\n"), tc.warn...)
			if len(log) != len(good)-1 {
				t.Fatalf("%d records, want %d", len(log), len(good)-1)
			}
			for i, j := 0, 0; i < len(good); i++ {
				if good[i].Seq == seq {
					continue
				}
				if log[j] != good[i] {
					t.Fatalf("record %d: %+v, was %+v", j, log[j], good[i])
				}
				j++
			}
		})
	}
}
