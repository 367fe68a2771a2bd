package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/walk"
)

// splitFixture is the lab's split dumps and the vmlinux of their kernel.
func splitFixture(t *testing.T) (*fixture.Derived, *fixture.Manifest) {
	t.Helper()
	dv := fixture.LoadDerived(t, "bookworm-kdump")
	return dv, fixture.Load(t, "bookworm-kdump")
}

// vmleak slabs on the parts of a split dump prints exactly what it prints
// on the dump makedumpfile wrote whole at the same level, given as
// separate arguments or comma-separated.
func TestSplitSlabsReal(t *testing.T) {
	dv, m := splitFixture(t)
	code, want, errs := vmleak(t, "slabs", dv.ReferencePath(), "--vmlinux", m.Vmlinux())
	if code != ExitOK {
		t.Fatalf("%s: exit %d: %s", dv.Reference, code, errs)
	}
	for name, parts := range dv.SplitSets(t) {
		paths := dv.Paths(parts)
		for _, form := range []struct {
			how  string
			args []string
		}{
			{"arguments", paths},
			{"commas", []string{strings.Join(paths, ",")}},
		} {
			t.Run(name+"/"+form.how, func(t *testing.T) {
				args := append(append([]string{"slabs"}, form.args...), "--vmlinux", m.Vmlinux())
				code, out, errs := vmleak(t, args...)
				if code != ExitOK || errs != "" {
					t.Fatalf("exit %d: %s", code, errs)
				}
				if out != want {
					t.Errorf("slabs on the parts differs from slabs on %s:\n%s", dv.Reference, labelledDiff(out, want, "parts: ", "whole: "))
				}
			})
		}
	}
	t.Run("diff", func(t *testing.T) {
		paths := dv.Paths(dv.SplitSets(t)["split3"])
		code, out, errs := vmleak(t, "diff", strings.Join(paths, ","), dv.ReferencePath(), "--vmlinux", m.Vmlinux())
		if code != ExitOK || !strings.Contains(out, "no change") {
			t.Errorf("diff of the parts and the whole dump: exit %d\n%s%s", code, out, errs)
		}
	})
}

// One part alone: vmleak info describes it as partial, with the pfns the
// other parts hold, and exits 5; a command that needs those pages fails
// saying where they are, never that they were excluded.
func TestSplitPartAloneReal(t *testing.T) {
	dv, m := splitFixture(t)
	for name, parts := range dv.SplitSets(t) {
		for _, p := range parts {
			t.Run(name+"/"+p.File, func(t *testing.T) {
				var missing []string
				type rng struct{ Start, End string }
				var want []rng
				if p.StartPFN > 0 {
					missing = append(missing, fmt.Sprintf("[0x0, %#x)", p.StartPFN))
					want = append(want, rng{"0x0", fmt.Sprintf("%#x", p.StartPFN)})
				}
				if p.EndPFN < p.MaxMapnr {
					missing = append(missing, fmt.Sprintf("[%#x, %#x)", p.EndPFN, p.MaxMapnr))
					want = append(want, rng{fmt.Sprintf("%#x", p.EndPFN), fmt.Sprintf("%#x", p.MaxMapnr)})
				}
				says := fmt.Sprintf("pfns %s are in other parts", strings.Join(missing, " and "))
				if p.Part == 1 {
					says = "part 1 of a split dump: " + says
				}
				code, out, errs := vmleak(t, "info", dv.Path(p), "--vmlinux", m.Vmlinux())
				if code != ExitPartial {
					t.Errorf("info: exit %d, want %d; %s", code, ExitPartial, errs)
				}
				if !strings.Contains(out, "(PARTIAL: ") || !strings.Contains(out, says) {
					t.Errorf("info does not say %q:\n%s", says, out)
				}
				if strings.Contains(out+errs, "excluded)") {
					t.Errorf("info calls the other parts' pages excluded:\n%s%s", out, errs)
				}

				code, out, errs = vmleak(t, "info", dv.Path(p), "--vmlinux", m.Vmlinux(), "--json")
				var js struct {
					Split struct {
						Complete bool  `json:"complete"`
						Missing  []rng `json:"missing_pfns"`
						Parts    []struct {
							StartPFN string `json:"start_pfn"`
							EndPFN   string `json:"end_pfn"`
						} `json:"parts"`
					} `json:"split"`
					Warnings []string `json:"warnings"`
				}
				if err := json.Unmarshal([]byte(out), &js); err != nil || code != ExitPartial {
					t.Fatalf("info --json: exit %d, %v: %s", code, err, errs)
				}
				if js.Split.Complete || fmt.Sprint(js.Split.Missing) != fmt.Sprint(want) || len(js.Split.Parts) != 1 ||
					js.Split.Parts[0].StartPFN != fmt.Sprintf("%#x", p.StartPFN) || js.Split.Parts[0].EndPFN != fmt.Sprintf("%#x", p.EndPFN) {
					t.Errorf("info --json split: %+v, want missing %v", js.Split, want)
				}
				if !strings.Contains(strings.Join(js.Warnings, "\n"), says) {
					t.Errorf("info --json warnings %q", js.Warnings)
				}

				code, _, errs = vmleak(t, "slabs", dv.Path(p), "--vmlinux", m.Vmlinux())
				if code != ExitInput && code != ExitPartial {
					t.Errorf("slabs on one part: exit %d: %s", code, errs)
				}
				if code == ExitInput && (!strings.Contains(errs, "in another part of a split dump") || strings.Contains(errs, "(excluded)")) {
					t.Errorf("slabs on one part: %s", errs)
				}
				if !strings.Contains(errs, says) {
					t.Errorf("slabs on one part does not say %q: %s", says, errs)
				}
			})
		}
	}
}

