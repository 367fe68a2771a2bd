package walk

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/vmleak/vmleak/kernel"
)

// SLUB allocation tracking (slub_debug=U, SLAB_STORE_USER): every object of
// such a cache carries two struct track after its data, at object +
// get_info_end(s) (mm/slub.c): s->inuse, plus a pointer when the free
// pointer is stored outside the object (freeptr_outside_object: s->offset
// >= s->inuse, since cbfc35a48609, v5.7; before it the test was s->offset
// != 0). Index 0 is TRACK_ALLOC, 1 TRACK_FREE (enum track_item).
//
// The flag's value comes from the kernel's own types where they have it:
// since cc61eb851c9a (v6.9, "mm, slab: use an enum to define SLAB_ cache
// creation flags") SLAB_STORE_USER is bit _SLAB_STORE_USER of enum
// _slab_flag_bits (7 on the 6.12 and 7.x fixtures); before it a #define,
// 0x00010000 in include/linux/slab.h (6.1), which has no trace in debuginfo.
const slabStoreUserDefine = 0x00010000

// ErrNoTracks: the cache keeps no tracks (it lacks SLAB_STORE_USER), or the
// kernel has no struct track (no CONFIG_SLUB_DEBUG).
var ErrNoTracks = errors.New("walk: no allocation tracks (the cache lacks SLAB_STORE_USER)")

// Track is one struct track: the last allocation or free of an object.
type Track struct {
	Addr   uint64 `json:"addr"`   // the allocator's caller (_RET_IP_); 0 when never set
	Handle uint32 `json:"handle"` // stack depot handle of the whole stack; 0 when none was saved
	CPU    int32  `json:"cpu"`
	PID    int32  `json:"pid"`
	When   uint64 `json:"when"` // jiffies
}

// Tracks are an object's two tracks. For an allocated object Alloc is its
// allocation and Free the free of its previous life (if any); for a free
// object Free is the free that put it back and Alloc the allocation before.
type Tracks struct {
	Alloc Track `json:"alloc"`
	Free  Track `json:"free"`
}

// trackLayout is struct track, probed once.
type trackLayout struct {
	once                         sync.Once
	err                          error
	size                         uint64
	addr, handle, cpu, pid, when kernel.Member
	storeUser                    uint64 // the SLAB_STORE_USER flag
	flagFrom                     string // where storeUser came from, for messages
}

// tracks probes struct track and the flag once per walker.
func (w *Walker) tracks() (*trackLayout, error) {
	t := &w.trackL
	t.once.Do(func() {
		k := w.k
		if !k.HasType("struct track") {
			t.err = fmt.Errorf("%w: the kernel has no struct track (no CONFIG_SLUB_DEBUG)", ErrNoTracks)
			return
		}
		p := &prober{k: k, st: "struct track"}
		t.addr = p.req("addr")
		t.cpu = p.req("cpu")
		t.pid = p.req("pid")
		t.when = p.req("when")
		// depot_stack_handle_t handle under CONFIG_STACKDEPOT, since
		// 5cf909c553e9 (v5.18, "mm/slub: use stackdepot to save stack trace
		// in objects"); before it an addrs[] array this reader does not decode.
		t.handle = p.opt("handle")
		if p.err != nil {
			t.err = p.err
			return
		}
		n, err := k.SizeOf("struct track")
		if err != nil {
			t.err = fmt.Errorf("walk: %w", err)
			return
		}
		t.size = uint64(n)
		if bit, ok, err := k.ProbeEnumerator("_SLAB_STORE_USER"); ok || err != nil {
			if err != nil || bit < 0 || bit > 31 {
				t.err = fmt.Errorf("walk: _SLAB_STORE_USER = %d: %v", bit, err)
				return
			}
			t.storeUser, t.flagFrom = 1<<uint(bit), fmt.Sprintf("bit _SLAB_STORE_USER=%d of enum _slab_flag_bits", bit)
		} else {
			t.storeUser, t.flagFrom = slabStoreUserDefine, "SLAB_STORE_USER 0x10000 of include/linux/slab.h (before v6.9)"
		}
	})
	return t, t.err
}

