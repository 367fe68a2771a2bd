package kernel_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/synth"
	"github.com/vmleak/vmleak/kernel"
)

// limeKernel builds a synthetic kernel and its LiME image with the kernel
// image mapped at KASLR offset shift; tamper changes the image's memory only.
func limeKernel(t *testing.T, shift uint64, tamper func(sk *synth.Kernel)) (sk *synth.Kernel, vmlinux, image string) {
	t.Helper()
	sk = synth.New(synth.Config{Version: synth.V6_1, SlubDebug: true, Hardened: true})
	dir := t.TempDir()
	fs, err := sk.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	sk.MapKernelImage(shift)
	if tamper != nil {
		tamper(sk)
	}
	image = filepath.Join(dir, "image.lime")
	if err := sk.WriteLiME(image); err != nil {
		t.Fatal(err)
	}
	return sk, fs.Vmlinux, image
}

func TestLocateMemoryScan(t *testing.T) {
	for _, shift := range []uint64{0, 0x2e00000} {
		sk, vmlinux, image := limeKernel(t, shift, nil)
		k, err := kernel.Open(image, kernel.Options{Vmlinux: vmlinux})
		if err != nil {
			t.Fatalf("shift %#x: %v", shift, err)
		}
		l := k.Layout()
		if l.LocatedBy != "memory scan" || l.KASLROffset != shift || l.Levels != 4 ||
			l.PageOffset != synth.PageOffset || l.VmallocBase != synth.VmallocBase || l.VmemmapBase != synth.VmemmapBase {
			t.Errorf("shift %#x: layout %+v", shift, l)
		}
		// The banner sits at 16 MiB (the image) plus its offset in it.
		if !strings.HasPrefix(l.Located, "banner at PA 0x1") || !strings.Contains(l.Located, "init_top_pgt at PA 0x") {
			t.Errorf("located %q", l.Located)
		}
		if k.Release() != sk.Release() {
			t.Errorf("release %q, want %q", k.Release(), sk.Release())
		}
		// A symbol read through the located kernel is the synthetic one's.
		if va, err := k.Symbol("page_offset_base"); err != nil || va != sk.Symbol("page_offset_base")+shift {
			t.Errorf("page_offset_base at %#x (%v)", va, err)
		}
		k.Close()
	}
}

func TestImageReleaseWithoutVmlinux(t *testing.T) {
	sk, _, image := limeKernel(t, 0x200000, nil)
	k, err := kernel.Open(image, kernel.Options{SkipVmlinux: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if k.Release() != sk.Release() {
		t.Errorf("release %q, want %q", k.Release(), sk.Release())
	}
}

func TestLocateMemoryScanFailures(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(sk *synth.Kernel)
		want   string
	}{
		{"no banner", func(sk *synth.Kernel) {
			sk.Poke(sk.Symbol("linux_banner")+14, []byte("9.9"))
		}, "nowhere in physical memory"},
		{"no page tables", func(sk *synth.Kernel) {
			for i := uint64(0); i < 512; i++ {
				sk.Poke64(sk.Symbol("init_top_pgt")+8*i, 0)
			}
		}, "map _text's PA"},
		{"bad direct map base", func(sk *synth.Kernel) {
			sk.Poke64(sk.Symbol("page_offset_base"), 0x1234)
		}, "page_offset_base is 0x1234"},
		{"wrong direct map", func(sk *synth.Kernel) {
			sk.Poke64(sk.Symbol("page_offset_base"), synth.PageOffset+0x40000000)
		}, "the direct map is not there"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, vmlinux, image := limeKernel(t, 0x400000, c.tamper)
			k, err := kernel.Open(image, kernel.Options{Vmlinux: vmlinux})
			if err == nil {
				k.Close()
				t.Fatal("located a broken kernel")
			}
			if !strings.Contains(err.Error(), "memory scan") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want one naming %q", err, c.want)
			}
		})
	}
}
