package meminfo_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/meminfo"
)

func TestProbe(t *testing.T) {
	for _, m := range fixture.All(t) {
		for _, d := range m.Dumps {
			t.Run(m.Name+"/"+d.File, func(t *testing.T) {
				k, err := kernel.Open(m.DumpPath(d), kernel.Options{Vmlinux: m.Vmlinux()})
				if err != nil {
					t.Fatal(err)
				}
				defer k.Close()
				mi, err := meminfo.Read(k)
				if err != nil {
					t.Fatal(err)
				}
				pre, _ := oracle.ParseMeminfo(m.Oracle(t, d.Oracle+".meminfo"))
				post := map[string]int64{}
				pn := "post" + strings.TrimPrefix(d.Oracle, "pre")
				if m.HasOracle(pn + ".meminfo") {
					post, _ = oracle.ParseMeminfo(m.Oracle(t, pn+".meminfo"))
				}
				var sb strings.Builder
				for _, l := range mi.Lines {
					mark := ""
					if l.Value != pre[l.Name] {
						mark = "*"
					}
					fmt.Fprintf(&sb, "%-18s %12d %12d %12d %s\n", l.Name, l.Value, pre[l.Name], post[l.Name], mark)
				}
				t.Logf("warnings %v\n%s", mi.Warnings, sb.String())
			})
		}
	}
}