// StoreUserFlag is this kernel's SLAB_STORE_USER flag, and where its value
// came from.
func (w *Walker) StoreUserFlag() (flag uint64, from string, err error) {
	t, err := w.tracks()
	if err != nil {
		return 0, "", err
	}
	return t.storeUser, t.flagFrom, nil
}

// StoresUser tells whether a cache keeps allocation tracks.
func (w *Walker) StoresUser(cache string) (bool, error) {
	ci := w.cacheByName(cache)
	if ci == nil {
		return false, fmt.Errorf("%w: %q", ErrNoCache, cache)
	}
	t, err := w.tracks()
	if err != nil {
		return false, err
	}
	return ci.stats.Flags&t.storeUser != 0, nil
}

func (w *Walker) cacheByName(name string) *cacheInfo {
	for _, c := range w.caches {
		if c.stats.Name == name {
			return c
		}
	}
	return nil
}

// trackOffset is get_info_end(s): where an object's tracks start, from the
// object's start.
func trackOffset(ci *cacheInfo) uint64 {
	if ci.offset >= ci.inuse { // freeptr_outside_object
		return ci.inuse + 8
	}
	return ci.inuse
}

// checkTrackRoom tells whether a cache's objects have room for two tracks.
func checkTrackRoom(ci *cacheInfo, t *trackLayout) error {
	end := ci.redLeft + trackOffset(ci) + 2*t.size
	if ci.inuse < ci.stats.ObjectSize || end > ci.size {
		return fmt.Errorf("walk: cache %s: tracks at %#x+2*%d overrun the %d-byte object slot (inuse %d, offset %d, red zone %d)",
			ci.stats.Name, trackOffset(ci), t.size, ci.size, ci.inuse, ci.offset, ci.redLeft)
	}
	return nil
}

func (t *trackLayout) decode(b []byte) (Track, error) {
	d := kernel.Decode(b)
	tr := Track{Addr: d.Uint(t.addr), CPU: int32(uint32(d.Uint(t.cpu))), PID: int32(uint32(d.Uint(t.pid))), When: d.Uint(t.when)}
	if t.handle.Present() {
		tr.Handle = uint32(d.Uint(t.handle))
	}
	return tr, d.Err()
}