// Parts that do not make one dump: one line naming the file and its pfn
// range, exit 3.
func TestSplitBadPartsReal(t *testing.T) {
	dv, m := splitFixture(t)
	sets := dv.SplitSets(t)
	s2, s3 := dv.Paths(sets["split2"]), dv.Paths(sets["split3"])
	r := func(set string, part int) string {
		p := sets[set][part-1]
		return fmt.Sprintf("pfns [%#x, %#x)", p.StartPFN, p.EndPFN)
	}
	for _, tc := range []struct {
		name  string
		parts []string
		file  string
		want  string
	}{
		{"wrong-order", []string{s2[1], s2[0]}, s2[1], r("split2", 2) + ": parts out of order"},
		{"wrong-order-3", []string{s3[0], s3[2], s3[1]}, s3[2], r("split3", 3) + ": parts out of order"},
		{"missing-middle", []string{s3[0], s3[2]}, s3[2], r("split3", 3) + fmt.Sprintf(": pfns [%#x, %#x) before it are in no part given (a part is missing)", sets["split3"][1].StartPFN, sets["split3"][1].EndPFN)},
		{"missing-last", []string{s3[0], s3[1]}, s3[1], r("split3", 2) + ": pfns"},
		{"duplicated", []string{s2[0], s2[0], s2[1]}, s2[0], r("split2", 1) + ": given twice"},
		{"other-split", []string{s2[0], s3[1], s3[2]}, s3[1], r("split3", 2) + ": overlaps"},
		{"not-a-part", []string{s2[0], dv.ReferencePath()}, dv.ReferencePath(), "is not part of a split dump"},
		{"elf", []string{dv.SourcePath(), s2[1]}, dv.SourcePath(), "is not part of a split dump: a elf file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := vmleak(t, "info", strings.Join(tc.parts, ","), "--vmlinux", m.Vmlinux())
			want := "vmleak: elfcore: " + tc.file + ": " + tc.want
			if code != ExitInput || out != "" || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, want) {
				t.Errorf("exit %d, stderr %q; want exit %d and one line starting %q", code, errs, ExitInput, want)
			}
		})
	}
	t.Run("empty-part", func(t *testing.T) {
		code, _, errs := vmleak(t, "info", s2[0]+",,"+s2[1])
		if code != ExitUsage || !strings.Contains(errs, "an empty part") {
			t.Errorf("exit %d: %s", code, errs)
		}
	})
}

// makedumpfile -E -d 31 (filtered ELF) has the census of the kdump file
// makedumpfile -d 31 wrote of the same crash.
func TestFilteredELFCensusReal(t *testing.T) {
	dv, m := splitFixture(t)
	census := func(path string) (string, walk.Census) {
		t.Helper()
		code, text, errs := vmleak(t, "slabs", path, "--vmlinux", m.Vmlinux())
		if code != ExitOK {
			t.Fatalf("%s: exit %d: %s", path, code, errs)
		}
		code, out, errs := vmleak(t, "slabs", path, "--vmlinux", m.Vmlinux(), "--json")
		var c walk.Census
		if err := json.Unmarshal([]byte(out), &c); err != nil || code != ExitOK {
			t.Fatalf("%s --json: exit %d, %v: %s", path, code, err, errs)
		}
		c.Dump = ""
		return text, c
	}
	wantText, want := census(dv.ReferencePath())
	elfs := dv.Kind("elf")
	if len(elfs) == 0 {
		t.Fatal("no -E ELF among the derived fixtures")
	}
	for _, f := range elfs {
		text, have := census(dv.Path(f))
		if text != wantText {
			t.Errorf("%s: slabs differs from %s:\n%s", f.File, dv.Reference, labelledDiff(text, wantText, "-E:   ", "kdump: "))
		}
		// The ELF's struct pages are all read; the kdump file's census
		// skips those of page frames it left out (PagesNotDumped): each
		// struct page is one or the other.
		if have.PagesScanned != want.PagesScanned+want.PagesNotDumped || have.PagesNotDumped != 0 || want.PagesNotDumped == 0 {
			t.Errorf("%s: %d struct pages read, %d not; %s: %d read, %d not",
				f.File, have.PagesScanned, have.PagesNotDumped, dv.Reference, want.PagesScanned, want.PagesNotDumped)
		}
		have.PagesScanned, have.PagesNotDumped = 0, 0
		w := want
		w.PagesScanned, w.PagesNotDumped = 0, 0
		hb, _ := json.Marshal(have)
		wb, _ := json.Marshal(w)
		if string(hb) != string(wb) {
			t.Errorf("%s: the census differs from %s's", f.File, dv.Reference)
		}
	}
}
