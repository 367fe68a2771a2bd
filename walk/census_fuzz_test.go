package walk_test

import (
	"encoding/binary"
	"io"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/vmleak/vmleak/elfcore"
	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/fuzzseed"
	"github.com/vmleak/vmleak/internal/synth"
	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/walk"
)

// recorder is a ReaderAt that notes the 8-byte words every read covers.
type recorder struct {
	r     io.ReaderAt
	mu    sync.Mutex
	words map[int64]bool
}

func (r *recorder) ReadAt(b []byte, off int64) (int, error) {
	n, err := r.r.ReadAt(b, off)
	r.mu.Lock()
	for w := off &^ 7; w < off+int64(n); w += 8 {
		r.words[w] = true
	}
	r.mu.Unlock()
	return n, err
}

// censusTarget is the synthetic kernel FuzzCensus mutates: the 6.1 scenario
// (hardened, SLUB debug, NUMA), its files, its types opened once, and the
// words of the vmcore's memory a clean census reads, each with its value.
type censusTarget struct {
	vmcore string
	types  *kdwarf.File
	words  []int64 // file offsets, sorted
	orig   map[int64]uint64
}

func loadCensusTarget(f *testing.F) *censusTarget {
	f.Helper()
	sk := synth.New(synth.Config{Version: synth.V6_1, SlubDebug: true, Hardened: true, NUMA: true})
	for _, spec := range scenario(synth.V6_1) {
		sk.AddCache(spec)
	}
	dir := f.TempDir()
	fs, err := sk.Write(dir)
	if err != nil {
		f.Fatal(err)
	}
	types, err := kdwarf.Open(fs.Vmlinux, kdwarf.WithCacheDir(dir))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { types.Close() })
	file, err := os.Open(fs.Vmcore)
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		f.Fatal(err)
	}
	rec := &recorder{r: file, words: map[int64]bool{}}
	d, err := elfcore.NewDump(rec, st.Size(), fs.Vmcore)
	if err != nil {
		f.Fatal(err)
	}
	// Only memory is mutated: the headers and notes have fuzzers of their
	// own.
	var memStart int64 = -1
	for _, s := range d.Segments() {
		if memStart < 0 || int64(s.FileOff) < memStart {
			memStart = int64(s.FileOff)
		}
	}
	k, err := kernel.OpenDump(d, fs.Vmcore, kernel.Options{Types: types})
	if err != nil {
		f.Fatal(err)
	}
	defer k.Close()
	w, err := walk.New(k)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := w.Census(); err != nil {
		f.Fatal(err)
	}
	if _, _, err := w.Slabs(); err != nil {
		f.Fatal(err)
	}
	// The words to mutate: those a clean census reads that are not zero
	// (the census reads every struct page; the free ones say nothing).
	t := &censusTarget{vmcore: fs.Vmcore, types: types, orig: map[int64]uint64{}}
	blocks := map[int64][]byte{}
	for off := range rec.words {
		if off < memStart {
			continue
		}
		blk, ok := blocks[off&^4095]
		if !ok {
			blk = make([]byte, 4096)
			n, _ := file.ReadAt(blk, off&^4095)
			blk = blk[:n]
			blocks[off&^4095] = blk
		}
		if i := off & 4095; i+8 <= int64(len(blk)) {
			if v := binary.LittleEndian.Uint64(blk[i:]); v != 0 {
				t.words = append(t.words, off)
				t.orig[off] = v
			}
		}
	}
	slices.Sort(t.words)
	if len(t.words) < 100 {
		f.Fatalf("a clean census read %d words of memory", len(t.words))
	}
	return t
}

// FuzzCensus takes the census of a synthetic kernel's dump with up to eight
// of the words a clean census reads replaced (kmem_cache fields, slab
// lists, struct slab counters, free pointers, per-CPU and node state),
// each by a mode the input picks: a value from the input, the word plus a
// small delta, another word's value (a pointer elsewhere in the dump),
// zero, or one bit flipped. The census and the slab list must end, without
// a panic, either with an error or with counts that hold together. (A
// real fixture's census takes seconds an execution: the synthetic dump's
// takes milliseconds.)
func FuzzCensus(f *testing.F) {
	for _, s := range censusSeeds() {
		f.Add(s[0].([]byte))
	}
	ct := loadCensusTarget(f)
	f.Fuzz(func(t *testing.T, patches []byte) {
		words := map[int64]uint64{}
		for ; len(patches) >= 11 && len(words) < 8; patches = patches[11:] {
			at := ct.words[int(binary.LittleEndian.Uint16(patches))%len(ct.words)]
			v := binary.LittleEndian.Uint64(patches[3:])
			old := ct.orig[at]
			switch patches[2] % 5 {
			case 1:
				v = old + v%64 - 32
			case 2:
				v = ct.orig[ct.words[v%uint64(len(ct.words))]]
			case 3:
				v = 0
			case 4:
				v = old ^ 1<<(v%64)
			}
			words[at] = v
		}
		file, err := os.Open(ct.vmcore)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		st, _ := file.Stat()
		d, err := elfcore.NewDump(&fixture.PatchedFile{R: file, Words: words}, st.Size(), ct.vmcore)
		if err != nil {
			return
		}
		k, err := kernel.OpenDump(d, ct.vmcore, kernel.Options{Types: ct.types})
		if err != nil {
			return
		}
		defer k.Close()
		w, err := walk.New(k)
		if err != nil {
			return
		}
		c, err := w.Census()
		if err == nil {
			for _, cs := range c.Caches {
				if cs.Allocated < 0 || cs.Total < 0 || cs.Slabs < 0 || cs.Allocated > cs.Total {
					t.Fatalf("cache %q: %d allocated of %d in %d slabs", cs.Name, cs.Allocated, cs.Total, cs.Slabs)
				}
			}
		}
		slabs, _, err := w.Slabs()
		if err != nil {
			return
		}
		for _, s := range slabs {
			if uint64(len(s.Allocated)) < (s.N+63)/64 {
				t.Fatalf("slab %#x: %d objects, a bitmap of %d words", s.SlabVA, s.N, len(s.Allocated))
			}
		}
	})
}

func censusSeeds() [][]any {
	patch := func(idx uint16, mode uint8, v uint64) []byte {
		b := binary.LittleEndian.AppendUint16(nil, idx)
		b = append(b, mode)
		return binary.LittleEndian.AppendUint64(b, v)
	}
	return [][]any{
		{[]byte{}},
		{patch(10, 0, 0xffffffffffffffff)},
		{append(patch(100, 1, 40), patch(2000, 2, 77)...)},
		{append(patch(300, 3, 0), patch(301, 4, 3)...)},
		{patch(5000, 4, 63)},
	}
}

func TestWriteCensusSeeds(t *testing.T) {
	fuzzseed.Enabled(t)
	fuzzseed.Write(t, "FuzzCensus", censusSeeds())
}