// Tracks calls yield for every object of the named cache — or, for cache "",
// of every cache that keeps tracks — with the object's two tracks
// (allocated objects only, unless all). A cache without SLAB_STORE_USER is
// ErrNoTracks. Objects come in physical address order; slabs are read on
// every core, each slab's memory once. A slab or object that cannot be read
// is reported through yield's error (a run of unreadable struct pages after
// the objects of the pages around it) and the walk goes on.
func (w *Walker) Tracks(cache string, all bool, yield func(Object, Tracks, error) bool) error {
	t, err := w.tracks()
	if err != nil {
		return err
	}
	want := map[*cacheInfo]bool{}
	if cache != "" {
		ci := w.cacheByName(cache)
		if ci == nil {
			return w.noCache(cache)
		}
		if ci.stats.Flags&t.storeUser == 0 {
			return fmt.Errorf("%w: %s (flags %#x; %s)", ErrNoTracks, cache, ci.stats.Flags, t.flagFrom)
		}
		want[ci] = true
	} else {
		for _, ci := range w.caches {
			if ci.stats.Flags&t.storeUser != 0 {
				want[ci] = true
			}
		}
	}
	for _, ci := range w.caches {
		if !want[ci] {
			continue
		}
		if err := checkTrackRoom(ci, t); err != nil {
			delete(want, ci)
			if !yield(Object{Cache: ci.stats.Name, CacheAddr: ci.va}, Tracks{}, err) {
				return nil
			}
		}
	}
	if len(want) == 0 {
		return nil
	}
	ranges, err := w.memoryRanges()
	if err != nil {
		return err
	}
	const chunk = 1 << 10 // pfns per work item: 4 MiB of memory, a few thousand objects
	type item struct {
		start, end uint64
		out        chan []tracked
	}
	var items []*item
	for _, r := range ranges {
		for s := r.Start; s < r.End; s += chunk {
			items = append(items, &item{start: s, end: min(s+chunk, r.End), out: make(chan []tracked, 1)})
		}
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), 8))
	// Answers are handed over in per-item slices, recycled once yielded
	// (at most as many as can be in flight).
	spare := make(chan []tracked, 3*workers)
	done := make(chan struct{})
	next := make(chan *item)
	window := make(chan struct{}, 2*workers) // items decoded ahead of the consumer
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := w.scanBuf()
			var mem []byte
			for it := range next {
				var out []tracked
				select {
				case out = <-spare:
				default:
				}
				var bad []badRange
				w.scanRange(it.start, it.end, buf, &bad, func(s slabVisit) bool {
					ci, _ := w.cacheOf(s.raw)
					if ci == nil || !want[ci] {
						return true
					}
					out, mem = w.slabTracks(ci, t, s, all, out, mem)
					select {
					case <-done:
						return false
					default:
						return true
					}
				})
				for _, b := range mergeBad(bad) {
					out = append(out, tracked{err: fmt.Errorf("walk: %s", b)})
				}
				it.out <- out
			}
		}()
	}
	go func() {
		defer close(next)
		for _, it := range items {
			select {
			case window <- struct{}{}:
			case <-done:
				return
			}
			select {
			case next <- it:
			case <-done:
				return
			}
		}
	}()
	stop := false
	for _, it := range items {
		out := <-it.out
		<-window
		for _, e := range out {
			if !yield(e.o, e.tr, e.err) {
				stop = true
				break
			}
		}
		clear(out) // drop the errors' and names' references
		select {
		case spare <- out[:0]:
		default:
		}
		if stop {
			break
		}
	}
	close(done)
	wg.Wait()
	return nil
}

// tracked is one answer of Tracks.
type tracked struct {
	o   Object
	tr  Tracks
	err error
}

// slabTracks appends the tracks of one slab's objects to out; mem is a
// buffer for the slab's memory, grown as needed and returned.
func (w *Walker) slabTracks(ci *cacheInfo, t *trackLayout, s slabVisit, all bool, out []tracked, mem []byte) ([]tracked, []byte) {
	st, err := w.readSlab(ci, s.slabVA, s.pfn, s.raw)
	if err != nil {
		err = fmt.Errorf("walk: %w", err)
	} else {
		err = errors.Join(st.errs...)
	}
	if err != nil {
		out = append(out, tracked{o: Object{Cache: ci.stats.Name, CacheAddr: ci.va, Slab: s.slabVA}, err: err})
	}
	if st == nil {
		return out, mem
	}
	// The slab's objects in one read; if part of it is missing, object by
	// object, so only the missing objects are lost.
	n := st.r.n * st.r.size // slots of size bytes, each with its left red zone inside
	if uint64(cap(mem)) < n {
		mem = make([]byte, n)
	}
	mem = mem[:n]
	whole := w.k.ReadVirt(mem, st.r.base) == nil
	off := trackOffset(ci)
	for i := uint64(0); i < st.r.n; i++ {
		o := st.object(i)
		if !o.Allocated && !all {
			continue
		}
		at := o.Addr - st.r.base + off
		b := mem[at : at+2*t.size]
		var err error
		if !whole {
			err = w.k.ReadVirt(b, o.Addr+off)
		}
		var tr Tracks
		if err == nil {
			tr.Alloc, err = t.decode(b[:t.size])
		}
		if err == nil {
			tr.Free, err = t.decode(b[t.size:])
		}
		if err != nil {
			err = fmt.Errorf("walk: tracks of %s object %#x: %w", ci.stats.Name, o.Addr, err)
		}
		out = append(out, tracked{o, tr, err})
	}
	return out, mem
}
