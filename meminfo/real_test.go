package meminfo_test

import (
	"bufio"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/kernel/mm"
	"github.com/vmleak/vmleak/meminfo"
)

// How each line of the dump's meminfo is checked against the guest's own
// /proc/meminfo, captured over the serial console just before the dump
// (preN) and, for QEMU dumps, just after the VM was resumed (postN).
//
// The captures are not the dump's instant: while the guest prints preN a
// `cat /proc/meminfo` process is running (its mm, page tables, kernel stack,
// anonymous pages and commit charge are counted), the other captures fork
// more processes, and at the dump only the init shell is alive, blocked in
// `read </dev/ttyS1`. Which lines can move was decided from evidence: every
// line below was compared on every dump of every fixture (6.1, 6.12, 7.2)
// with preN and postN.
var (
	// exact: equal to preN (and postN) on every dump. These are boot-time
	// sizes, sysctls and counters of activity the guest never has between
	// the captures. Each is non-zero in some fixture's guest (checked below,
	// when every fixture runs), so equality is evidence.
	exact = []string{
		"MemTotal", "CommitLimit", "VmallocTotal", "Percpu", "Hugepagesize",
		"DirectMap4k", "DirectMap2M",
	}
	// exactZero: equal to the captures too, but 0 in every fixture's guest,
	// so that equality only shows vmleak also reads 0 there. The lab has no
	// block device I/O or page cache of files (the root is an initramfs in
	// tmpfs, whose pages are shmem: Buffers, Active(file), Inactive(file),
	// Dirty, Writeback, the NFS and bounce lines), no swap and no zswap
	// (SwapCached, SwapTotal, SwapFree, Zswap, Zswapped), no mlock or
	// ramfs (Unevictable, Mlocked), no KVM guests (SecPageTables), no THP
	// in use (the THP lines), no CMA area, no hugetlb pages reserved, no
	// 1G direct-map pages (QEMU's default CPU has no pdpe1gb), no memory
	// poisoned, accepted, ballooned or held by GPU drivers, and
	// VmallocChunk is printed as 0 by every kernel since 5.3. The test
	// requires them to be 0 in the guest's captures: a fixture that makes
	// one non-zero fails until it is moved to exact.
	exactZero = []string{
		"Buffers", "SwapCached", "Active(file)", "Inactive(file)", "Unevictable",
		"Mlocked", "SwapTotal", "SwapFree", "Zswap", "Zswapped", "Dirty",
		"Writeback", "SecPageTables", "NFS_Unstable", "Bounce", "WritebackTmp",
		"VmallocChunk", "EarlyMemtestBad", "HardwareCorrupted", "AnonHugePages",
		"ShmemHugePages", "ShmemPmdMapped", "FileHugePages", "FilePmdMapped",
		"CmaTotal", "CmaFree", "Unaccepted", "Balloon", "GPUActive", "GPUReclaim",
		"HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp",
		"Hugetlb", "DirectMap1G",
	}
	// between: the dump's value lies between preN and postN (QEMU dumps). Page
	// cache and slab grow with the captures' processes and files and are not
	// given back in the few seconds between them: Cached and Shmem (tmpfs and
	// pipe pages of the captures), Mapped (file pages mapped by cat while it
	// runs), the slab counters (task, mm, vma, file objects of each capture).
	between = []string{"Cached", "Shmem", "Mapped", "KReclaimable", "Slab", "SReclaimable", "SUnreclaim"}
	// Counted for the capturing process but gone at the dump:
	//   Committed_AS: cat's private writable mappings are committed while it
	//   runs, so the dump is below both captures (by 336 kB, busybox cat's
	//   commit, on every fixture).
	//   KernelStack: each live task holds THREAD_SIZE (16 kB); the dump has
	//   one task fewer than preN, or a kworker more, but never more than the
	//   larger capture. Both are global counters, which lag the truth by
	//   the per-CPU diffs not yet folded in (each under its CPU's
	//   stat_threshold): the dump's value plus its own diffs is at most a
	//   capture plus the thresholds (bookworm-kdump: 880 kB, 55 stacks,
	//   against a capture of 868).
	belowMin = []string{"Committed_AS"}
	belowMax = []string{"KernelStack"}
	// unchecked: compared with no capture, for the reasons below. Every line
	// the guest printed must be in exactly one of these lists, so that a
	// line new in some kernel is not silently left unchecked.
	unchecked = []string{
		"MemFree", "MemAvailable", "Active", "Inactive", "Active(anon)",
		"Inactive(anon)", "AnonPages", "PageTables", "VmallocUsed",
	}
	// Not compared with the captures (they move both ways within a second on
	// an idle guest): MemFree (pages sit on per-CPU free lists outside
	// NR_FREE_PAGES and every fork/exit of a capture allocates and frees),
	// MemAvailable (follows MemFree; its formula is checked separately),
	// Active/Inactive and their (anon) parts (folios wait in per-CPU LRU
	// batches before being counted, and cat's anonymous pages come and go),
	// AnonPages and PageTables (cat's own), VmallocUsed (cat's vmapped kernel
	// stack, unless served from the per-CPU stack cache). MemFree and
	// Cached are checked exactly against crash's `kmem -i` of the same dump
	// where the fixture has it.
)

