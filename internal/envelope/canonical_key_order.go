package envelope

import "slices"

// maxArrayIndex is the largest array index in ECMAScript (2^32 - 2). Keys naming an index up to it are
// enumerated first, in numeric order, by every JavaScript object, and therefore by JSON.stringify.
const maxArrayIndex = 1<<32 - 2

// arrayIndex reports whether key is the canonical decimal form of an array index ("0", "17", never "017").
func arrayIndex(key []byte) (uint32, bool) {
	if len(key) == 0 || len(key) > 10 || len(key) > 1 && key[0] == '0' {
		return 0, false
	}
	var v uint64
	for _, c := range key {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	if v > maxArrayIndex {
		return 0, false
	}
	return uint32(v), true
}

// orderMembers relinks the members of an object into the order a JavaScript object built by JSON.parse
// enumerates them: array-index keys ascending, then other keys in first-insertion order, and for a
// duplicate key the last value at the first key's position.
func (p *parser) orderMembers(obj int32) {
	key := func(n int32) []byte {
		k := p.nodes[n].key
		return p.lits[k.start:k.end]
	}

	// Most objects have neither index keys nor duplicates; detect that without allocating.
	count, needsWork := 0, false
	for n := p.nodes[obj].first; n != none; n = p.nodes[n].next {
		count++
		if _, ok := arrayIndex(key(n)); ok {
			needsWork = true
			break
		}
	}
	if !needsWork {
		if count <= 16 {
			for a := p.nodes[obj].first; a != none && !needsWork; a = p.nodes[a].next {
				for b := p.nodes[a].next; b != none; b = p.nodes[b].next {
					if string(key(a)) == string(key(b)) {
						needsWork = true
						break
					}
				}
			}
		} else {
			seen := make(map[string]struct{}, count)
			for n := p.nodes[obj].first; n != none; n = p.nodes[n].next {
				if _, dup := seen[string(key(n))]; dup {
					needsWork = true
					break
				}
				seen[string(key(n))] = struct{}{}
			}
		}
	}
	if !needsWork {
		return
	}

	type member struct {
		node  int32
		index uint32
	}
	var indexed, named []member
	position := make(map[string]int) // key -> position in indexed or named
	for n := p.nodes[obj].first; n != none; n = p.nodes[n].next {
		k := key(n)
		idx, isIndex := arrayIndex(k)
		list := &named
		if isIndex {
			list = &indexed
		}
		if at, dup := position[string(k)]; dup {
			// The later value replaces the earlier one but keeps its place, as assignment to an existing
			// property does in JavaScript.
			(*list)[at].node = n
			continue
		}
		position[string(k)] = len(*list)
		*list = append(*list, member{node: n, index: idx})
	}
	slices.SortFunc(indexed, func(a, b member) int {
		switch {
		case a.index < b.index:
			return -1
		case a.index > b.index:
			return 1
		}
		return 0
	})

	o := &p.nodes[obj]
	o.first, o.last = none, none
	for _, m := range append(indexed, named...) {
		p.nodes[m.node].next = none
		if o.last == none {
			o.first = m.node
		} else {
			p.nodes[o.last].next = m.node
		}
		o.last = m.node
	}
}
