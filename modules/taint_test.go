package modules

import "testing"

// print_tainted() and module_flags_taint() over synthetic tables: the
// 6.1/6.12 one (19 flags, per-module flags marked) and the 7.2 one (20
// flags, no module member: every set bit is shown per module).
func TestTaintStrings(t *testing.T) {
	with61 := taintTable{flags: builtinTaints[:19]}
	var all72 []taintFlag
	for _, f := range builtinTaints {
		f.module = true
		all72 = append(all72, f)
	}
	with72 := taintTable{flags: all72}
	for _, tc := range []struct {
		name          string
		table         taintTable
		mask, module  uint64
		want, letters string
	}{
		{"not tainted", with61, 0, 0, "Not tainted", ""},
		{"out-of-tree unsigned", with61, 1<<12 | 1<<13, 1<<12 | 1<<13, "Tainted: G           OE     ", "OE"},
		{"proprietary", with61, 1, 1, "Tainted: P                  ", "P"},
		{"warning and die", with61, 1<<7 | 1<<9, 0, "Tainted: G      D W         ", ""},
		// A bit the table does not mark per module is not shown per
		// module (6.1), but is where the member is gone (7.2).
		{"6.1 module with W", with61, 1 << 9, 1<<9 | 1<<12, "Tainted: G        W         ", "O"},
		{"7.2 module with W", with72, 1 << 9, 1<<9 | 1<<12, "Tainted: G        W          ", "WO"},
		{"7.2 fwctl", with72, 1 << 19, 1 << 19, "Tainted: G                  J", "J"},
		{"bits past the table", with61, 1 << 40, 1 << 40, "Tainted: G                  ", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if have := tc.table.String(tc.mask); have != tc.want {
				t.Errorf("String(%#x) = %q, want %q", tc.mask, have, tc.want)
			}
			if have := tc.table.moduleLetters(tc.module); have != tc.letters {
				t.Errorf("moduleLetters(%#x) = %q, want %q", tc.module, have, tc.letters)
			}
		})
	}
}
