package stackdepot_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/stackdepot"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

type opened struct {
	k *kernel.Kernel
	w *walk.Walker
	d *stackdepot.Depot
}

var (
	openMu sync.Mutex
	openDB = map[string]*opened{}
)

// open opens a fixture dump, its slab walker and its depot once per test binary.
func open(t *testing.T, m *fixture.Manifest, df fixture.DumpFile) *opened {
	t.Helper()
	openMu.Lock()
	defer openMu.Unlock()
	p := m.DumpPath(df)
	if o := openDB[p]; o != nil {
		return o
	}
	k, err := kernel.Open(p, kernel.Options{Vmlinux: m.Vmlinux()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := walk.New(k)
	if err != nil {
		t.Fatal(err)
	}
	d, err := stackdepot.New(k)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	o := &opened{k, w, d}
	openDB[p] = o
	return o
}

// 6.1's kmalloc entry points (include/linux/slab.h: kmalloc, kmalloc_node,
// kmalloc_track_caller and friends end in these): the first frame of a
// kmalloc'ed object's stack, one or two frames inside the caller the track
// names.
var kmalloc61 = []string{"kmalloc_trace", "__kmalloc", "kmalloc_node_trace", "__kmalloc_node", "__kmalloc_node_track_caller"}

// trackAddrs is 6.1's TRACK_ADDRS_COUNT (mm/slub.c): frames per saved stack.
const trackAddrs = 16

// outermostModuleSpace tells whether every frame is module space: the
// outermost frames of a stack cut at trackAddrs.
func outermostModuleSpace(fs []symbolize.Frame) bool {
	for _, f := range fs {
		if f.Kind != symbolize.FrameModuleSpace {
			return false
		}
	}
	return true
}

// Every handle in the tracks of the slub_debug=U dump decodes; every frame
// is kernel or module code (or a module's freed init text); and each stack
// starts at the track's caller — or, for kmalloc'ed objects, at one of 6.1's
// kmalloc entry points with the caller right after it.
func TestSlubdbgStacks(t *testing.T) {
	m := fixture.Load(t, "bookworm-slubdbg")
	for _, df := range m.Dumps {
		t.Run(df.File, func(t *testing.T) {
			o := open(t, m, df)
			s := symbolize.New(o.w)
			handles := map[uint32]bool{}
			var bad []string
			fail := func(format string, args ...any) {
				if bad = append(bad, fmt.Sprintf(format, args...)); len(bad) <= 10 {
					t.Errorf(format, args...)
				}
			}
			firsts := map[string]int{}
			tracks := 0
			err := o.w.Tracks("", true, func(ob walk.Object, tr walk.Tracks, err error) bool {
				if err != nil {
					fail("%v", err)
					return true
				}
				for i, t := range []walk.Track{tr.Alloc, tr.Free} {
					if t.Addr == 0 {
						continue
					}
					tracks++
					handles[t.Handle] = true
					frames, err := o.d.Stack(t.Handle)
					if err != nil {
						fail("%s object %#x track %d: %v", ob.Cache, ob.Addr, i, err)
						continue
					}
					if i != 0 {
						continue
					}
					f0 := s.Code(frames[0])
					if frames[0] == t.Addr {
						firsts["the caller"]++
						continue
					}
					name, _, _ := strings.Cut(f0.Symbol, "+")
					known := false
					for _, k := range kmalloc61 {
						known = known || name == k
					}
					if !known || !(frames[1] == t.Addr || len(frames) > 2 && frames[2] == t.Addr) {
						fail("%s object %#x: stack starts at %s, caller %s: %x", ob.Cache, ob.Addr, f0, s.Code(t.Addr), frames)
						continue
					}
					firsts[name]++
				}
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			frames := 0
			for h := range handles {
				st, err := o.d.Stack(h)
				if err != nil {
					continue // reported above
				}
				syms := s.Stack(st)
				for i, f := range syms {
					frames++
					if f.Text && (f.Kind == symbolize.FrameKernel || f.Kind == symbolize.FrameModule) || f.Kind == symbolize.FrameFreedInit {
						continue
					}
					// SLUB saves at most TRACK_ADDRS_COUNT (16) frames: a full
					// stack may end in a module's freed init code before the
					// do_one_initcall frame that would prove it, and is then
					// only module space (the qemu_fw_cfg probe's kernfs nodes).
					if f.Kind == symbolize.FrameModuleSpace && len(st) == trackAddrs && outermostModuleSpace(syms[i:]) {
						continue
					}
					fail("handle %#x: frame %#x is %s: %s", h, uint64(f.Addr), f.Kind, f.What)
				}
			}
			if tracks == 0 || len(handles) == 0 {
				t.Fatal("no tracks")
			}
			t.Logf("%d tracks, %d distinct stacks, %d frames; first frames: %v", tracks, len(handles), frames, firsts)
		})
	}
}

// The depot's own hash table (6.1: stack_table[stack_hash_mask + 1] of
// chains through stack_record.next) lists every record: each one's handle
// leads back to it, with the same frames read directly.
func TestHashTableRecords(t *testing.T) {
	m := fixture.Load(t, "bookworm-slubdbg")
	o := open(t, m, m.Dumps[0])
	k := o.k
	table, err := k.Var("stack_table", "unsigned long").Uint()
	if err != nil {
		t.Fatal(err)
	}
	mask, err := k.Var("stack_hash_mask", "unsigned int").Uint()
	if err != nil {
		t.Fatal(err)
	}
	if table == 0 || mask == 0 || mask >= 1<<24 {
		t.Fatalf("stack_table %#x, mask %#x", table, mask)
	}
	buckets := make([]byte, 8*(mask+1))
	if err := k.ReadVirt(buckets, table); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	records := 0
	for i := uint64(0); i <= mask; i++ {
		for rec := binary.LittleEndian.Uint64(buckets[8*i:]); rec != 0; {
			if seen[rec] || len(seen) > 1<<22 {
				t.Fatalf("bucket %d: record %#x again (a cycle)", i, rec)
			}
			seen[rec] = true
			hdr := make([]byte, 24) // 6.1's struct stack_record up to entries[]
			if err := k.ReadVirt(hdr, rec); err != nil {
				t.Fatalf("record %#x: %v", rec, err)
			}
			size, handle := binary.LittleEndian.Uint32(hdr[12:]), binary.LittleEndian.Uint32(hdr[16:])
			raw := make([]byte, 8*size)
			if err := k.ReadVirt(raw, rec+24); err != nil {
				t.Fatalf("record %#x: %v", rec, err)
			}
			have, err := o.d.Stack(handle)
			if err != nil {
				t.Fatalf("record %#x in bucket %d: %v", rec, i, err)
			}
			if len(have) != int(size) {
				t.Fatalf("record %#x: %d frames by handle %#x, %d in the record", rec, len(have), handle, size)
			}
			for j := range have {
				if have[j] != binary.LittleEndian.Uint64(raw[8*j:]) {
					t.Fatalf("record %#x: frame %d differs", rec, j)
				}
			}
			records++
			rec = binary.LittleEndian.Uint64(hdr)
		}
	}
	if records == 0 {
		t.Fatal("an empty depot on a slub_debug=U kernel")
	}
	t.Logf("%d records in %d buckets, each found by its handle", records, mask+1)
}

// Every fixture's kernel from 5.18 has a stack depot whose layout is
// probed: on the kernels without slub_debug it holds nothing, or next to
// nothing, and a handle past its pools is a HandleError naming the handle.
// Before it (5.10) SLUB saved no stacks in the depot and SLUB_DEBUG did not
// select STACKDEPOT (5cf909c553e9, v5.18): Debian's 5.10 cloud kernel, with
// neither KASAN nor page_owner, has none, and New says so with ErrAbsent.
func TestEveryKernelsDepot(t *testing.T) {
	for _, m := range fixture.All(t) {
		df := m.Dumps[0]
		t.Run(m.Name+"/"+df.File, func(t *testing.T) {
			if !m.KernelAtLeast(5, 18) {
				k, err := kernel.Open(m.DumpPath(df), kernel.Options{Vmlinux: m.Vmlinux()})
				if err != nil {
					t.Fatal(err)
				}
				defer k.Close()
				if d, err := stackdepot.New(k); !errors.Is(err, kernel.ErrAbsent) {
					t.Errorf("a %s kernel: stack depot %v, error %v; want ErrAbsent", m.KernelRelease, d, err)
				}
				return
			}
			o := open(t, m, df)
			if o.d.PoolSize() != 16384 {
				t.Errorf("pool size %d, want 16384 (4 pages)", o.d.PoolSize())
			}
			const h = 0x1fff // pool 8190 or 8191 in every layout; no kernel here has that many
			_, err := o.d.Stack(h)
			var he *stackdepot.HandleError
			if !errors.As(err, &he) || he.Handle != h || !strings.Contains(err.Error(), fmt.Sprintf("%#08x", h)) {
				t.Errorf("handle %#x: %v, want a HandleError naming it", h, err)
			}
			if _, err := o.d.Stack(0); !errors.Is(err, stackdepot.ErrNoStack) {
				t.Errorf("handle 0: %v, want ErrNoStack", err)
			}
			t.Logf("%s: %s", m.KernelRelease, o.d.Pools())
		})
	}
}
