package elfcore

import "fmt"

// Target is the word size and byte order of the machine that was dumped.
type Target struct {
	Bits      int // 32 or 64
	BigEndian bool
}

func (t Target) String() string {
	e := "little-endian"
	if t.BigEndian {
		e = "big-endian"
	}
	return fmt.Sprintf("%d-bit %s", t.Bits, e)
}

// Target reports the dumped machine's word size and byte order.
func (d *Dump) Target() Target { return d.target }
