package summary

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/vmleak/vmleak/internal/regular"
)

// Format is a summary's encoding.
type Format string

// The encodings.
const (
	JSON    Format = "json"
	Parquet Format = "parquet"
)

// MetaSchema is the Parquet key-value metadata key holding the schema
// version, so that an engine's reader (or a person with parquet-tools)
// sees it without reading a row.
const MetaSchema = "vmleak.summary.schema"

// ErrVersion is wrapped by the *Error for a summary of a schema version
// this package does not read.
var ErrVersion = errors.New("unknown schema version")

// Error is a summary file that cannot be used: not a summary, cut short,
// of another version, or with a field that is missing, mistyped or
// inconsistent with the others (edited by hand).
type Error struct {
	File  string
	Field string // "caches[3].bytes"; "" for the file as a whole
	Msg   string
	Err   error // wrapped cause, or nil
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("summary: %s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("summary: %s: field %s: %s", e.File, e.Field, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// FormatOf is the format a file name asks for, by its extension.
func FormatOf(path string) (Format, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return JSON, nil
	case ".parquet", ".parq", ".pq":
		return Parquet, nil
	}
	return "", fmt.Errorf("summary: %s: cannot tell the format from the extension (.json or .parquet)", path)
}

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case JSON, Parquet:
		return f, nil
	}
	return "", fmt.Errorf("summary: unknown format %q (json or parquet)", s)
}

// parquetMagic begins and ends every Parquet file.
var parquetMagic = []byte("PAR1")

// Sniff tells whether the first bytes of a file are a summary's, and which
// format: a JSON object or a Parquet file. Dumps begin otherwise (ELF,
// "KDUMP   ", makedumpfile's flattened header).
func Sniff(head []byte) (Format, bool) {
	if bytes.HasPrefix(head, parquetMagic) {
		return Parquet, true
	}
	if t := bytes.TrimLeft(head, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return JSON, true
	}
	return "", false
}

// IsSummary tells whether the file at path is a summary (by its content).
func IsSummary(path string) (Format, bool, error) {
	f, _, err := regular.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", false, err
	}
	ft, ok := Sniff(head[:n])
	return ft, ok, nil
}

// Encode writes s in a format.
func Encode(w io.Writer, s *Summary, f Format) error {
	c := *s
	s = &c
	s.normalize()
	switch f {
	case JSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	case Parquet:
		pw := parquet.NewGenericWriter[Summary](w,
			parquet.KeyValueMetadata(MetaSchema, strconv.Itoa(s.Schema)),
			parquet.Compression(&zstd.Codec{}),
			parquet.CreatedBy("vmleak", "summary", strconv.Itoa(Schema)))
		if _, err := pw.Write([]Summary{*s}); err != nil {
			return fmt.Errorf("summary: parquet: %w", err)
		}
		if err := pw.Close(); err != nil {
			return fmt.Errorf("summary: parquet: %w", err)
		}
		return nil
	}
	return fmt.Errorf("summary: unknown format %q", f)
}

// WriteFile writes s to path in a format, through a temporary file renamed
// into place: a reader never sees half a summary.
func WriteFile(path string, s *Summary, f Format) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := Encode(tmp, s, f); err != nil {
		tmp.Close()
		return err
	}
	// CreateTemp makes it private; a summary is no secret (the dump may be).
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// maxSummaryBytes bounds a summary file read whole: a fleet summary is a
// few hundred KB.
const maxSummaryBytes = 1 << 30

// ReadFile reads and validates a summary, in either format (told by its
// content, not its name). Every failure is an *Error naming the file, and
// the field where there is one.
func ReadFile(path string) (*Summary, error) {
	b, err := regular.ReadFile(path, maxSummaryBytes)
	if err != nil {
		return nil, err
	}
	return Decode(path, b)
}

// Decode reads and validates a summary from its bytes; name is for messages.
func Decode(name string, b []byte) (s *Summary, err error) {
	defer func() {
		// A malformed Parquet file can panic inside the library: it is bad
		// input, not a bug of the caller.
		if r := recover(); r != nil {
			s, err = nil, &Error{File: name, Msg: fmt.Sprintf("not a readable Parquet file (%v)", r)}
		}
	}()
	f, ok := Sniff(b)
	if !ok {
		return nil, &Error{File: name, Msg: "not a summary (neither a JSON object nor a Parquet file)"}
	}
	if f == Parquet {
		s, err = decodeParquet(name, b)
	} else {
		s, err = decodeJSON(name, b)
	}
	if err != nil {
		return nil, err
	}
	if err := validate(s); err != nil {
		err.File = name
		return nil, err
	}
	return s, nil
}

