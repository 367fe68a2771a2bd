//go:build tools

package deps
import (
 _ "github.com/spf13/cobra"
 _ "github.com/cilium/ebpf/btf"
 _ "github.com/klauspost/compress/zstd"
 _ "github.com/anchore/go-lzo"
 _ "github.com/golang/snappy"
 _ "golang.org/x/arch/x86/x86asm"
 _ "github.com/google/go-cmp/cmp"
)
