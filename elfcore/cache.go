package elfcore

import "sync"

// pageCache is a bounded LRU of decompressed pages keyed by pfn. Readers
// copy out under the lock, so an evicted page's buffer can be reused
// immediately for the next insert without racing a reader.
type pageCache struct {
	mu    sync.Mutex
	cap   int
	m     map[uint64]*cacheEntry
	head  cacheEntry // sentinel: head.next is most recent
	spare [][]byte   // buffers of evicted pages, reused by get buffers
	hits  uint64
	miss  uint64
}

type cacheEntry struct {
	pfn        uint64
	data       []byte
	prev, next *cacheEntry
}

func newPageCache(capacity int) *pageCache {
	c := &pageCache{}
	c.head.prev, c.head.next = &c.head, &c.head
	c.setCap(capacity)
	return c
}

func (c *pageCache) setCap(n int) {
	if n < 1 {
		n = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cap = n
	if c.m == nil {
		c.m = make(map[uint64]*cacheEntry, min(n, 4096))
	}
	for len(c.m) > c.cap {
		c.evictLocked()
	}
}

// grow raises the capacity to n pages; a smaller n leaves it.
func (c *pageCache) grow(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cap = max(c.cap, n)
}

func (c *pageCache) stats() (hits, misses uint64, pages int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.miss, c.cap
}

func (c *pageCache) unlink(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (c *pageCache) pushFront(e *cacheEntry) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}

func (c *pageCache) evictLocked() {
	e := c.head.prev
	if e == &c.head {
		return
	}
	c.unlink(e)
	delete(c.m, e.pfn)
	if len(c.spare) < 8 {
		c.spare = append(c.spare, e.data)
	}
}

// copyOut copies page pfn from offset off into p if cached.
func (c *pageCache) copyOut(pfn uint64, off int, p []byte) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[pfn]
	if !ok {
		c.miss++
		return 0, false
	}
	c.hits++
	c.unlink(e)
	c.pushFront(e)
	return copy(p, e.data[off:]), true
}

// buffer returns a page-sized buffer, preferably one an eviction freed.
func (c *pageCache) buffer(size int) []byte {
	c.mu.Lock()
	if k := len(c.spare); k > 0 {
		b := c.spare[k-1]
		c.spare = c.spare[:k-1]
		c.mu.Unlock()
		if len(b) == size {
			return b
		}
		return make([]byte, size)
	}
	c.mu.Unlock()
	return make([]byte, size)
}

// put inserts a page; data must not be used by the caller afterwards.
func (c *pageCache) put(pfn uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[pfn]; ok {
		// Another goroutine decoded the same page concurrently.
		c.unlink(e)
		c.pushFront(e)
		return
	}
	for len(c.m) >= c.cap {
		c.evictLocked()
	}
	e := &cacheEntry{pfn: pfn, data: data}
	c.m[pfn] = e
	c.pushFront(e)
}

func (c *pageCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.head.prev, c.head.next = &c.head, &c.head
	c.spare = nil
}
