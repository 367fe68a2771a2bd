package summary

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// scanJSON reads b token by token and, on a syntax error or a cut, says
// where: the path of the field being read ("caches[12].allocated") and the
// byte offset. A truncated summary thus names the field it ends in.
func scanJSON(b []byte) (field string, off int64, err error) {
	type frame struct {
		array bool
		index int
		key   string
		inKey bool // an object's next token is a key
	}
	var stack []frame
	path := func() string {
		var sb strings.Builder
		for _, f := range stack {
			if f.array {
				fmt.Fprintf(&sb, "[%d]", f.index)
			} else if f.key != "" && !f.inKey {
				if sb.Len() > 0 {
					sb.WriteByte('.')
				}
				sb.WriteString(f.key)
			}
		}
		return sb.String()
	}
	// after a value: an array moves to its next index, an object to its next key.
	next := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].array {
				stack[n-1].index++
			} else {
				stack[n-1].inKey = true
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if len(stack) > 0 {
				return path(), dec.InputOffset(), io.ErrUnexpectedEOF
			}
			return "", 0, nil
		}
		if err != nil {
			if strings.Contains(err.Error(), "unexpected EOF") {
				err = io.ErrUnexpectedEOF
			}
			return path(), dec.InputOffset(), err
		}
		top := len(stack) - 1
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{inKey: true})
			case '[':
				stack = append(stack, frame{array: true})
			default:
				stack = stack[:top]
				next()
				if len(stack) == 0 {
					if dec.More() {
						return "", dec.InputOffset(), errors.New("data after the summary")
					}
				}
			}
		case string:
			if top >= 0 && !stack[top].array && stack[top].inKey {
				stack[top].key, stack[top].inKey = t, false
				continue
			}
			next()
		default:
			next()
		}
	}
}

var typeOfSummary = reflect.TypeOf(Summary{})

var typeOfTime = reflect.TypeOf(time.Time{})

// checkShape compares a decoded JSON value with the Go type it must fill:
// every field present (a summary writes them all), none unknown, each of
// the right kind, integers whole. encoding/json alone would leave a
// missing field zero and take it for a real zero.
func checkShape(path string, v any, t reflect.Type) (string, string) {
	if t.Kind() == reflect.Pointer {
		if v == nil {
			return "", ""
		}
		t = t.Elem()
	}
	if t == typeOfTime {
		s, ok := v.(string)
		if !ok {
			return path, fmt.Sprintf("is %s, want a time (RFC 3339 string) or null", kindOf(v))
		}
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return path, fmt.Sprintf("%q is not an RFC 3339 time", s)
		}
		return "", ""
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return path, fmt.Sprintf("is %s, want an object", kindOf(v))
		}
		known := map[string]bool{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			known[name] = true
			fv, ok := m[name]
			p := join(path, name)
			if !ok {
				return p, "missing"
			}
			if p, msg := checkShape(p, fv, f.Type); msg != "" {
				return p, msg
			}
		}
		for k := range m {
			if !known[k] {
				return join(path, k), "not in this version's schema"
			}
		}
	case reflect.Slice:
		a, ok := v.([]any)
		if !ok {
			return path, fmt.Sprintf("is %s, want a list", kindOf(v))
		}
		for i, e := range a {
			if p, msg := checkShape(fmt.Sprintf("%s[%d]", path, i), e, t.Elem()); msg != "" {
				return p, msg
			}
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			return path, fmt.Sprintf("is %s, want a string", kindOf(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return path, fmt.Sprintf("is %s, want true or false", kindOf(v))
		}
	case reflect.Int, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			return path, fmt.Sprintf("is %s, want an integer", kindOf(v))
		}
		if _, err := n.Int64(); err != nil {
			return path, fmt.Sprintf("%s is not a 64-bit integer", n)
		}
	}
	return "", ""
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}
