// Package summarytest builds small summaries by hand for the tests of
// summary, diff and the commands: every shape they must handle (a merged
// cache, a partial one, tracked sites, a crash time from either source).
package summarytest

import (
	"time"

	"github.com/vmleak/vmleak/summary"
)

// Cache is a cache of n-page slabs holding objects of size bytes, with the
// derived fields filled in.
func Cache(name string, objectSize, size, pages, slabs, allocated, total int64) summary.Cache {
	sb := pages * 4096
	return summary.Cache{Name: name, ObjectSize: objectSize, Size: size, ObjectsPerSlab: sb / size, SlabBytes: sb,
		Allocated: allocated, Total: total, Slabs: slabs, Bytes: slabs * sb, Aliases: []string{}, Owners: []string{}}
}

// Before is a small 6.1 summary.
func Before() *summary.Summary {
	crash := time.Date(2026, 12, 1, 22, 44, 20, 0, time.UTC)
	boot := time.Date(2026, 12, 1, 22, 44, 10, 0, time.UTC)
	s := &summary.Summary{Schema: summary.Schema,
		Dump: summary.Dump{File: "before.zlib", Size: 50390205, Format: "kdump", Arch: "x86_64", Hostname: "web-1",
			Release: "6.1.0-56-cloud-amd64", BuildID: "3b43fad5034874490492495d552c0af6a5fab235",
			CrashTime: &crash, CrashTimeSource: "timekeeper", BootTime: &boot, PageSize: 4096},
		Caches: []summary.Cache{
			Cache("dentry", 192, 192, 1, 515, 10796, 10815),
			Cache("kmalloc-1k", 1024, 1024, 4, 36, 555, 576),
			Cache("kmalloc-4k", 4096, 4096, 8, 10, 70, 80),
			Cache("old_cache", 64, 64, 1, 2, 100, 128),
			Cache("vmleak_test_obj", 232, 240, 1, 40, 680, 680),
		},
		Owners: []summary.Owner{
			{Owner: "unattributed", Cache: "dentry", Objects: 10796, Bytes: 10796 * 192},
			{Owner: "vmleak_test", Cache: "kmalloc-1k", Objects: 300, Bytes: 300 * 1024, Evidence: "alloc-track"},
			{Owner: "vmleak_test", Cache: "vmleak_test_obj", Objects: 680, Bytes: 680 * 232, Evidence: "data-pointer+constructor"},
		},
		Sites: []summary.Site{
			{Cache: "kmalloc-1k", Site: "leak_init+0x2a [vmleak_test]", Module: "vmleak_test", Objects: 300, Bytes: 300 * 1024},
		},
		Meminfo: []summary.MeminfoLine{
			{Name: "MemTotal", Value: 481296, Unit: "kB"}, {Name: "MemFree", Value: 418984, Unit: "kB"},
			{Name: "Slab", Value: 20000, Unit: "kB"}, {Name: "SUnreclaim", Value: 9000, Unit: "kB"},
			{Name: "HugePages_Total", Value: 0, Unit: ""},
		},
		Tracked:  true,
		Warnings: []string{},
	}
	s.Caches[1].Aliases = []string{"UNIX", "UNIX-STREAM"}
	s.Caches[4].Owners = []string{"vmleak_test"}
	s.Caches[1].Owners = []string{"vmleak_test"}
	return s
}

// After is Before some seconds later: the test module's cache grew by 12
// slabs, dentry shrank, old_cache went, new_cache came, kmalloc-4k lost
// slabs from the dump (partial) and looks as if it grew.
func After() *summary.Summary {
	s := Before()
	crash := s.Dump.CrashTime.Add(9 * time.Second)
	s.Dump.File, s.Dump.CrashTime, s.Dump.Size = "after.zlib", &crash, 50394436
	s.Caches = []summary.Cache{
		Cache("dentry", 192, 192, 1, 510, 10700, 10710),
		Cache("kmalloc-1k", 1024, 1024, 4, 38, 600, 608),
		Cache("kmalloc-4k", 4096, 4096, 8, 30, 200, 240),
		Cache("new_cache", 128, 128, 1, 3, 90, 96),
		Cache("vmleak_test_obj", 232, 240, 1, 52, 884, 884),
	}
	s.Caches[1].Aliases = []string{"UNIX", "UNIX-STREAM"}
	s.Caches[1].Owners = []string{"vmleak_test"}
	s.Caches[2].UnreadableSlabs, s.Caches[2].Partial = 2, true
	s.Caches[4].Owners = []string{"vmleak_test"}
	s.Partial = true
	s.Owners[0].Objects, s.Owners[0].Bytes = 10700, 10700*192
	s.Owners[1].Objects, s.Owners[1].Bytes = 345, 345*1024
	s.Owners[2].Objects, s.Owners[2].Bytes = 884, 884*232
	s.Sites[0].Objects, s.Sites[0].Bytes = 345, 345*1024
	s.Meminfo[1].Value = 418000
	s.Meminfo[2].Value = 20300
	s.Meminfo[3].Value = 9200
	s.Warnings = []string{"kmalloc-4k: 2 slabs not in the dump"}
	return s
}
