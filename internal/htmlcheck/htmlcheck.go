// Package htmlcheck checks that a page vmleak wrote is well formed: every
// element it opens is closed, in order, and no text holds a raw '<' that
// would start markup. It is a check of vmleak's own output (which quotes
// every attribute and escapes every text), not a general HTML parser: the
// browser test parses the pages for real.
package htmlcheck

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	tagRe = regexp.MustCompile(`<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:="[^"<]*")?)*)\s*(/?)>`)
	// void elements of HTML, which have no end tag.
	void   = map[string]bool{"meta": true, "input": true, "br": true, "hr": true, "img": true, "link": true, "wbr": true}
	attrRe = regexp.MustCompile(`\s([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:="[^"<]*")?`)
	// rawText elements hold text up to their end tag.
	rawText = map[string]bool{"script": true, "style": true}
)

// Counts are the elements of a page by name, and its attributes by "@"
// and name ("@onerror").
type Counts map[string]int

// Check parses page and returns how many of each element and attribute it
// holds, or the first structural error with its offset.
func Check(page string) (Counts, error) {
	if !strings.HasPrefix(page, "<!DOCTYPE html>") {
		return nil, fmt.Errorf("htmlcheck: no <!DOCTYPE html> at the start")
	}
	counts := Counts{}
	var stack []string
	pos := len("<!DOCTYPE html>")
	for pos < len(page) {
		i := strings.IndexByte(page[pos:], '<')
		if i < 0 {
			break
		}
		pos += i
		m := tagRe.FindStringSubmatchIndex(page[pos:])
		if m == nil || m[0] != 0 {
			return nil, fmt.Errorf("htmlcheck: offset %d: '<' that starts no tag: %q", pos, snippet(page, pos))
		}
		closing := page[pos+m[2]:pos+m[3]] == "/"
		name := strings.ToLower(page[pos+m[4] : pos+m[5]])
		self := page[pos+m[8]:pos+m[9]] == "/"
		end := pos + m[1]
		for _, a := range attrRe.FindAllStringSubmatch(page[pos+m[6]:pos+m[7]], -1) {
			counts["@"+strings.ToLower(a[1])]++
		}
		switch {
		case closing:
			if len(stack) == 0 || stack[len(stack)-1] != name {
				return nil, fmt.Errorf("htmlcheck: offset %d: </%s> closes %s", pos, name, top(stack))
			}
			stack = stack[:len(stack)-1]
		case void[name] || self:
			counts[name]++
		default:
			counts[name]++
			stack = append(stack, name)
			if rawText[name] {
				j := strings.Index(strings.ToLower(page[end:]), "</"+name)
				if j < 0 {
					return nil, fmt.Errorf("htmlcheck: offset %d: <%s> never closed", pos, name)
				}
				end += j
			}
		}
		pos = end
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("htmlcheck: unclosed elements at the end: %s", strings.Join(stack, " > "))
	}
	return counts, nil
}

func top(stack []string) string {
	if len(stack) == 0 {
		return "nothing"
	}
	return "<" + stack[len(stack)-1] + ">"
}

func snippet(s string, at int) string { return s[at:min(len(s), at+60)] }
