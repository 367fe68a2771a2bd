package report

import (
	"fmt"
	"math/bits"
	"sort"
)

// rect is a rectangle in the treemap's coordinates.
type rect struct{ X, Y, W, H float64 }

// squarify lays out values (all > 0, largest first) in r by the squarified
// treemap algorithm (Bruls, Huizing and van Wijk, 2000): each rectangle's
// area is its share of r's, and rows are filled along the shorter side of
// what is left while that keeps the worst aspect ratio of the row falling.
func squarify(values []float64, r rect) []rect {
	out := make([]rect, 0, len(values))
	var sum float64
	for _, v := range values {
		sum += v
	}
	if sum <= 0 || r.W <= 0 || r.H <= 0 {
		for range values {
			out = append(out, rect{r.X, r.Y, 0, 0})
		}
		return out
	}
	scale := r.W * r.H / sum
	areas := make([]float64, len(values))
	for i, v := range values {
		areas[i] = v * scale
	}
	for i := 0; i < len(areas); {
		side := min(r.W, r.H)
		j := i + 1
		for j < len(areas) && worst(areas[i:j+1], side) <= worst(areas[i:j], side) {
			j++
		}
		var rowSum float64
		for _, a := range areas[i:j] {
			rowSum += a
		}
		last := j == len(areas)
		if r.W >= r.H {
			// A column at the left, as tall as what is left.
			cw := rowSum / r.H
			if last {
				cw = r.W
			}
			y := r.Y
			for k := i; k < j; k++ {
				h := areas[k] / cw
				if k == j-1 {
					h = r.Y + r.H - y
				}
				out = append(out, rect{r.X, y, cw, h})
				y += h
			}
			r.X, r.W = r.X+cw, max(r.W-cw, 0)
		} else {
			// A row at the top, as wide as what is left.
			rh := rowSum / r.W
			if last {
				rh = r.H
			}
			x := r.X
			for k := i; k < j; k++ {
				w := areas[k] / rh
				if k == j-1 {
					w = r.X + r.W - x
				}
				out = append(out, rect{x, r.Y, w, rh})
				x += w
			}
			r.Y, r.H = r.Y+rh, max(r.H-rh, 0)
		}
		i = j
	}
	return out
}

// worst is the largest aspect ratio of a row of areas laid along side.
func worst(row []float64, side float64) float64 {
	var s, hi, lo float64
	lo = row[0]
	for _, a := range row {
		s += a
		hi, lo = max(hi, a), min(lo, a)
	}
	if s == 0 || lo == 0 || side == 0 {
		return 1e300
	}
	s2, w2 := s*s, side*side
	return max(w2*hi/s2, s2/(w2*lo))
}

// share is what one owner holds of one cache, by objects.
type share struct {
	Owner    string
	Cache    string
	Objects  int64
	Evidence string
}

// cacheMem is one cache's slab memory.
type cacheMem struct {
	Name    string
	Bytes   uint64
	Objects int64 // allocated
}

// NoObjects is the treemap's owner of the slab memory of caches with no
// allocated object: slabs all free, that nobody can be said to hold.
const NoObjects = "(no allocated objects)"

// item is one (owner, cache) cell: its part of the cache's slab memory.
type item struct {
	Owner, Cache, Evidence string
	Bytes                  uint64
	Objects                int64
}

// apportion splits each cache's slab memory among its owners in proportion
// to the objects each holds (integers: the last owner gets the rest, so a
// cache's cells add up to its memory exactly).
func apportion(caches []cacheMem, shares []share) []item {
	byCache := map[string][]share{}
	for _, s := range shares {
		if s.Objects <= 0 {
			continue
		}
		list := byCache[s.Cache]
		merged := false
		for i := range list {
			if list[i].Owner == s.Owner {
				list[i].Objects += s.Objects
				if list[i].Evidence != s.Evidence && s.Evidence != "" {
					if list[i].Evidence == "" {
						list[i].Evidence = s.Evidence
					} else {
						list[i].Evidence += ", " + s.Evidence
					}
				}
				merged = true
				break
			}
		}
		if !merged {
			list = append(list, s)
		}
		byCache[s.Cache] = list
	}
	var out []item
	for _, c := range caches {
		if c.Bytes == 0 {
			continue
		}
		list := byCache[c.Name]
		var total uint64
		for _, s := range list {
			total += uint64(s.Objects)
		}
		if total == 0 {
			out = append(out, item{Owner: NoObjects, Cache: c.Name, Bytes: c.Bytes})
			continue
		}
		sort.SliceStable(list, func(i, j int) bool { return list[i].Objects > list[j].Objects })
		left := c.Bytes
		for i, s := range list {
			b := left
			if i < len(list)-1 {
				hi, lo := bits.Mul64(c.Bytes, uint64(s.Objects))
				b, _ = bits.Div64(hi, lo, total)
				b = min(b, left)
			}
			left -= b
			if b > 0 {
				out = append(out, item{Owner: s.Owner, Cache: c.Name, Evidence: s.Evidence, Bytes: b, Objects: s.Objects})
			}
		}
	}
	return out
}

