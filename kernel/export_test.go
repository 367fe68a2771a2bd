package kernel

// ReadBTF is readBTF, for the tests of package kernel_test.
func (k *Kernel) ReadBTF(start, stop uint64) ([]byte, error) { return k.readBTF(start, stop) }

// KallsymsFound are the kallsyms tables found in the kernel image.
func (k *Kernel) KallsymsFound() map[string]uint64 { return k.kallsymsFound }
