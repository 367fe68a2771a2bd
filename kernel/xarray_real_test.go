package kernel_test

import (
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
)

// XArray on a real IDR: init_pid_ns.idr maps each pid number to its
// struct pid (alloc_pid, kernel/pid.c), a tree of more than one level once
// pids pass 63. Every entry's numbers[0].nr is its index, and every task
// on init_task's tasks list, read independently of the IDR, is in it.
func TestRealXArrayPIDs(t *testing.T) {
	multi := 0 // dumps whose pid IDR has two levels
	for _, m := range fixture.All(t) {
		d := m.Dumps[0]
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			k := testkernel.Open(t, m, d)
			idr := k.Var("init_pid_ns", "struct pid_namespace").Field("idr")
			base := testkernel.Uint(t, idr.Field("idr_base"))
			pids := map[uint64]bool{}
			var top uint64
			for e, err := range k.XArray(idr.Field("idr_rt").Addr(), 0) {
				if err != nil {
					t.Fatal(err)
				}
				nr, err := k.Object(e.Entry, "struct pid").Field("numbers").Index(0).Field("nr").Int()
				if err != nil {
					t.Fatal(err)
				}
				if uint64(nr) != e.Index+base {
					t.Errorf("pid IDR index %d (base %d) holds struct pid %#x of pid %d", e.Index, base, e.Entry, nr)
				}
				pids[uint64(nr)] = true
				top = max(top, e.Index)
			}
			head := k.Var("init_task", "struct task_struct").Field("tasks").Addr()
			tasks := 0
			for e, err := range k.ListHead(head, 0) {
				if err != nil {
					t.Fatal(err)
				}
				pid, err := k.Object(e, "struct list_head").ContainerOf("struct task_struct", "tasks").Field("pid").Int()
				if err != nil {
					t.Fatal(err)
				}
				if !pids[uint64(pid)] {
					t.Errorf("task of pid %d is not in the pid IDR", pid)
				}
				tasks++
			}
			if tasks < 10 {
				t.Errorf("%d tasks", tasks)
			}
			if top >= 64 {
				multi++
			}
			t.Logf("%d pids in the IDR, %d tasks, highest index %d", len(pids), tasks, top)
		})
	}
	if multi == 0 {
		t.Error("no dump's pid IDR has two levels")
	}
}