func forEachDump(t *testing.T, fn func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, k *kernel.Kernel)) {
	for _, m := range fixture.All(t) {
		for _, d := range m.Dumps {
			t.Run(m.Name+"/"+d.File, func(t *testing.T) {
				k, err := kernel.Open(m.DumpPath(d), kernel.Options{Vmlinux: m.Vmlinux()})
				if err != nil {
					t.Fatal(err)
				}
				defer k.Close()
				fn(t, m, d, k)
			})
		}
	}
}

// oracleLines returns a captured /proc/meminfo's lines, in order, by name.
func oracleLines(t *testing.T, text string) (names []string, raw map[string]string) {
	t.Helper()
	raw = map[string]string{}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		name, _, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("oracle meminfo line %q", l)
		}
		names = append(names, name)
		raw[name] = l
	}
	return names, raw
}

// lists names the comparison lists, for TestRealMeminfo's bookkeeping.
var lists = map[string][]string{
	"exact": exact, "exactZero": exactZero, "between": between,
	"belowMin": belowMin, "belowMax": belowMax, "unchecked": unchecked,
}

func TestRealMeminfo(t *testing.T) {
	for _, l := range exact {
		if slices.Contains(exactZero, l) {
			t.Errorf("%s is in both exact and exactZero", l)
		}
	}
	// nonZero: the exact lines some fixture's guest had non-zero; dumps
	// counts the dumps whose captures were recorded.
	nonZero := map[string]bool{}
	dumps := 0
	forEachDump(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, k *kernel.Kernel) {
		mi, err := meminfo.Read(k)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range mi.Warnings {
			t.Errorf("warning: %s", w)
		}
		preText := m.Oracle(t, d.Oracle+".meminfo")
		pre, err := oracle.ParseMeminfo(preText)
		if err != nil {
			t.Fatal(err)
		}
		post := pre // kdump fixtures: the guest is gone after the dump
		postName := "post" + strings.TrimPrefix(d.Oracle, "pre") + ".meminfo"
		hasPost := m.HasOracle(postName)
		if hasPost {
			if post, err = oracle.ParseMeminfo(m.Oracle(t, postName)); err != nil {
				t.Fatal(err)
			}
		}

		// The same lines in the same order as the kernel printed them.
		wantNames, raw := oracleLines(t, preText)
		// Each of them in exactly one list; which lines can be evidence.
		for _, name := range wantNames {
			var in []string
			for ln, l := range lists {
				if slices.Contains(l, name) {
					in = append(in, ln)
				}
			}
			if len(in) != 1 {
				t.Errorf("guest line %s is in lists %v: want exactly one", name, in)
			}
			p, q := pre[name], post[name]
			if slices.Contains(exact, name) && (p != 0 || q != 0) {
				nonZero[name] = true
			}
			// A line of exactZero that moved between the captures (the LiME
			// guest writes its image to a file: Inactive(file) 12 kB before,
			// 0 after) is checked as a between line below.
			if slices.Contains(exactZero, name) && (p != 0 || q != 0) && !(hasPost && p != q) {
				t.Errorf("%s is %d (before) / %d (after) in the guest, no longer 0: move it from exactZero to exact", name, p, q)
			}
		}
		dumps++
		var names []string
		for _, l := range mi.Lines {
			names = append(names, l.Name)
			if l.Source == "" {
				t.Errorf("%s: no Source", l.Name)
			}
		}
		if !slices.Equal(names, wantNames) {
			t.Errorf("lines\n have %q\n want %q", names, wantNames)
		}

		var report []string
		for _, l := range mi.Lines {
			p, q := pre[l.Name], post[l.Name]
			lo, hi := min(p, q), max(p, q)
			switch {
			case slices.Contains(exactZero, l.Name) && hasPost && p != q:
				if l.Value < lo || l.Value > hi {
					t.Errorf("%s = %d, not between the guest's %d (before) and %d (after)", l.Name, l.Value, p, q)
				}
			case slices.Contains(exact, l.Name), slices.Contains(exactZero, l.Name):
				if l.Value != p || l.Value != q {
					t.Errorf("%s = %d, guest said %d before and %d after", l.Name, l.Value, p, q)
				}
			case slices.Contains(between, l.Name) && hasPost:
				if l.Value < lo || l.Value > hi {
					t.Errorf("%s = %d, not between the guest's %d (before) and %d (after)", l.Name, l.Value, p, q)
				}
			case slices.Contains(belowMin, l.Name):
				if l.Value > lo {
					t.Errorf("%s = %d, above the guest's %d (before) / %d (after), which include the reader", l.Name, l.Value, p, q)
				}
			case slices.Contains(belowMax, l.Name):
				lag, pending := nodeStatLag(t, k, "NR_KERNEL_STACK_KB")
				if l.Value > hi+lag-pending {
					t.Errorf("%s = %d, above both the guest's %d (before) and %d (after), by more than their lag %d less the dump's own %d",
						l.Name, l.Value, p, q, lag, pending)
				}
			}
			// Where the value is the guest's, the text must be the kernel's, byte for byte.
			if l.Value == p && meminfo.FormatLine(l) != raw[l.Name] {
				t.Errorf("format\n have %q\n want %q", meminfo.FormatLine(l), raw[l.Name])
			}
			if l.Value != p {
				report = append(report, fmt.Sprintf("%s %d (guest %d/%d)", l.Name, l.Value, p, q))
			}
		}
		t.Logf("%d lines, %d equal to %s; moved: %s", len(mi.Lines), len(mi.Lines)-len(report), d.Oracle, strings.Join(report, ", "))

		// si_mem_available() on the guest's own numbers, with this dump's
		// totalreserve_pages and watermarks (fixed since boot), gives the
		// guest's MemAvailable: checks the formula and the watermark walk.
		reserve, wl, err := meminfo.AvailableInputs(k)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("totalreserve_pages %d, Σ low watermarks %d pages", reserve, wl)
		for _, g := range []map[string]int64{pre, post} {
			got := 4 * meminfo.SIMemAvailable(g["MemFree"]/4, reserve, wl,
				(g["Active(file)"]+g["Inactive(file)"])/4, g["KReclaimable"]/4)
			if got != g["MemAvailable"] {
				t.Errorf("si_mem_available(guest's counters; totalreserve_pages %d, low watermarks %d) = %d kB, guest said %d",
					reserve, wl, got, g["MemAvailable"])
			}
		}

		// crash's `kmem -i` on the very same dump (6.1 fixtures; crash read a
		// flattened stream's rearranged twin, the same memory).
		crashName := "crash/" + strings.Replace(d.File, "flat-", "", 1) + ".kmem-i"
		if !m.HasOracle(crashName) && m.CrashReads() {
			t.Errorf("no crash output %s for a %s dump", crashName, m.KernelRelease)
		}
		if m.HasOracle(crashName) {
			ci := parseKmemI(t, m.Oracle(t, crashName))
			t.Logf("checked against %s", crashName)
			for _, c := range []struct{ crash, line string }{
				{"TOTAL MEM", "MemTotal"}, {"FREE", "MemFree"}, {"BUFFERS", "Buffers"},
				{"CACHED", "Cached"}, {"COMMIT LIMIT", "CommitLimit"},
			} {
				v, _ := mi.Get(c.line)
				pages, ok := ci[c.crash]
				if !ok {
					t.Errorf("crash kmem -i has no %s", c.crash)
					continue
				}
				if v != pages*4 {
					t.Errorf("%s = %d kB, crash %s %d pages (%d kB)", c.line, v, c.crash, pages, pages*4)
				}
			}
		}
	})

	// An exact line that is 0 in every guest belongs in exactZero. Only a
	// run over every dump of every fixture can tell.
	ms := fixture.All(t)
	total := 0
	for _, m := range ms {
		total += len(m.Dumps)
	}
	names := 0 // the x86_64 fixtures, which fixture.All returns when all are built
	for _, n := range fixture.Names(t) {
		if !strings.HasSuffix(n, "-arm64") {
			names++
		}
	}
	if len(ms) < names || dumps < total {
		t.Logf("%d of %d dumps of %d of %d fixtures compared: not checking that each exact line is non-zero somewhere",
			dumps, total, len(ms), names)
		return
	}
	for _, name := range exact {
		if !nonZero[name] {
			t.Errorf("%s is 0 (or absent) in every fixture's guest: its exact check compares 0 with 0; move it to exactZero", name)
		}
	}
}

