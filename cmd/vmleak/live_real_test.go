package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/walk"
)

// The live lab (testdata/vmcores/live.sh): this very vmleak, built static,
// ran inside a 6.1 guest on /proc/kcore with no debuginfo there, between
// two /proc/slabinfo captures. `make test` runs the guest before the tests
// whenever the binary changed.

type liveRun struct {
	dir      string
	manifest struct {
		BinarySHA256 string `json:"binary_sha256"`
		Release      string `json:"release"`
		Guest        struct {
			MemMiB int    `json:"mem_mib"`
			Test   string `json:"test"`
		} `json:"guest"`
	}
}

// liveBinary builds vmleak exactly as the Makefile builds it for the live
// guest, so that the run's binary can be checked to be this code.
func liveBinary(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "vmleak")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func loadLive(t *testing.T) *liveRun {
	t.Helper()
	if testing.Short() {
		t.Skip("the live lab's results are checked by the full run (-short: the race run)")
	}
	r := &liveRun{dir: filepath.Join(fixture.Dir(), "live", "bookworm")}
	b, err := os.ReadFile(filepath.Join(r.dir, "manifest.json"))
	if err != nil {
		fixture.Missing(t, "live/bookworm", "live BINARY (make live)")
	}
	if err := json.Unmarshal(b, &r.manifest); err != nil {
		t.Fatal(err)
	}
	if sum := liveBinary(t); sum != r.manifest.BinarySHA256 {
		fixture.Missing(t, "live/bookworm for this code (the guest ran binary "+r.manifest.BinarySHA256[:12]+", this tree builds "+sum[:12]+")", "live BINARY (make live)")
	}
	return r
}

func (r *liveRun) section(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "oracle", name))
	if err != nil {
		t.Fatalf("live guest section %s: %v", name, err)
	}
	return strings.ReplaceAll(string(b), "\r", "")
}

// status is a command's exit code and seconds in the guest.
func (r *liveRun) status(t *testing.T, name string) (code int, secs float64) {
	t.Helper()
	s := r.section(t, name+".status")
	m := regexp.MustCompile(`exit (\d+)\nseconds ([0-9.]+)`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%s.status: %q", name, s)
	}
	code, _ = strconv.Atoi(m[1])
	secs, _ = strconv.ParseFloat(m[2], 64)
	return code, secs
}

func (r *liveRun) testModule(t *testing.T) map[string]int64 {
	t.Helper()
	kv := map[string]int64{}
	for _, l := range strings.Split(strings.TrimSpace(r.section(t, "test-module")), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("test-module: %q", l)
			}
			kv[f[0]] = n
		}
	}
	if kv["allocated"] == 0 {
		t.Fatalf("test-module: %v", kv)
	}
	return kv
}

type liveCache struct {
	name                    string
	allocated, total, slabs int64
	moved                   bool
}

// checkBracketed holds a live census to the slabinfo captures around it:
// a cache whose line did not change is exact (TOTAL and SLABS equal
// num_objs and num_slabs, ALLOCATED <= active_objs, as in a dump); one that
// changed lies between the captures, and the census must have marked it
// moved or be within them; the test module's cache (nothing allocates from
// it after load) is exact and holds what the module allocated.
func checkBracketed(t *testing.T, r *liveRun, pre, post string, caches []liveCache) {
	t.Helper()
	a, err := oracle.ParseSlabinfo(r.section(t, pre))
	if err != nil {
		t.Fatal(err)
	}
	b, err := oracle.ParseSlabinfo(r.section(t, post))
	if err != nil {
		t.Fatal(err)
	}
	mod := r.testModule(t)
	quiet, sawModule := 0, false
	for _, c := range caches {
		x, okA := a[c.name]
		y, okB := b[c.name]
		if !okA || !okB {
			continue // created or destroyed during the run
		}
		if c.name == "vmleak_test_obj" {
			sawModule = true
			if c.allocated != mod["allocated"] || c.total != x.NumObjs || c.slabs != x.NumSlabs || c.moved {
				t.Errorf("vmleak_test_obj: census %d/%d/%d moved=%v, module allocated %d, slabinfo %d/%d",
					c.allocated, c.total, c.slabs, c.moved, mod["allocated"], x.NumObjs, x.NumSlabs)
			}
		}
		if x == y {
			quiet++
			if c.total != x.NumObjs || c.slabs != x.NumSlabs || c.allocated > x.ActiveObjs {
				t.Errorf("quiet %s: census %d/%d/%d (allocated/total/slabs), slabinfo %d/%d/%d (active/num/slabs)",
					c.name, c.allocated, c.total, c.slabs, x.ActiveObjs, x.NumObjs, x.NumSlabs)
			}
			continue
		}
		if !c.moved && (!liveBetween(c.total, x.NumObjs, y.NumObjs) || !liveBetween(c.slabs, x.NumSlabs, y.NumSlabs)) {
			t.Errorf("%s changed during the scan but is not marked moved: census %d/%d/%d, before %d/%d/%d, after %d/%d/%d", c.name,
				c.allocated, c.total, c.slabs, x.ActiveObjs, x.NumObjs, x.NumSlabs, y.ActiveObjs, y.NumObjs, y.NumSlabs)
		}
	}
	if !sawModule {
		t.Error("vmleak_test_obj not in the census")
	}
	if quiet < len(caches)/2 {
		t.Errorf("only %d of %d caches were quiet around the live census", quiet, len(caches))
	}
}