func decodeParquet(name string, b []byte) (*Summary, error) {
	if len(b) < 12 || !bytes.HasSuffix(b, parquetMagic) {
		return nil, &Error{File: name, Msg: "truncated Parquet file (no footer)"}
	}
	pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, &Error{File: name, Msg: fmt.Sprintf("not a readable Parquet file: %v", err), Err: err}
	}
	v, ok := pf.Lookup(MetaSchema)
	if !ok {
		return nil, &Error{File: name, Field: MetaSchema, Msg: "missing: a Parquet file, but not a vmleak summary"}
	}
	if n, err := strconv.Atoi(v); err != nil || n != Schema {
		return nil, &Error{File: name, Field: MetaSchema, Msg: fmt.Sprintf("%q: this vmleak reads version %d", v, Schema), Err: ErrVersion}
	}
	if field, msg := sameSchema(parquet.SchemaOf(Summary{}), pf.Schema()); msg != "" {
		return nil, &Error{File: name, Field: field, Msg: msg}
	}
	if n := pf.NumRows(); n != 1 {
		return nil, &Error{File: name, Msg: fmt.Sprintf("%d rows, a summary has one", n)}
	}
	r := parquet.NewGenericReader[Summary](pf)
	defer r.Close()
	rows := make([]Summary, 1)
	n, err := r.Read(rows)
	if n != 1 {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, &Error{File: name, Msg: fmt.Sprintf("reading the row: %v", err), Err: err}
	}
	s := &rows[0]
	s.normalize()
	return s, nil
}

// sameSchema compares a file's Parquet schema with the one this package
// writes, and names the first column that differs.
func sameSchema(want, have parquet.Node) (field, msg string) {
	var walk func(path string, w, h parquet.Node) (string, string)
	walk = func(path string, w, h parquet.Node) (string, string) {
		if w.Leaf() != h.Leaf() || w.Optional() != h.Optional() || w.Repeated() != h.Repeated() {
			return path, "has another shape than this version's schema"
		}
		if w.Leaf() {
			if w.Type().String() != h.Type().String() {
				return path, fmt.Sprintf("is %s, want %s", h.Type(), w.Type())
			}
			return "", ""
		}
		hf := map[string]parquet.Node{}
		for _, f := range h.Fields() {
			hf[f.Name()] = f
		}
		for _, f := range w.Fields() {
			p := join(path, f.Name())
			g, ok := hf[f.Name()]
			if !ok {
				return p, "missing"
			}
			delete(hf, f.Name())
			if p, m := walk(p, f, g); m != "" {
				return p, m
			}
		}
		for n := range hf {
			return join(path, n), "not in this version's schema"
		}
		return "", ""
	}
	return walk("", want, have)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func decodeJSON(name string, b []byte) (*Summary, error) {
	if field, off, err := scanJSON(b); err != nil {
		msg := fmt.Sprintf("invalid JSON at byte %d: %v", off, err)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			msg = fmt.Sprintf("truncated at byte %d", off)
		}
		return nil, &Error{File: name, Field: field, Msg: msg, Err: err}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, &Error{File: name, Msg: "not a JSON object", Err: err}
	}
	raw, ok := top["schema"]
	if !ok {
		return nil, &Error{File: name, Field: "schema", Msg: "missing: not a vmleak summary"}
	}
	var v int
	if err := json.Unmarshal(raw, &v); err != nil || v != Schema {
		return nil, &Error{File: name, Field: "schema", Msg: fmt.Sprintf("%s: this vmleak reads version %d", raw, Schema), Err: ErrVersion}
	}
	var tree any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return nil, &Error{File: name, Msg: err.Error(), Err: err}
	}
	if field, msg := checkShape("", tree, typeOfSummary); msg != "" {
		return nil, &Error{File: name, Field: field, Msg: msg}
	}
	s := new(Summary)
	if err := json.Unmarshal(b, s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, &Error{File: name, Field: te.Field, Msg: te.Error(), Err: err}
		}
		return nil, &Error{File: name, Msg: err.Error(), Err: err}
	}
	s.normalize()
	return s, nil
}

// normalize gives absent lists their empty value, as New does, and times
// their UTC form, as both encodings store them.
func (s *Summary) normalize() {
	for _, t := range []**time.Time{&s.Dump.CrashTime, &s.Dump.BootTime} {
		if *t != nil {
			u := utc(**t)
			*t = &u
		}
	}
	s.Caches, s.Owners, s.Sites, s.Meminfo, s.Warnings = nonNil(s.Caches), nonNil(s.Owners), nonNil(s.Sites), nonNil(s.Meminfo), nonNil(s.Warnings)
	for i := range s.Caches {
		s.Caches[i].Aliases, s.Caches[i].Owners = nonNil(s.Caches[i].Aliases), nonNil(s.Caches[i].Owners)
	}
}
