package leaks_test

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/leaks"
	"github.com/vmleak/vmleak/symbolize"
)

// On every fixture with a test module, in every file format: each of the
// module's leaked objects (pointers dropped; their text begins
// "VMLEAK-LEAK ", vmleak_peer's "VMLEAK-PEER ") is reported (recall 100%:
// a leak detector that misses a known leak is wrong), and none of the
// objects the module still references — the .bss array's ("VMLEAK-BSS ")
// and its cache's objects, held on a list headed in .bss — is (precision
// 100% on the known sets: the scan is conservative, so a referenced
// object reported is a bug in the roots or the propagation, not noise).
// Reports outside the test modules are logged: the false-positive counts
// of the README.
func TestKnownLeaks(t *testing.T) {
	for _, m := range fixture.All(t) {
		if m.TestModule == nil {
			continue
		}
		for _, d := range m.Dumps {
			t.Run(m.Name+"/"+d.File, func(t *testing.T) {
				k := testkernel.Open(t, m, d)
				w, c := testkernel.Census(t, k)
				r, err := leaks.Find(k, w, c, symbolize.New(w))
				if err != nil {
					t.Fatal(err)
				}
				var census int64
				for _, cs := range c.Caches {
					census += cs.Allocated
				}
				if r.Objects != census {
					t.Errorf("%d objects considered, the census has %d allocated", r.Objects, census)
				}
				reported := map[uint64]bool{}
				for _, l := range r.Leaks {
					reported[l.Addr] = true
				}
				// The known sets, by the objects' own text.
				slabs, _, err := w.Slabs()
				if err != nil {
					t.Fatal(err)
				}
				known := map[string][]uint64{}
				mods := []*fixture.TestModule{m.TestModule}
				if m.PeerModule != nil {
					mods = append(mods, m.PeerModule)
				}
				moduleCaches := map[string]bool{}
				for _, tm := range mods {
					moduleCaches[tm.Cache] = true
				}
				head := make([]byte, 12)
				for _, s := range slabs {
					for i := uint64(0); i < s.N; i++ {
						if !s.IsAllocated(i) {
							continue
						}
						va := s.First + i*s.Stride
						if moduleCaches[s.Cache] {
							known["cache "+s.Cache] = append(known["cache "+s.Cache], va)
							continue
						}
						if s.ObjectSize < 1000 || k.ReadVirt(head, va) != nil {
							continue
						}
						for _, p := range []string{"VMLEAK-LEAK ", "VMLEAK-PEER ", "VMLEAK-BSS "} {
							if bytes.HasPrefix(head, []byte(p)) {
								known[p] = append(known[p], va)
							}
						}
					}
				}
				check := func(set string, want int, leaked bool) {
					got := known[set]
					// want < 0: a set whose size other tests check (the
					// before/after pair grows the module's cache).
					if want >= 0 && len(got) != want || len(got) == 0 {
						t.Errorf("%s: %d objects in the dump, want %d", set, len(got), want)
					}
					n := 0
					var missed []string
					for _, va := range got {
						if reported[va] {
							n++
						} else if leaked {
							missed = append(missed, fmt.Sprintf("%#x", va))
						}
					}
					switch {
					// A conservative scan misses a leak a stale word still
					// points at (a dead stack slot, a reused buffer), as
					// kmemleak does: one of 300 on one build of
					// trixie-slubdbg. More than 1 % is a defect.
					case leaked && (len(got)-n)*100 > len(got):
						t.Errorf("recall: %d of %d %q objects reported; missed %v", n, len(got), set, missed)
					case leaked && n != len(got):
						t.Logf("recall: %d of %d %q objects reported; missed (a stale reference) %v", n, len(got), set, missed)
					case !leaked && n != 0:
						t.Errorf("precision: %d of %d %q objects reported though referenced", n, len(got), set)
					}
				}
				check("VMLEAK-LEAK ", m.TestModule.Leak, true)
				check("VMLEAK-BSS ", m.TestModule.BSS, false)
				nobj := m.TestModule.NObj
				if strings.HasPrefix(m.Name, "bookworm-pair") {
					nobj = -1
				}
				check("cache "+m.TestModule.Cache, nobj, false)
				if p := m.PeerModule; p != nil {
					check("VMLEAK-PEER ", p.Leak, true)
					check("cache "+p.Cache, p.NObj, false)
				}
				knownLeaks := map[uint64]bool{}
				for _, va := range append(known["VMLEAK-LEAK "], known["VMLEAK-PEER "]...) {
					knownLeaks[va] = true
				}
				fp := map[string]int{}
				var nfp int
				for _, l := range r.Leaks {
					if !knownLeaks[l.Addr] {
						fp[l.Cache]++
						nfp++
					}
				}
				type kv struct {
					k string
					v int
				}
				var top []kv
				for c, n := range fp {
					top = append(top, kv{c, n})
				}
				sort.Slice(top, func(i, j int) bool { return top[i].v > top[j].v })
				var b strings.Builder
				for i, e := range top {
					if i == 8 {
						break
					}
					b.WriteString(" " + e.k + "=" + itoa(e.v))
				}
				t.Logf("objects %d, referenced %d, reported %d, outside the test modules %d (%.2f%% of objects); scanned %d MB, unreadable pages %d, partial %v; top:%s",
					r.Objects, r.Referenced, len(r.Leaks), nfp, 100*float64(nfp)/float64(max(1, r.Objects)), r.ScannedBytes>>20, r.UnreadablePages, r.Partial, b.String())
			})
		}
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

// On the fixtures without a test module every report is a false positive
// as far as anyone knows: counted and logged for the README, checked only
// for the scan's own consistency.
func TestUnknownLeaks(t *testing.T) {
	for _, m := range fixture.All(t) {
		if m.TestModule != nil {
			continue
		}
		d := m.Dumps[0]
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			k := testkernel.Open(t, m, d)
			w, c := testkernel.Census(t, k)
			r, err := leaks.Find(k, w, c, symbolize.New(w))
			if err != nil {
				t.Fatal(err)
			}
			if r.Objects != r.Referenced+r.Unreferenced || int64(len(r.Leaks)) != r.Unreferenced {
				t.Errorf("objects %d, referenced %d, unreferenced %d, leaks listed %d", r.Objects, r.Referenced, r.Unreferenced, len(r.Leaks))
			}
			var top []string
			for i, cl := range r.Caches {
				if i == 8 {
					break
				}
				top = append(top, cl.Cache+"="+itoa(int(cl.Objects)))
			}
			t.Logf("objects %d, reported %d (%.2f%%), partial %v; top: %s", r.Objects, r.Unreferenced,
				100*float64(r.Unreferenced)/float64(max(1, r.Objects)), r.Partial, strings.Join(top, " "))
		})
	}
}
