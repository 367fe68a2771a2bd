package kernel_test

import (
	"testing"
	"time"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
)

// The timekeeper dates every dump: on the genuine kdump its wall clock is
// VMCOREINFO's CRASHTIME (the second the kernel crashed); every dump of one
// boot has the same boot time, later dumps a later clock; the host name is
// the same in every dump of a fixture.
func TestClockAndHostname(t *testing.T) {
	for _, m := range fixture.All(t) {
		boots := map[time.Time]bool{}
		hosts := map[string]bool{}
		var last time.Time
		seen := map[int]bool{}
		for _, d := range m.Dumps {
			if seen[d.Index] {
				continue // one file per capture: the formats hold the same memory
			}
			seen[d.Index] = true
			t.Run(m.Name+"/"+d.File, func(t *testing.T) {
				k := testkernel.Open(t, m, d)
				c, err := k.Clock()
				if err != nil {
					t.Fatal(err)
				}
				if !c.Boot.Before(c.Now) || c.Now.Sub(c.Boot) > time.Hour {
					t.Errorf("booted %v, clock %v: not a guest that ran for minutes", c.Boot, c.Now)
				}
				if info := k.Info(); info != nil && info.CrashTime > 0 {
					if d := c.Now.Unix() - info.CrashTime; d < -1 || d > 1 {
						t.Errorf("timekeeper %v, CRASHTIME %v", c.Now, time.Unix(info.CrashTime, 0).UTC())
					}
				}
				if !last.IsZero() && !c.Now.After(last) {
					t.Errorf("dump %d at %v, not after the previous one's %v", d.Index, c.Now, last)
				}
				last = c.Now
				boots[c.Boot] = true
				h, err := k.Hostname()
				if err != nil || h == "" {
					t.Errorf("hostname %q, %v", h, err)
				}
				hosts[h] = true
				t.Logf("%s: host %q, booted %v, clock %v", c.Source, h, c.Boot, c.Now)
			})
		}
		if len(boots) != 1 || len(hosts) != 1 {
			t.Errorf("%s: one boot, yet boot times %v, hosts %v", m.Name, boots, hosts)
		}
	}
}
