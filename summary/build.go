package summary

import (
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/meminfo"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/walk"
)

// Input is what a summary is made of, each part computed by its own package.
// Owners and Meminfo may be nil (not computed, or failed: say so in
// Warnings); Clock may be nil where the timekeeper could not be read.
type Input struct {
	Info     *kernel.Summary // the dump's description (vmleak info)
	Size     int64           // the dump file's size (the parts' together for a split dump)
	SHA256   string          // "" when not computed; of the parts one after the other for a split dump
	Hostname string
	BuildID  string
	Clock    *kernel.Clock
	Census   *walk.Census
	Owners   *owners.Report
	Meminfo  *meminfo.Meminfo
	Warnings []string
}

// New assembles a summary. Caches are sorted by name and object size, owners
// by owner and cache, sites by cache and site: the same dump gives the same
// file, whatever order the kernel listed things in.
func New(in Input) *Summary {
	s := &Summary{Schema: Schema, Warnings: append([]string{}, in.Warnings...)}
	s.Caches, s.Owners, s.Sites, s.Meminfo = []Cache{}, []Owner{}, []Site{}, []MeminfoLine{}
	if i := in.Info; i != nil {
		s.Dump = Dump{File: filepath.Base(i.File), Format: i.Format, Arch: i.Arch, Release: i.Release,
			Panic: i.Panic, PageSize: int64(i.PageSize)}
		if i.CrashTime != nil {
			t := utc(*i.CrashTime)
			s.Dump.CrashTime, s.Dump.CrashTimeSource = &t, "vmcoreinfo"
		}
	}
	s.Dump.Size, s.Dump.SHA256, s.Dump.Hostname, s.Dump.BuildID = in.Size, in.SHA256, in.Hostname, in.BuildID
	if c := in.Clock; c != nil {
		if s.Dump.CrashTime == nil {
			t := utc(c.Now)
			s.Dump.CrashTime, s.Dump.CrashTimeSource = &t, "timekeeper"
		}
		b := utc(c.Boot)
		s.Dump.BootTime = &b
	}
	var byCache map[string]string
	if in.Owners != nil {
		byCache = in.Owners.ModulesByCache()
	}
	if c := in.Census; c != nil {
		if s.Dump.Release == "" {
			s.Dump.Release = c.Release
		}
		s.Partial = c.Partial
		for _, cs := range c.Caches {
			s.Caches = append(s.Caches, Cache{
				Name: cs.Name, ObjectSize: int64(cs.ObjectSize), Size: int64(cs.Size), ObjectsPerSlab: int64(cs.ObjPerSlab),
				SlabBytes: int64(cs.SlabBytes), Allocated: cs.Allocated, Total: cs.Total, Slabs: cs.Slabs,
				Bytes: int64(cs.MemoryBytes()), Aliases: nonNil(cs.Aliases), Owners: splitOwners(byCache[cs.Name]),
				UnreadableSlabs: cs.UnreadableSlabs, Partial: cs.UnreadableSlabs > 0, Disagree: cs.Disagree,
			})
		}
		s.Warnings = append(s.Warnings, c.Warnings...)
	}
	if r := in.Owners; r != nil {
		s.Tracked = r.Tracked
		s.Partial = s.Partial || r.Partial
		for _, o := range r.Owners {
			for _, cs := range o.Caches {
				s.Owners = append(s.Owners, Owner{Owner: o.Owner, Cache: cs.Cache, Objects: cs.Objects, Bytes: cs.Bytes, Evidence: cs.Evidence})
			}
		}
		for _, st := range r.Sites {
			name := st.Caller.String()
			if st.Caller.Symbol == "" {
				// An address alone moves with KASLR: keep what it is, not where.
				name = "? (" + st.Caller.Kind + ")"
			}
			s.Sites = append(s.Sites, Site{Cache: st.Cache, Site: name, Module: st.Module, Objects: st.Objects, Bytes: st.Bytes})
		}
		s.Warnings = append(s.Warnings, r.Warnings...)
	}
	if m := in.Meminfo; m != nil {
		s.Partial = s.Partial || m.Partial
		for _, l := range m.Lines {
			s.Meminfo = append(s.Meminfo, MeminfoLine{Name: l.Name, Value: l.Value, Unit: l.Unit})
		}
		s.Warnings = append(s.Warnings, m.Warnings...)
	}
	s.sort()
	return s
}

// sort puts a summary's lists in their canonical order (meminfo keeps the
// kernel's line order).
func (s *Summary) sort() {
	sort.SliceStable(s.Caches, func(i, j int) bool {
		a, b := s.Caches[i], s.Caches[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.ObjectSize < b.ObjectSize
	})
	sort.SliceStable(s.Owners, func(i, j int) bool {
		a, b := s.Owners[i], s.Owners[j]
		if a.Owner != b.Owner {
			return a.Owner < b.Owner
		}
		return a.Cache < b.Cache
	})
	// Two sites can print alike (both unknown): merge them, the key is the name.
	type key struct{ cache, site string }
	merged := map[key]int{}
	var sites []Site
	for _, st := range s.Sites {
		k := key{st.Cache, st.Site}
		if i, ok := merged[k]; ok {
			sites[i].Objects += st.Objects
			sites[i].Bytes += st.Bytes
			continue
		}
		merged[k] = len(sites)
		sites = append(sites, st)
	}
	s.Sites = nonNil(sites)
	sort.SliceStable(s.Sites, func(i, j int) bool {
		a, b := s.Sites[i], s.Sites[j]
		if a.Cache != b.Cache {
			return a.Cache < b.Cache
		}
		return a.Site < b.Site
	})
}

// splitOwners is owners.Report.ModulesByCache's "mod1,mod2" as a list.
func splitOwners(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

// nonNil makes an absent list an empty one, so that JSON says [] and every
// summary has the same fields.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// utc strips a time's location and monotonic reading.
func utc(t time.Time) time.Time { return time.Unix(t.Unix(), 0).UTC() }
