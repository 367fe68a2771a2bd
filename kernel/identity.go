package kernel

import (
	"errors"
	"fmt"
	"time"
)

// Hostname is init_uts_ns.name.nodename: the host name of the initial UTS
// namespace, what `uname -n` printed outside containers. A guest that never
// set one has the kernel's default, "(none)".
func (k *Kernel) Hostname() (string, error) {
	if k.types == nil {
		return "", errors.New("kernel: hostname: no types (no vmlinux)")
	}
	s, err := k.Var("init_uts_ns", "struct uts_namespace").Field("name.nodename").String()
	if err != nil {
		return "", fmt.Errorf("kernel: hostname: %w", err)
	}
	return Printable(s), nil
}

// Clock is the kernel's wall clock as its timekeeper last updated it (at
// most a tick before the dump).
type Clock struct {
	Now  time.Time // CLOCK_REALTIME: timekeeper.xtime_sec
	Boot time.Time // when the kernel booted, as /proc/stat's btime says it
	// Source names the variable read.
	Source string
}

// Clock reads the timekeeper. The wall time is what a dump without
// VMCOREINFO's CRASHTIME (QEMU's, a live kernel's) can be dated by; the
// boot time tells dumps of one boot from those of another. Boot time is
// -wall_to_monotonic - offs_boot, as getboottime64() computes it.
//
// Where the timekeeper is: 6.1 and 6.12 keep a static struct timekeeper
// shadow_timekeeper that mirrors tk_core's (tk_core itself has an
// anonymous type, so it cannot be named); later kernels moved both into a
// named struct tk_data, first as tk_core, then (with auxiliary clocks, as
// 7.x has) as timekeeper_data[], element 0 the system clock.
func (k *Kernel) Clock() (Clock, error) {
	if k.types == nil {
		return Clock{}, errors.New("kernel: clock: no types (no vmlinux)")
	}
	var tk Value
	var src string
	switch {
	case k.hasSymbol("timekeeper_data") && k.HasType("struct tk_data"):
		tk, src = k.Var("timekeeper_data", "struct tk_data").Field("timekeeper"), "timekeeper_data[0].timekeeper"
	case k.hasSymbol("tk_core") && k.HasType("struct tk_data"):
		tk, src = k.Var("tk_core", "struct tk_data").Field("timekeeper"), "tk_core.timekeeper"
	case k.hasSymbol("shadow_timekeeper"):
		tk, src = k.Var("shadow_timekeeper", "struct timekeeper"), "shadow_timekeeper"
	default:
		return Clock{}, fmt.Errorf("kernel: clock: no timekeeper symbol: %w", ErrAbsent)
	}
	now, err := tk.Field("xtime_sec").Int()
	if err != nil {
		return Clock{}, fmt.Errorf("kernel: clock: %w", err)
	}
	w2m, err := tk.Field("wall_to_monotonic.tv_sec").Int()
	if err != nil {
		return Clock{}, fmt.Errorf("kernel: clock: %w", err)
	}
	var offsBoot int64 // ktime_t ns spent suspended; absent before v3.15
	if tk.HasField("offs_boot") {
		if offsBoot, err = tk.Field("offs_boot").Int(); err != nil {
			return Clock{}, fmt.Errorf("kernel: clock: %w", err)
		}
	}
	boot := -w2m - offsBoot/int64(time.Second)
	return Clock{Now: time.Unix(now, 0).UTC(), Boot: time.Unix(boot, 0).UTC(), Source: src}, nil
}

func (k *Kernel) hasSymbol(name string) bool {
	_, err := k.types.Symbol(name)
	return err == nil
}

// BuildID is the kernel's build-id in hex: VMCOREINFO's BUILD-ID, else the
// vmlinux's (which Open matched to the dump by linux_banner); "" when
// neither is known.
func (k *Kernel) BuildID() string {
	if k.info != nil && k.info.BuildID != "" {
		return k.info.BuildID
	}
	if k.types != nil {
		return fmt.Sprintf("%x", k.types.BuildID())
	}
	return ""
}
