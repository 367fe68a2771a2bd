package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmleak/vmleak/forensics"
)

// TestCheckGolden renders the synthetic kernel's report (forensics'
// golden JSON, one hook of each kind) as text, at two severity floors.
func TestCheckGolden(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "forensics", "testdata", "synthetic-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep forensics.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	rep.Memory = []forensics.ModuleMemory{{Module: "rootkit", Objects: 400, Bytes: 256000,
		Caches: []forensics.CacheMemory{{Cache: "kmalloc-512", Objects: 300, Bytes: 153600, Evidence: "track"}, {Cache: "rootkit_obj", Objects: 100, Bytes: 102400, Evidence: "track"}}}}
	for _, tc := range []struct {
		name string
		min  forensics.Severity
	}{{"check.txt", forensics.Low}, {"check-info.txt", forensics.Info}} {
		var out bytes.Buffer
		writeCheck(&out, &rep, tc.min)
		golden(t, tc.name, out.Bytes())
	}
}