func TestLiveSlabs(t *testing.T) {
	r := loadLive(t)
	if code, _ := r.status(t, "slabs"); code != 0 {
		t.Fatalf("vmleak slabs /proc/kcore: exit %d: %s", code, r.section(t, "slabs.stderr"))
	}
	rows, err := oracle.ParseKmemS(r.section(t, "slabs"))
	if err != nil {
		t.Fatal(err)
	}
	moved := map[string]bool{}
	if m := regexp.MustCompile(`live kernel: \d+ of \d+ caches changed while they were read \(([^)]*)\)`).FindStringSubmatch(r.section(t, "slabs.stderr")); m != nil {
		for _, n := range strings.Split(m[1], ", ") {
			moved[n] = true
		}
	}
	var caches []liveCache
	for _, row := range rows {
		caches = append(caches, liveCache{row.Name, row.Allocated, row.Total, row.Slabs, moved[row.Name]})
	}
	checkBracketed(t, r, "pre.slabinfo", "post.slabinfo", caches)
}

func TestLiveSlabsJSON(t *testing.T) {
	r := loadLive(t)
	if code, _ := r.status(t, "slabs.json"); code != 0 {
		t.Fatalf("vmleak slabs --json /proc/kcore: exit %d: %s", code, r.section(t, "slabs.json.stderr"))
	}
	var c walk.Census
	if err := json.Unmarshal([]byte(r.section(t, "slabs.json")), &c); err != nil {
		t.Fatal(err)
	}
	if !c.Live {
		t.Error("census of /proc/kcore not marked live")
	}
	var caches []liveCache
	for _, cs := range c.Caches {
		if cs.Disagree {
			t.Errorf("%s: live census says disagree, not moved: %s", cs.Name, cs.Why)
		}
		if cs.Moved && cs.Why == "" {
			t.Errorf("%s: moved without a reason", cs.Name)
		}
		caches = append(caches, liveCache{cs.Name, cs.Allocated, cs.Total, cs.Slabs, cs.Moved})
	}
	checkBracketed(t, r, "pre-json.slabinfo", "post-json.slabinfo", caches)
}

// The guest has no debuginfo: info must say types came from the running
// kernel's BTF and symbols from /proc/kallsyms, and every command that
// makes sense live succeeds.
func TestLiveCommands(t *testing.T) {
	r := loadLive(t)
	if d := r.section(t, "debuginfo"); !strings.Contains(d, "No such file") || strings.Contains(d, "vmlinux-") {
		t.Errorf("the live guest has debuginfo: %q", d)
	}
	info := r.section(t, "info")
	for _, want := range []string{
		"format:        elf (LIVE:",
		"types:         BTF of the running kernel (/sys/kernel/btf/vmlinux",
		"symbols:       /proc/kallsyms (",
		"release:       " + r.manifest.Release,
		"cpus:          2",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("live info lacks %q:\n%s", want, info)
		}
	}
	for _, cmd := range []string{"info", "slabinfo", "meminfo", "modules", "objects", "owners", "dmesg"} {
		if code, secs := r.status(t, cmd); code != 0 {
			t.Errorf("live %s: exit %d after %.1f s: %s", cmd, code, secs, r.section(t, cmd+".stderr"))
		}
	}
	// check on a live kernel with no vmlinux: partial (text and tables
	// compare against the vmlinux), never a finding.
	if code, _ := r.status(t, "check"); code != 5 {
		t.Errorf("live check: exit %d, want 5 (partial: no vmlinux): %s", code, r.section(t, "check.stderr"))
	}
	if n := strings.Count(r.section(t, "objects"), "\n"); int64(n) < r.testModule(t)["allocated"] {
		t.Errorf("live objects vmleak_test_obj: %d lines, module allocated %d", n, r.testModule(t)["allocated"])
	}
	for _, l := range strings.Split(strings.TrimSpace(r.section(t, "proc.modules")), "\n") {
		name := strings.Fields(l)[0]
		if !regexp.MustCompile(`(?m)^\s*\S*\s*` + regexp.QuoteMeta(name) + `\s`).MatchString(r.section(t, "modules")) {
			t.Errorf("live modules lacks %s:\n%s", name, r.section(t, "modules"))
		}
	}
	memTotal := regexp.MustCompile(`(?m)^MemTotal:\s+\d+ kB$`)
	if a, b := memTotal.FindString(r.section(t, "meminfo")), memTotal.FindString(r.section(t, "proc.meminfo")); a == "" || a != b {
		t.Errorf("live meminfo %q, /proc/meminfo %q", a, b)
	}
}

func liveBetween(x, a, b int64) bool { return x >= min(a, b) && x <= max(a, b) }
