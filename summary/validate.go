package summary

import (
	"fmt"
)

// validate checks what must hold between the fields of a summary vmleak
// wrote; a hand-edited number usually breaks one of these, and the error
// names it.
func validate(s *Summary) *Error {
	bad := func(field, format string, a ...any) *Error {
		return &Error{Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	d := s.Dump
	switch {
	case d.File == "":
		return bad("dump.file", "empty")
	case d.Size < 0:
		return bad("dump.size", "negative (%d)", d.Size)
	case d.Arch == "":
		return bad("dump.arch", "empty")
	case d.Release == "":
		return bad("dump.release", "empty")
	case d.PageSize <= 0 || d.PageSize&(d.PageSize-1) != 0:
		return bad("dump.page_size", "%d is not a page size", d.PageSize)
	case d.SHA256 != "" && !isHex(d.SHA256, 64):
		return bad("dump.sha256", "%q is not a SHA-256 in hex", d.SHA256)
	case (d.CrashTime == nil) != (d.CrashTimeSource == ""):
		return bad("dump.crash_time_source", "%q does not go with crash_time %v", d.CrashTimeSource, d.CrashTime)
	case d.CrashTimeSource != "" && d.CrashTimeSource != "vmcoreinfo" && d.CrashTimeSource != "timekeeper":
		return bad("dump.crash_time_source", "%q (vmcoreinfo or timekeeper)", d.CrashTimeSource)
	}
	caches := map[string]bool{}
	partial := false
	for i, c := range s.Caches {
		f := func(name string) string { return fmt.Sprintf("caches[%d].%s", i, name) }
		switch {
		case c.Name == "":
			return bad(f("name"), "empty")
		case c.ObjectSize <= 0:
			return bad(f("object_size"), "%d (cache %s)", c.ObjectSize, c.Name)
		case c.Size < c.ObjectSize:
			return bad(f("size"), "%d, less than object_size %d (cache %s)", c.Size, c.ObjectSize, c.Name)
		case c.SlabBytes < d.PageSize || c.SlabBytes%d.PageSize != 0:
			return bad(f("slab_bytes"), "%d is not whole pages (cache %s)", c.SlabBytes, c.Name)
		case c.ObjectsPerSlab <= 0 || c.ObjectsPerSlab*c.Size > c.SlabBytes:
			return bad(f("objects_per_slab"), "%d objects of %d bytes do not fit a %d-byte slab (cache %s)", c.ObjectsPerSlab, c.Size, c.SlabBytes, c.Name)
		case c.Allocated < 0 || c.Allocated > c.Total:
			return bad(f("allocated"), "%d, outside 0..total %d (cache %s)", c.Allocated, c.Total, c.Name)
		case c.Slabs < 0 || c.Total > c.Slabs*c.ObjectsPerSlab:
			return bad(f("total"), "%d objects cannot be in %d slabs of %d (cache %s)", c.Total, c.Slabs, c.ObjectsPerSlab, c.Name)
		case c.Bytes != c.Slabs*c.SlabBytes:
			return bad(f("bytes"), "%d, but %d slabs of %d bytes are %d (cache %s)", c.Bytes, c.Slabs, c.SlabBytes, c.Slabs*c.SlabBytes, c.Name)
		case c.UnreadableSlabs < 0 || c.Partial != (c.UnreadableSlabs > 0):
			return bad(f("partial"), "%v with %d unreadable slabs (cache %s)", c.Partial, c.UnreadableSlabs, c.Name)
		}
		caches[c.Name] = true
		partial = partial || c.Partial
	}
	if partial && !s.Partial {
		return bad("partial", "false, yet some caches are partial")
	}
	for i, o := range s.Owners {
		f := func(name string) string { return fmt.Sprintf("owners[%d].%s", i, name) }
		switch {
		case o.Owner == "":
			return bad(f("owner"), "empty")
		case !caches[o.Cache]:
			return bad(f("cache"), "%q is not a cache of this summary", o.Cache)
		case o.Objects < 0:
			return bad(f("objects"), "negative (%d)", o.Objects)
		case o.Bytes < 0:
			return bad(f("bytes"), "negative (%d)", o.Bytes)
		}
	}
	for i, st := range s.Sites {
		f := func(name string) string { return fmt.Sprintf("sites[%d].%s", i, name) }
		switch {
		case st.Site == "":
			return bad(f("site"), "empty")
		case !caches[st.Cache]:
			return bad(f("cache"), "%q is not a cache of this summary", st.Cache)
		case st.Objects < 0 || st.Bytes < 0:
			return bad(f("objects"), "negative (%d objects, %d bytes)", st.Objects, st.Bytes)
		}
	}
	for i, l := range s.Meminfo {
		switch {
		case l.Name == "":
			return bad(fmt.Sprintf("meminfo[%d].name", i), "empty")
		case l.Unit != "kB" && l.Unit != "":
			return bad(fmt.Sprintf("meminfo[%d].unit", i), "%q (kB or empty)", l.Unit)
		}
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
