package leaks

import (
	"strings"
	"testing"
)

// Grouping: caches by bytes, owners by objects, at most SamplesPerGroup
// samples of at most SampleBytes each (fewer for a small object, none when
// unreadable); Filter regroups what it keeps.
func TestGroup(t *testing.T) {
	mem := fakeMem{}
	mem[slabA] = make([]byte, pageSize)
	copy(mem[slabA], "VMLEAK-LEAK 0")
	r := &Result{Leaks: []Leak{
		{Addr: slabA, Size: 1024, Cache: "kmalloc-1k", Owner: "vmleak_test", Site: "leak+0x2a", Evidence: EvidenceTrack},
		{Addr: slabA + 1024, Size: 1024, Cache: "kmalloc-1k", Owner: "vmleak_test", Site: "leak+0x2a", Evidence: EvidenceTrack},
		{Addr: slabA + 2048, Size: 1024, Cache: "kmalloc-1k", Owner: "vmleak_test", Site: "leak+0x2a", Evidence: EvidenceTrack},
		{Addr: slabA + 3072, Size: 1024, Cache: "kmalloc-1k", Owner: "vmleak_test", Site: "leak+0x2a", Evidence: EvidenceTrack},
		{Addr: slabB, Size: 1024, Cache: "kmalloc-1k", Owner: "kernel", Site: "other+0x1", Evidence: EvidenceTrack},
		{Addr: slabA + 8, Size: 8, Cache: "kmalloc-8", Owner: "unattributed", Evidence: EvidenceNone},
	}}
	group(r, mem)
	if r.Unreferenced != 6 || r.UnreferencedBytes != 5*1024+8 || len(r.Caches) != 2 {
		t.Fatalf("%d objects, %d bytes, %d caches", r.Unreferenced, r.UnreferencedBytes, len(r.Caches))
	}
	c := r.Caches[0]
	if c.Cache != "kmalloc-1k" || c.Objects != 5 || len(c.Groups) != 2 || c.Groups[0].Owner != "vmleak_test" || c.Groups[0].Objects != 4 {
		t.Errorf("first cache %+v", c)
	}
	g := c.Groups[0]
	if len(g.Samples) != SamplesPerGroup || len(g.Samples[0].Bytes) != 2*SampleBytes || !strings.HasPrefix(g.Samples[0].Bytes, "564d4c45414b2d4c45414b2030") {
		t.Errorf("samples %+v", g.Samples)
	}
	if s := c.Groups[1].Samples[0]; s.Bytes != "" {
		t.Errorf("sample of a missing page %+v, want no bytes", s)
	}
	if s := r.Caches[1].Groups[0].Samples[0]; len(s.Bytes) != 16 {
		t.Errorf("sample of an 8-byte object %+v, want 8 bytes", s)
	}
	r.Filter(mem, "", "kernel")
	if r.Unreferenced != 1 || len(r.Caches) != 1 || len(r.Leaks) != 1 || r.Caches[0].Groups[0].Site != "other+0x1" {
		t.Errorf("filtered: %+v", r)
	}
}
