package summary

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/meminfo"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/stackdepot"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// Options controls Take.
type Options struct {
	// SHA256 hashes the dump file. It reads every byte of it — the census
	// reads only the slab pages, so on a multi-gigabyte dump the hash costs
	// more than the rest — hence it is asked for, not done by default.
	SHA256 bool
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
	if in.Owners, err = Owners(k, w, c, nil); err != nil {
		return nil, err
	}
	if in.Meminfo, err = meminfo.Read(k); err != nil {
		in.Warnings = append(in.Warnings, err.Error())
		in.Meminfo = nil
	}
	return New(in), nil
}

// Owners attributes a census with everything the kernel offers: its
// modules, its stack depot where it has one, and sym (a new symbolizer
// when nil).
func Owners(k *kernel.Kernel, w *walk.Walker, c *walk.Census, sym *symbolize.Symbolizer) (*owners.Report, error) {
	if sym == nil {
		sym = symbolize.New(w)
		defer sym.Close()
	}
	mods, merr := k.Modules()
	d, err := stackdepot.New(k)
	if err != nil {
		if !errors.Is(err, kernel.ErrAbsent) {
			k.Warnf("stack depot: %v", err)
		}
		d = nil
	}
	rep, err := owners.Build(w, c, mods, sym, d)
	if err != nil {
		return nil, err
	}
	if merr != nil {
		rep.Warnings = append(rep.Warnings, merr.Error())
		rep.Partial = true
	}
	return rep, nil
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
