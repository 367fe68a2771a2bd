package summary

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

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
	st, err := os.Stat(k.Path())
	if err != nil {
		return nil, err
	}
	in.Size = st.Size()
	if o.SHA256 {
		if in.SHA256, err = hashFile(k.Path()); err != nil {
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
	return New(in), nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("summary: hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
