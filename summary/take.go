package summary

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/meminfo"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/walk"
)

// Options controls Take.
type Options struct {
	// SHA256 hashes the dump file. It reads every byte of it — the census
	// reads only the slab pages, so on a multi-gigabyte dump the hash costs
	// more than the rest — hence it is asked for, not done by default.
	SHA256 bool
	// Owners and Meminfo, when set, are the dump's attribution and meminfo
	// already computed by the caller (vmleak report computes them for its
	// own pages): Take uses them instead of computing them again.
	Owners  *owners.Report
	Meminfo *meminfo.Meminfo
}

// Take summarizes an open dump whose census is taken (with aliases set):
// it attributes the census, rebuilds meminfo and reads the dump's identity.
// A part that fails is a warning in the summary, not an error: a summary
// with a census and no meminfo is still worth keeping. Errors are those of
// the census's own inputs (owners' allocation tracks) and of the file.
func Take(k *kernel.Kernel, w *walk.Walker, c *walk.Census, o Options) (*Summary, error) {
	in := Input{Info: k.Summary(), Census: c, BuildID: k.BuildID()}
	files := dumpFiles(k)
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		in.Size += st.Size()
	}
	var err error
	if o.SHA256 {
		if in.SHA256, err = hashFiles(files); err != nil {
			return nil, err
		}
	}
	if in.Hostname, err = k.Hostname(); err != nil {
		in.Warnings = append(in.Warnings, err.Error())
	}
	if clk, err := k.Clock(); err == nil {
		in.Clock = &clk
	} else {
		in.Warnings = append(in.Warnings, err.Error())
	}
	if in.Owners = o.Owners; in.Owners == nil {
		if in.Owners, err = owners.Attribute(k, w, c, nil); err != nil {
			return nil, err
		}
	}
	if in.Meminfo = o.Meminfo; in.Meminfo == nil {
		if in.Meminfo, err = meminfo.Read(k); err != nil {
			in.Warnings = append(in.Warnings, err.Error())
			in.Meminfo = nil
		}
	}
	sum := New(in)
	if len(files) > 1 {
		// A split dump: its parts' names, as they were given.
		names := make([]string, len(files))
		for i, f := range files {
			names[i] = filepath.Base(f)
		}
		sum.Dump.File = strings.Join(names, ",")
	}
	return sum, nil
}

// dumpFiles are the files the dump was read from: its parts, in order, for
// a split dump read whole (whose Path joins them with commas).
func dumpFiles(k *kernel.Kernel) []string {
	if si := k.Dump().Split(); si != nil && len(si.Parts) > 1 {
		files := make([]string, len(si.Parts))
		for i, p := range si.Parts {
			files[i] = p.File
		}
		return files
	}
	return []string{k.Path()}
}

// hashFiles is the SHA-256 of the files' bytes one after the other: of the
// file itself for one.
func hashFiles(paths []string) (string, error) {
	h := sha256.New()
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("summary: hashing %s: %w", path, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
