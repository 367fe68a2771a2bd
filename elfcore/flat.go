package elfcore

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// makedumpfile's flattened format (-F) is the log of the writes the
// rearranged file would have received: a 4096-byte header, then records of
// {offset, size} in big-endian followed by size bytes, ended by an
// {-1, -1} record. Rather than rewriting it (makedumpfile -R) we index it
// once and read it in place.
const (
	flatSig         = "makedumpfile"
	flatHeaderSize  = 4096
	flatRecHdrSize  = 16
	flatTypeHeader  = 1
	flatVersion     = 1
	flatMaxRecords  = 1 << 28 // index cap: ~8 GiB of extents would be absurd
	flatMinRecBytes = flatRecHdrSize + 1
)

func isFlat(m []byte) bool {
	return len(m) >= 13 && string(m[:12]) == flatSig && m[12] == 0
}

// flatExtent maps logical [log, log+n) to stream offset stream.
type flatExtent struct {
	log, stream, n int64
}

// flatReader is the logical (rearranged) file over a flattened stream. Gaps
// never written read as zeros, as they would from the sparse file
// makedumpfile -R creates.
type flatReader struct {
	r      io.ReaderAt
	size   int64        // logical size: end of the last extent
	stored int64        // bytes the extents cover
	ext    []flatExtent // sorted by log, non-overlapping
	// ended is false for a stream without its {-1, -1} end record: the
	// writer stopped early, and records after the last one may be lost.
	ended bool
}

func newFlatReader(r io.ReaderAt, size int64, name string) (*flatReader, error) {
	h, err := readMeta(r, size, name, 0, flatHeaderSize, "flattened header")
	if err != nil {
		return nil, err
	}
	be := binary.BigEndian
	if t := int64(be.Uint64(h[16:])); t != flatTypeHeader {
		return nil, &FormatError{name, 16, fmt.Sprintf("flattened header type %d, want %d", t, flatTypeHeader)}
	}
	if v := int64(be.Uint64(h[24:])); v != flatVersion {
		return nil, &FormatError{name, 24, fmt.Sprintf("flattened header version %d, want %d", v, flatVersion)}
	}
	maxRecs := min((size-flatHeaderSize)/flatMinRecBytes+1, flatMaxRecords)
	var recs []flatExtent
	pos := int64(flatHeaderSize)
	var rh [flatRecHdrSize]byte
	sorted, ended := true, false
	for pos < size {
		if size-pos < flatRecHdrSize {
			return nil, &FormatError{name, pos, "truncated flattened record header"}
		}
		if m, err := r.ReadAt(rh[:], pos); m != flatRecHdrSize {
			return nil, &FormatError{name, pos, fmt.Sprintf("reading flattened record header: %v", err)}
		}
		off, n := int64(be.Uint64(rh[:])), int64(be.Uint64(rh[8:]))
		if off == -1 && n == -1 {
			ended = true
			break
		}
		if off < 0 || n <= 0 {
			return nil, &FormatError{name, pos, fmt.Sprintf("bad flattened record offset %d size %d", off, n)}
		}
		if n > size-pos-flatRecHdrSize {
			return nil, &FormatError{name, pos, fmt.Sprintf("flattened record of %d bytes runs past end of file", n)}
		}
		if off > (1<<62)-n {
			return nil, &FormatError{name, pos, fmt.Sprintf("flattened record offset %#x out of range", off)}
		}
		if int64(len(recs)) >= maxRecs {
			return nil, &FormatError{name, pos, fmt.Sprintf("more than %d flattened records", maxRecs)}
		}
		if k := len(recs); k > 0 && off < recs[k-1].log+recs[k-1].n {
			sorted = false
		}
		recs = append(recs, flatExtent{log: off, stream: pos + flatRecHdrSize, n: n})
		pos += flatRecHdrSize + n
	}
	fr := &flatReader{r: r, ended: ended}
	if sorted {
		fr.ext = recs
	} else {
		fr.ext = resolveOverrides(recs)
	}
	for _, e := range fr.ext {
		fr.stored += e.n
	}
	if k := len(fr.ext); k > 0 {
		fr.size = fr.ext[k-1].log + fr.ext[k-1].n
	}
	return fr, nil
}

// resolveOverrides turns records in write order into non-overlapping
// extents where, for every byte, the last write wins. A sweep over the
// sorted boundaries keeps a heap of the records covering the current point,
// most recent on top.
func resolveOverrides(recs []flatExtent) []flatExtent {
	bounds := make([]int64, 0, 2*len(recs))
	for _, r := range recs {
		bounds = append(bounds, r.log, r.log+r.n)
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	order := make([]int, len(recs)) // record indices by start
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case recs[a].log < recs[b].log:
			return -1
		case recs[a].log > recs[b].log:
			return 1
		}
		return 0
	})
	h := &recHeap{recs: recs}
	var out []flatExtent
	next := 0
	for j := 0; j+1 < len(bounds); j++ {
		lo, hi := bounds[j], bounds[j+1]
		for next < len(order) && recs[order[next]].log <= lo {
			heap.Push(h, order[next])
			next++
		}
		for h.Len() > 0 {
			top := recs[h.idx[0]]
			if top.log+top.n > lo {
				break
			}
			heap.Pop(h)
		}
		if h.Len() == 0 {
			continue
		}
		top := recs[h.idx[0]]
		e := flatExtent{log: lo, stream: top.stream + (lo - top.log), n: hi - lo}
		if k := len(out); k > 0 && out[k-1].log+out[k-1].n == e.log && out[k-1].stream+out[k-1].n == e.stream {
			out[k-1].n += e.n
			continue
		}
		out = append(out, e)
	}
	return out
}

// recHeap is a max-heap of record indices (later index = later write).
type recHeap struct {
	recs []flatExtent
	idx  []int
}

func (h *recHeap) Len() int           { return len(h.idx) }
func (h *recHeap) Less(i, j int) bool { return h.idx[i] > h.idx[j] }
func (h *recHeap) Swap(i, j int)      { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *recHeap) Push(x any)         { h.idx = append(h.idx, x.(int)) }
func (h *recHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}

// ReadAt reads the logical file.
func (f *flatReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("elfcore: negative offset %d", off)
	}
	n := 0
	for n < len(p) {
		o := off + int64(n)
		if o >= f.size {
			return n, io.EOF
		}
		// First extent ending after o.
		i, _ := slices.BinarySearchFunc(f.ext, o, func(e flatExtent, o int64) int {
			if e.log+e.n <= o {
				return -1
			}
			return 1
		})
		want := int64(len(p) - n)
		if i == len(f.ext) {
			return n, io.EOF
		}
		e := f.ext[i]
		if o < e.log {
			z := min(want, e.log-o)
			clear(p[n : n+int(z)])
			n += int(z)
			continue
		}
		c := min(want, e.log+e.n-o)
		m, err := f.r.ReadAt(p[n:n+int(c)], e.stream+(o-e.log))
		n += m
		if int64(m) != c {
			if err == nil || isEOF(err) {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	return n, nil
}
