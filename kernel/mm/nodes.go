package mm

import (
	"errors"
	"fmt"
)

// Node is one online NUMA node.
type Node struct {
	ID       int
	Pgdat    uint64 // struct pglist_data
	StartPFN uint64 // node_start_pfn
	Spanned  uint64 // node_spanned_pages
}

// Nodes returns the online nodes in id order (for_each_online_pgdat), each
// with its pglist_data and span. A !CONFIG_NUMA kernel has one node,
// contig_page_data.
func (m *MM) Nodes() ([]Node, error) {
	m.nodesOnce.Do(func() { m.nodes, m.nodesErr = m.readNodes() })
	return m.nodes, m.nodesErr
}

func (m *MM) readNodes() ([]Node, error) {
	k := m.k
	var pgdats []Node
	if _, err := k.Symbol("node_data"); err != nil {
		a, err := k.Symbol("contig_page_data") // !CONFIG_NUMA
		if err != nil {
			return nil, fmt.Errorf("mm: neither node_data nor contig_page_data: %w", err)
		}
		pgdats = []Node{{ID: 0, Pgdat: a}}
	} else {
		online, err := m.NodeMask("N_ONLINE")
		if err != nil {
			return nil, err
		}
		// struct pglist_data *node_data[MAX_NUMNODES]
		base, _ := k.Symbol("node_data")
		sym, _ := k.Types().Symbol("node_data")
		for _, nid := range online {
			if sym.Size != 0 && uint64(nid+1)*8 > sym.Size {
				return nil, fmt.Errorf("mm: online node %d beyond node_data[%d]", nid, sym.Size/8)
			}
			p, err := k.ReadPtr(base + uint64(nid)*8)
			if err != nil {
				return nil, fmt.Errorf("mm: node_data[%d]: %w", nid, err)
			}
			if p == 0 {
				return nil, fmt.Errorf("mm: node %d online but node_data[%d] is NULL", nid, nid)
			}
			pgdats = append(pgdats, Node{ID: nid, Pgdat: p})
		}
		if len(pgdats) == 0 {
			return nil, errors.New("mm: no online node in node_states[N_ONLINE]")
		}
	}
	for i := range pgdats {
		pg := k.Object(pgdats[i].Pgdat, "struct pglist_data").Load()
		var err error
		if pgdats[i].StartPFN, err = pg.Field("node_start_pfn").Uint(); err != nil {
			return nil, fmt.Errorf("mm: node %d: %w", pgdats[i].ID, err)
		}
		if pgdats[i].Spanned, err = pg.Field("node_spanned_pages").Uint(); err != nil {
			return nil, fmt.Errorf("mm: node %d: %w", pgdats[i].ID, err)
		}
	}
	return pgdats, nil
}

// NodeOf is the node whose span holds a page frame; ok is false when none
// does.
func (m *MM) NodeOf(pfn uint64) (id int, ok bool) {
	nodes, err := m.Nodes()
	if err != nil {
		return 0, false
	}
	for _, n := range nodes {
		if pfn >= n.StartPFN && pfn-n.StartPFN < n.Spanned {
			return n.ID, true
		}
	}
	return 0, false
}

// NodeMask lists the nodes set in node_states[state] ("N_ONLINE",
// "N_NORMAL_MEMORY", ...).
func (m *MM) NodeMask(state string) ([]int, error) {
	k := m.k
	types := k.Types()
	st, err := types.Enumerator(state)
	if err != nil {
		return nil, fmt.Errorf("mm: %s: %w", state, err)
	}
	nr, err := types.Enumerator("NR_NODE_STATES")
	if err != nil {
		return nil, fmt.Errorf("mm: %w", err)
	}
	if st < 0 || st >= nr {
		return nil, fmt.Errorf("mm: %s = %d outside node_states[%d]", state, st, nr)
	}
	maskSize, err := k.SizeOf("nodemask_t")
	if err != nil {
		return nil, fmt.Errorf("mm: %w", err)
	}
	va, err := k.Symbol("node_states")
	if err != nil {
		return nil, fmt.Errorf("mm: %w", err)
	}
	return m.Bitmap(va+uint64(st)*uint64(maskSize), uint64(maskSize), maxNodes)
}

// CPUMask lists the CPUs set in a struct cpumask variable
// ("__cpu_online_mask", "__cpu_possible_mask", "__cpu_dying_mask").
func (m *MM) CPUMask(sym string) ([]int, error) {
	va, err := m.k.Symbol(sym)
	if err != nil {
		return nil, fmt.Errorf("mm: %w", err)
	}
	size, err := m.k.SizeOf("struct cpumask")
	if err != nil {
		return nil, fmt.Errorf("mm: %w", err)
	}
	cpus, err := m.Bitmap(va, uint64(size), maxCPUs)
	if err != nil {
		return nil, fmt.Errorf("mm: %s: %w", sym, err)
	}
	return cpus, nil
}

// Bitmap lists the set bits below limit of a kernel bitmap (unsigned longs,
// little-endian) of size bytes at va.
func (m *MM) Bitmap(va, size uint64, limit int) ([]int, error) {
	if size == 0 || size > 1<<16 {
		return nil, fmt.Errorf("mm: bitmap of %d bytes at %#x", size, va)
	}
	b := make([]byte, size)
	if err := m.k.ReadVirt(b, va); err != nil {
		return nil, err
	}
	var out []int
	for i := 0; i < limit && i/8 < len(b); i++ {
		if b[i/8]&(1<<(i%8)) != 0 {
			out = append(out, i)
		}
	}
	return out, nil
}
