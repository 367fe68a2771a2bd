// Package elfnote iterates over the notes of an ELF note section or
// PT_NOTE segment held in memory.
//
// It owns the framing only: the 12-byte header (namesz, descsz, type), the
// name and the descriptor, each padded to 4 bytes as ELF64 Linux notes are
// (the kernel's own notes, kexec's crash notes and every core-file writer
// use 4-byte alignment, not the 8 that the gABI suggests for ELF64). It
// interprets no note, with one exception every caller shares: BuildID.
//
// Every size is checked against the buffer before it is used, and nothing is
// allocated from a size in the input: a note's Desc aliases the buffer and
// its Name is at most the buffer's length. A malformed note ends the
// iteration with a *FormatError after every well-formed note before it.
// Callers in elfcore (dump notes), kdwarf (vmlinux and module build-ids)
// and kernel (module build-ids read from dump memory) sit above it.
package elfnote

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"iter"
)

// NT_GNU_BUILD_ID is the type of the "GNU" note holding the build-id.
const NT_GNU_BUILD_ID = 3

const headerSize = 12 // namesz, descsz, type: three 4-byte words

// Note is one ELF note.
type Note struct {
	Off  int    // offset of the note's header in the buffer
	Name string // trailing NULs removed
	Type uint32
	Desc []byte // aliases the buffer; its capacity ends with it
}

// Empty tells whether the note is the all-zero terminator Linux writes at
// the end of its crash-note lists (final_note() in the kernel's crash code):
// no name, no descriptor, type 0.
func (n Note) Empty() bool { return n.Name == "" && n.Type == 0 && len(n.Desc) == 0 }

// FormatError reports a note that does not fit in its buffer. Off is the
// offset of its header in the buffer.
type FormatError struct {
	Off int
	Msg string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("elfnote: note at +%#x: %s", e.Off, e.Msg)
}

func align4(x uint64) uint64 { return (x + 3) &^ 3 }

// All yields the notes in b, in order, decoding the header words with bo.
//
// A final note whose descriptor lacks its padding is accepted (some writers
// do not pad the last note). Fewer than 12 bytes left over are the end of
// the list when they are zero (section padding) and a *FormatError when
// not. A name whose padding, or a descriptor, runs past the buffer is a
// *FormatError. After an error All yields nothing more.
func All(b []byte, bo binary.ByteOrder) iter.Seq2[Note, error] {
	return func(yield func(Note, error) bool) {
		size := uint64(len(b))
		for off := 0; off < len(b); {
			if rest := b[off:]; len(rest) < headerSize {
				if !allZero(rest) {
					yield(Note{}, &FormatError{Off: off, Msg: fmt.Sprintf("truncated header: %d of %d bytes", len(rest), headerSize)})
				}
				return
			}
			namesz := uint64(bo.Uint32(b[off:]))
			descsz := uint64(bo.Uint32(b[off+4:]))
			typ := bo.Uint32(b[off+8:])
			nameOff := uint64(off) + headerSize
			// Sizes are 32-bit and offsets within the buffer: no sum overflows.
			descOff := align4(nameOff + namesz)
			descEnd := descOff + descsz
			if descOff > size || descEnd > size {
				yield(Note{}, &FormatError{Off: off, Msg: fmt.Sprintf("name size %d and desc size %d run past the %d-byte buffer", namesz, descsz, size)})
				return
			}
			name := bytes.TrimRight(b[nameOff:nameOff+namesz], "\x00")
			n := Note{Off: off, Name: string(name), Type: typ, Desc: b[descOff:descEnd:descEnd]}
			if !yield(n, nil) {
				return
			}
			next := align4(descEnd)
			if next > size {
				return // the last descriptor, unpadded
			}
			off = int(next)
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// BuildID returns a copy of the descriptor of the first non-empty
// NT_GNU_BUILD_ID note named "GNU" in b, or nil if there is none before the
// end of b or the first malformed note.
func BuildID(b []byte, bo binary.ByteOrder) []byte {
	for n, err := range All(b, bo) {
		if err != nil {
			return nil
		}
		if n.Type == NT_GNU_BUILD_ID && n.Name == "GNU" && len(n.Desc) > 0 {
			return bytes.Clone(n.Desc)
		}
	}
	return nil
}
