package summary_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"
	"github.com/vmleak/vmleak/internal/fuzzseed"
	"github.com/vmleak/vmleak/internal/goldenfile"
	"github.com/vmleak/vmleak/internal/summarytest"
	"github.com/vmleak/vmleak/summary"
)

func golden(t *testing.T, name string, have []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), have)
}

func encode(t *testing.T, s *summary.Summary, f summary.Format) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := summary.Encode(&b, s, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The JSON and the Parquet schema are the documented, versioned formats:
// any change to either shows here (and must raise summary.Schema if a
// field changes meaning or goes away).
func TestGoldenSchemas(t *testing.T) {
	golden(t, "summary.json", encode(t, summarytest.Before(), summary.JSON))
	golden(t, "parquet-schema.txt", []byte(parquet.SchemaOf(summary.Summary{}).String()+"\n"))
}

// Both encodings give back exactly the summary written.
func TestRoundTrip(t *testing.T) {
	for _, s := range []*summary.Summary{summarytest.Before(), summarytest.After()} {
		for _, f := range []summary.Format{summary.JSON, summary.Parquet} {
			t.Run(s.Dump.File+"/"+string(f), func(t *testing.T) {
				b := encode(t, s, f)
				if got, ok := summary.Sniff(b); !ok || got != f {
					t.Errorf("Sniff: %q, %v", got, ok)
				}
				back, err := summary.Decode("x", b)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(s, back); d != "" {
					t.Errorf("round trip differs (-wrote +read):\n%s", d)
				}
			})
		}
	}
}

// Bad summaries: a one-line *Error naming the file and the field, never a
// panic, never a summary.
func TestBadSummaries(t *testing.T) {
	good := encode(t, summarytest.Before(), summary.JSON)
	edit := func(old, new string) []byte {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("golden JSON has no %q", old)
		}
		return bytes.Replace(good, []byte(old), []byte(new), 1)
	}
	v2 := summarytest.Before()
	v2.Schema = 2
	// Another program's Parquet file, and a summary's with a column renamed.
	var other bytes.Buffer
	if err := parquet.Write(&other, []struct{ A int64 }{{1}}); err != nil {
		t.Fatal(err)
	}
	type renamed struct {
		Schema int `parquet:"schema"`
	}
	var wrongCols bytes.Buffer
	if err := parquet.Write(&wrongCols, []renamed{{1}}, parquet.KeyValueMetadata(summary.MetaSchema, "1")); err != nil {
		t.Fatal(err)
	}
	pq := encode(t, summarytest.Before(), summary.Parquet)
	for _, tc := range []struct {
		name, field string
		b           []byte
		version     bool
	}{
		{"empty", "", nil, false},
		{"a dump", "", []byte("\x7fELF\x02\x01\x01"), false},
		{"json: schema 2", "schema", encode(t, v2, summary.JSON), true},
		{"json: no schema", "schema", edit(`"schema": 1,`, ``), false},
		{"json: truncated in a cache", "caches[1].aliases[0]", good[:bytes.Index(good, []byte(`"UNIX"`))+3], false},
		{"json: truncated at the end", "", good[:len(good)-2], false},
		{"json: data after it", "", append(append([]byte{}, good...), "{}"...), false},
		{"json: bytes edited", "caches[0].bytes", edit(`"bytes": 2109440`, `"bytes": 2109441`), false},
		{"json: allocated over total", "caches[4].allocated", edit(`"allocated": 680,`, `"allocated": 690,`), false},
		{"json: field missing", "caches[0].slabs", edit(`"slabs": 515,`, ``), false},
		{"json: unknown field", "dump.colour", edit(`"hostname"`, `"colour": "red", "hostname"`), false},
		{"json: wrong type", "dump.size", edit(`"size": 50390205`, `"size": "big"`), false},
		{"json: fraction", "dump.size", edit(`"size": 50390205`, `"size": 1.5`), false},
		{"json: bad time", "dump.crash_time", edit(`"2026-12-01T22:44:20Z"`, `"yesterday"`), false},
		{"json: owner of no cache", "owners[1].cache", edit(`"cache": "kmalloc-1k"`, `"cache": "kmalloc-2k"`), false},
		{"json: partial cache, whole not", "partial", edit(`"unreadable_slabs": 0,
      "partial": false`, `"unreadable_slabs": 3,
      "partial": true`), false},
		{"parquet: schema 2", summary.MetaSchema, encode(t, v2, summary.Parquet), true},
		{"parquet: truncated", "", pq[:len(pq)/2], false},
		{"parquet: footer cut", "", pq[:len(pq)-1], false},
		{"parquet: not a summary", summary.MetaSchema, other.Bytes(), false},
		{"parquet: other columns", "dump", wrongCols.Bytes(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := summary.Decode("/data/x.summary", tc.b)
			var se *summary.Error
			if !errors.As(err, &se) || s != nil {
				t.Fatalf("have %v, %v; want a *summary.Error", s, err)
			}
			if se.File != "/data/x.summary" || se.Field != tc.field || errors.Is(err, summary.ErrVersion) != tc.version {
				t.Errorf("file %q field %q (want %q), version error %v: %v", se.File, se.Field, tc.field, errors.Is(err, summary.ErrVersion), err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "/data/x.summary") {
				t.Errorf("not one line naming the file: %q", msg)
			}
		})
	}
}

func TestFormatOf(t *testing.T) {
	for name, want := range map[string]summary.Format{"a.json": summary.JSON, "b.parquet": summary.Parquet, "C.PARQUET": summary.Parquet, "d.txt": ""} {
		got, err := summary.FormatOf(name)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
}

// FuzzDecode: whatever the bytes, a summary or an *Error, never a panic.
func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds() {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := summary.Decode("fuzz", data)
		var se *summary.Error
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		if (s == nil) == (err == nil) {
			t.Fatalf("summary %v with error %v", s != nil, err)
		}
	})
}

// A summary with bytes overwritten at random, in either encoding: a
// summary or an *Error, quickly (a fuzz run's seeds are only two files).
func TestCorruptedSummaries(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range []summary.Format{summary.JSON, summary.Parquet} {
		orig := encode(t, summarytest.Before(), f)
		for i := range 500 {
			b := append([]byte(nil), orig...)
			for range 1 + rng.IntN(4) {
				b[rng.IntN(len(b))] = byte(rng.IntN(256))
			}
			s, err := summary.Decode("x", b)
			var se *summary.Error
			if (err != nil && !errors.As(err, &se)) || (s == nil) == (err == nil) {
				t.Fatalf("%s case %d: %v, %T %v", f, i, s != nil, err, err)
			}
		}
	}
}

// decodeSeeds are the test summary in both encodings.
func decodeSeeds() [][]any {
	var out [][]any
	for _, format := range []summary.Format{summary.JSON, summary.Parquet} {
		var b bytes.Buffer
		summary.Encode(&b, summarytest.Before(), format)
		out = append(out, []any{b.Bytes()})
	}
	return out
}

func TestWriteDecodeSeeds(t *testing.T) {
	fuzzseed.Enabled(t)
	fuzzseed.Write(t, "FuzzDecode", decodeSeeds())
}