// Treemap geometry: the SVG's size in CSS pixels.
const (
	treemapW = 1000
	treemapH = 520
)

type tmCell struct {
	Owner, Cache, Evidence string
	Bytes                  uint64
	Objects                int64
	X, Y, W, H             string
	Fill                   string
	Title                  string
	Label, Sub             string // "" when the cell is too small
	LX, LY, SY             string
}

type tmOwner struct {
	Owner      string
	Bytes      uint64
	X, Y, W, H string
	Fill       string
	Title      string
	Share      string
	Cells      []tmCell
}

type treemap struct {
	W, H   int
	Total  uint64
	Owners []tmOwner
}

// buildTreemap lays out owners, then each owner's caches inside it.
func buildTreemap(items []item) *treemap {
	t := &treemap{W: treemapW, H: treemapH}
	type group struct {
		owner string
		bytes uint64
		items []item
	}
	idx := map[string]int{}
	var groups []group
	for _, it := range items {
		i, ok := idx[it.Owner]
		if !ok {
			i = len(groups)
			idx[it.Owner] = i
			groups = append(groups, group{owner: it.Owner})
		}
		groups[i].bytes += it.Bytes
		groups[i].items = append(groups[i].items, it)
		t.Total += it.Bytes
	}
	sort.SliceStable(groups, func(i, j int) bool {
		if groups[i].bytes != groups[j].bytes {
			return groups[i].bytes > groups[j].bytes
		}
		return groups[i].owner < groups[j].owner
	})
	vals := make([]float64, len(groups))
	for i, g := range groups {
		vals[i] = float64(g.bytes)
	}
	orects := squarify(vals, rect{0, 0, treemapW, treemapH})
	for gi, g := range groups {
		or := orects[gi]
		hue := ownerHue(g.owner, gi)
		o := tmOwner{Owner: g.owner, Bytes: g.bytes, X: f(or.X), Y: f(or.Y), W: f(or.W), H: f(or.H),
			Fill:  hsl(hue, 0),
			Share: pct(g.bytes, t.Total),
			Title: fmt.Sprintf("%s: %s of slab memory (%s)", g.owner, humanBytes(g.bytes), pct(g.bytes, t.Total))}
		sort.SliceStable(g.items, func(i, j int) bool { return g.items[i].Bytes > g.items[j].Bytes })
		cv := make([]float64, len(g.items))
		for i, it := range g.items {
			cv[i] = float64(it.Bytes)
		}
		for i, cr := range squarify(cv, or) {
			it := g.items[i]
			c := tmCell{Owner: it.Owner, Cache: it.Cache, Evidence: it.Evidence, Bytes: it.Bytes, Objects: it.Objects,
				X: f(cr.X), Y: f(cr.Y), W: f(cr.W), H: f(cr.H), Fill: hsl(hue, i)}
			ev := it.Evidence
			if ev == "" {
				ev = "none"
			}
			c.Title = fmt.Sprintf("%s\nowner %s\n%s of slab memory (%s of all), %d objects\nevidence: %s",
				it.Cache, it.Owner, humanBytes(it.Bytes), pct(it.Bytes, t.Total), it.Objects, ev)
			if it.Owner == NoObjects {
				c.Title = fmt.Sprintf("%s\n%s of slab memory in slabs with no allocated object", it.Cache, humanBytes(it.Bytes))
			}
			// Labels where they fit (about 6.2px a character at 11px).
			if cr.W > float64(len(it.Cache))*6.2+6 && cr.H > 15 {
				c.Label, c.LX, c.LY = it.Cache, f(cr.X+3), f(cr.Y+12)
				if cr.H > 28 {
					c.Sub, c.SY = humanBytes(it.Bytes), f(cr.Y+25)
				}
			}
			o.Cells = append(o.Cells, c)
		}
		t.Owners = append(t.Owners, o)
	}
	return t
}

// ownerHue gives the kernel and the unknown fixed colours, modules the
// palette in order.
func ownerHue(owner string, i int) int {
	switch owner {
	case "kernel":
		return 210
	case "unattributed":
		return -1
	case NoObjects:
		return -2
	}
	palette := []int{28, 130, 280, 350, 50, 170, 310, 90, 250, 10}
	return palette[i%len(palette)]
}

// hsl is an owner's colour, a little lighter or darker per cell.
func hsl(hue, i int) string {
	l := 52 + (i%4)*6
	switch hue {
	case -1:
		return fmt.Sprintf("hsl(0,0%%,%d%%)", 55+(i%4)*5)
	case -2:
		return fmt.Sprintf("hsl(0,0%%,%d%%)", 82+(i%2)*4)
	}
	return fmt.Sprintf("hsl(%d,55%%,%d%%)", hue, l)
}

// f formats a coordinate: three decimals are well below a pixel.
func f(v float64) string { return fmt.Sprintf("%.3f", v) }
