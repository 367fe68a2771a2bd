// Package summary is what a fleet keeps of a dump instead of the dump: its
// identity (host, release, build-id, time, panic, file size), its slab
// census, who owns the slab memory, and /proc/meminfo — a few tens of
// kilobytes, as JSON for people and scripts or Parquet for engines.
//
// It owns the schema (versioned: Schema), the two encodings and their
// strict reading: a file of another version, cut short or edited by hand
// is an *Error naming the file and the field. It reads no dump: New takes
// the results the packages below computed (walk, owners, meminfo, kernel),
// and package diff compares two summaries without any kernel code.
package summary

import (
	"time"
)

// Schema is the version of the summary this package writes and reads. It
// is raised when a field changes meaning or goes away; a reader refuses
// any other version rather than misread it.
const Schema = 1

// Summary is one dump. The same structure is the JSON object and the one
// row of the Parquet file (lists become Parquet LIST columns). Numbers are
// signed 64-bit in both, because Spark and Trino have no unsigned types.
type Summary struct {
	Schema  int           `json:"schema" parquet:"schema"`
	Dump    Dump          `json:"dump" parquet:"dump"`
	Caches  []Cache       `json:"caches" parquet:"caches,list"`
	Owners  []Owner       `json:"owners" parquet:"owners,list"`
	Sites   []Site        `json:"sites" parquet:"sites,list"`
	Meminfo []MeminfoLine `json:"meminfo" parquet:"meminfo,list"`
	// Tracked is set when some cache keeps allocation tracks (slub_debug=U):
	// only then are Sites, and generic caches' owners, known.
	Tracked bool `json:"tracked" parquet:"tracked"`
	// Partial is set when part of the dump's memory could not be read: the
	// caches concerned say so, and some owners or meminfo lines may be
	// missing.
	Partial  bool     `json:"partial" parquet:"partial"`
	Warnings []string `json:"warnings" parquet:"warnings,list"`
}

// Dump is the identity of the dump and of the kernel that wrote it.
type Dump struct {
	File   string `json:"file" parquet:"file"`     // base name, as given
	Size   int64  `json:"size" parquet:"size"`     // bytes
	SHA256 string `json:"sha256" parquet:"sha256"` // "" unless asked for (it reads the whole file)
	Format string `json:"format" parquet:"format"` // elf, kdump, flattened
	Arch   string `json:"arch" parquet:"arch"`

	Hostname string `json:"hostname" parquet:"hostname"` // init_uts_ns.name.nodename
	Release  string `json:"release" parquet:"release"`
	BuildID  string `json:"build_id" parquet:"build_id"`
	// CrashTime is when the dump was taken: VMCOREINFO's CRASHTIME, else
	// the timekeeper's wall clock (CrashTimeSource says which); BootTime is
	// when that kernel booted, which tells one boot's dumps from another's.
	CrashTime       *time.Time `json:"crash_time" parquet:"crash_time,optional,timestamp(millisecond)"`
	CrashTimeSource string     `json:"crash_time_source" parquet:"crash_time_source"`
	BootTime        *time.Time `json:"boot_time" parquet:"boot_time,optional,timestamp(millisecond)"`
	Panic           string     `json:"panic" parquet:"panic"`
	PageSize        int64      `json:"page_size" parquet:"page_size"`
}

// Cache is one slab cache's census.
type Cache struct {
	Name           string `json:"name" parquet:"name"`
	ObjectSize     int64  `json:"object_size" parquet:"object_size"` // kmem_cache.object_size
	Size           int64  `json:"size" parquet:"size"`               // stride of one object
	ObjectsPerSlab int64  `json:"objects_per_slab" parquet:"objects_per_slab"`
	SlabBytes      int64  `json:"slab_bytes" parquet:"slab_bytes"`
	Allocated      int64  `json:"allocated" parquet:"allocated"`
	Total          int64  `json:"total" parquet:"total"`
	Slabs          int64  `json:"slabs" parquet:"slabs"`
	// Bytes is the memory the cache's slabs occupy: Slabs × SlabBytes.
	Bytes int64 `json:"bytes" parquet:"bytes"`
	// Aliases are the names merged into this cache (its /sys/kernel/slab links).
	Aliases []string `json:"aliases" parquet:"aliases,list"`
	// Owners are the modules holding objects of the cache or owning it.
	Owners []string `json:"owners" parquet:"owners,list"`
	// UnreadableSlabs could not be read; the counts are then lower bounds
	// and Partial is set.
	UnreadableSlabs int64 `json:"unreadable_slabs" parquet:"unreadable_slabs"`
	Partial         bool  `json:"partial" parquet:"partial"`
	// Disagree: the census and the kernel's counters differ (see vmleak slabs).
	Disagree bool `json:"disagree" parquet:"disagree"`
}

// Owner is what one owner (a module, "kernel" or "unattributed") holds in
// one cache, and on what evidence (package owners).
type Owner struct {
	Owner    string `json:"owner" parquet:"owner"`
	Cache    string `json:"cache" parquet:"cache"`
	Objects  int64  `json:"objects" parquet:"objects"`
	Bytes    int64  `json:"bytes" parquet:"bytes"` // objects × object size
	Evidence string `json:"evidence" parquet:"evidence"`
}

// Site is the tracked allocations of one cache from one call site.
type Site struct {
	Cache   string `json:"cache" parquet:"cache"`
	Site    string `json:"site" parquet:"site"`     // function+0xoff [module], as crash's sym prints it
	Module  string `json:"module" parquet:"module"` // "" for the kernel or where unknown
	Objects int64  `json:"objects" parquet:"objects"`
	Bytes   int64  `json:"bytes" parquet:"bytes"`
}

// MeminfoLine is one line of /proc/meminfo as the kernel would have printed it.
type MeminfoLine struct {
	Name  string `json:"name" parquet:"name"`
	Value int64  `json:"value" parquet:"value"`
	Unit  string `json:"unit" parquet:"unit"` // "kB" or ""
}

// Cache returns the named cache, or nil.
func (s *Summary) Cache(name string) *Cache {
	for i := range s.Caches {
		if s.Caches[i].Name == name {
			return &s.Caches[i]
		}
	}
	return nil
}

// MemoryBytes is the memory of every slab cache.
func (s *Summary) MemoryBytes() int64 {
	var n int64
	for _, c := range s.Caches {
		n += c.Bytes
	}
	return n
}
