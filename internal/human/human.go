// Package human formats numbers and bytes the way vmleak's text outputs
// and its HTML report print them, so the two read alike.
package human

import (
	"fmt"
	"strings"
)

// Bytes is a size in vmleak's short form: 1.5G, 12.0M, 3.2K, 512B.
func Bytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}

// HexLine is one line of a hex dump: the bytes in hex, space-separated, and
// the same bytes as text with every unprintable byte shown as '.'.
func HexLine(b []byte) (hex, text string) {
	var hx, txt strings.Builder
	for i, c := range b {
		if i > 0 {
			hx.WriteByte(' ')
		}
		fmt.Fprintf(&hx, "%02x", c)
		if c >= 0x20 && c < 0x7f {
			txt.WriteByte(c)
		} else {
			txt.WriteByte('.')
		}
	}
	return hx.String(), txt.String()
}
