package main

import (
	"bytes"
	"testing"

	"github.com/vmleak/vmleak/leaks"
)

// sampleLeaks is a small result with the shapes rendering must handle: a
// cache with two owners by allocation track, one by cache ownership, one
// unattributed with an unreadable sample, a partial scan.
func sampleLeaks() *leaks.Result {
	leakHex := "564d4c45414b2d4c45414b20313700000000000000000000000000000000000000"[:64]
	return &leaks.Result{Schema: leaks.Schema, Release: "6.1.0-56-cloud-amd64", Dump: "vmcore",
		Objects: 68902, Referenced: 68470, Unreferenced: 432, UnreferencedBytes: 432640,
		Roots: []leaks.RootStats{{Kind: "data", Regions: 2, Bytes: 2411520}, {Kind: "bss", Regions: 1, Bytes: 5566464},
			{Kind: "percpu", Regions: 2, Bytes: 2097152}, {Kind: "module", Regions: 11, Bytes: 380928}, {Kind: "stack", Regions: 55, Bytes: 901120, UnreadablePages: 2}},
		ScannedBytes: 36700160, UnreadablePages: 3, Partial: true,
		Caches: []leaks.CacheLeaks{
			{Cache: "kmalloc-1k", ObjectSize: 1024, Objects: 420, Bytes: 430080, Groups: []leaks.Group{
				{Owner: "vmleak_test", Site: "vmleak_test_leak+0x2a [vmleak_test]", Evidence: leaks.EvidenceTrack, Objects: 300, Bytes: 307200,
					Samples: []leaks.Sample{{Addr: 0xffff8e1441120000, Bytes: leakHex}, {Addr: 0xffff8e1441120800, Bytes: leakHex[:24]}}},
				{Owner: "vmleak_peer", Site: "vmleak_peer_leak+0x2a [vmleak_peer]", Evidence: leaks.EvidenceTrack, Objects: 120, Bytes: 122880,
					Samples: []leaks.Sample{{Addr: 0xffff8e145f4c8000, Bytes: "564d4c45414b2d50454552203000"}}}}},
			{Cache: "vmleak_test_obj", ObjectSize: 232, Objects: 2, Bytes: 464, Groups: []leaks.Group{
				{Owner: "vmleak_test", Evidence: leaks.EvidenceCache, Objects: 2, Bytes: 464, Samples: []leaks.Sample{{Addr: 0xffff8e1442000100, Bytes: "00"}}}}},
			{Cache: "kmalloc-8", ObjectSize: 8, Objects: 7, Bytes: 56, Groups: []leaks.Group{
				{Owner: "unattributed", Evidence: leaks.EvidenceNone, Objects: 7, Bytes: 56, Samples: []leaks.Sample{{Addr: 0xffff8e1441000008}}}}},
		},
		Warnings: []string{"leaks: per-CPU areas not scanned: example"},
		Leaks:    []leaks.Leak{{Addr: 0xffff8e1441120000}, {Addr: 0xffff8e1441120800}, {Addr: 0xffff8e145f4c8000}},
	}
}

func TestGoldenLeaks(t *testing.T) {
	var b bytes.Buffer
	writeLeaks(&b, sampleLeaks())
	golden(t, "leaks.txt", b.Bytes())
	b.Reset()
	if err := writeJSON(&b, sampleLeaks()); err != nil {
		t.Fatal(err)
	}
	golden(t, "leaks.json", b.Bytes())
	b.Reset()
	writeLeakAddresses(&b, sampleLeaks())
	golden(t, "leaks-addresses.txt", b.Bytes())
	b.Reset()
	empty := &leaks.Result{Schema: leaks.Schema, Objects: 10, Referenced: 10, Roots: []leaks.RootStats{{Kind: "data", Regions: 1, Bytes: 4096}}}
	writeLeaks(&b, empty)
	golden(t, "leaks-none.txt", b.Bytes())
}