// parseKmemI reads the PAGES column of crash's `kmem -i`.
func parseKmemI(t *testing.T, text string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := 1; i < len(f); i++ {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				continue
			}
			out[strings.Join(f[:i], " ")] = n
			break
		}
	}
	return out
}

// TestRealStructure checks relations the kernel's lines keep by construction.
func TestRealStructure(t *testing.T) {
	forEachDump(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, k *kernel.Kernel) {
		mi, err := meminfo.Read(k)
		if err != nil {
			t.Fatal(err)
		}
		g := func(n string) int64 {
			v, ok := mi.Get(n)
			if !ok {
				t.Fatalf("no %s", n)
			}
			return v
		}
		if g("MemFree") > g("MemTotal") || g("MemAvailable") > g("MemTotal") {
			t.Errorf("MemFree %d / MemAvailable %d above MemTotal %d", g("MemFree"), g("MemAvailable"), g("MemTotal"))
		}
		// With VMAP_STACK a stack is accounted page by page, each page on
		// its own node (account_kernel_stack: PAGE_SIZE / 1024 per page),
		// and per-CPU deltas are not folded in: the guest's own meminfo on
		// the NUMA fixture shows 1244 kB. Whole pages is what holds.
		if g("KernelStack")%4 != 0 {
			t.Errorf("KernelStack %d kB is not a whole number of 4 kB stack pages", g("KernelStack"))
		}
		if g("Slab") == 0 || g("Percpu") == 0 || g("Committed_AS") == 0 || g("VmallocUsed") == 0 {
			t.Errorf("an empty counter on a running kernel: Slab %d Percpu %d Committed_AS %d VmallocUsed %d",
				g("Slab"), g("Percpu"), g("Committed_AS"), g("VmallocUsed"))
		}
		if _, ok := mi.Get("NoSuchLine"); ok {
			t.Error("Get found a line that does not exist")
		}
	})
}

// nodeStatLag is, for one node stat item, the sum of every online node's
// per-CPU stat_threshold (the most a global counter read lags behind the
// truth) and of the per-CPU diffs pending at the dump (struct
// per_cpu_nodestat, folded into vm_node_stat by the vmstat worker).
func nodeStatLag(t *testing.T, k *kernel.Kernel, item string) (lag, pending int64) {
	t.Helper()
	idx, err := k.Types().Enumerator(item)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mm.New(k)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := m.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	offs, err := k.PerCPUOffsets()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		pcp, err := k.Object(n.Pgdat, "struct pglist_data").Field("per_cpu_nodestats").Ptr()
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range offs {
			ns := k.Object(pcp+off, "struct per_cpu_nodestat")
			thr, err1 := ns.Field("stat_threshold").Int()
			diff, err2 := ns.Field("vm_node_stat_diff").Index(idx).Int()
			if err1 != nil || err2 != nil {
				t.Fatalf("node %d per_cpu_nodestats: %v %v", n.ID, err1, err2)
			}
			lag += thr
			pending += diff
		}
	}
	return lag, pending
}
