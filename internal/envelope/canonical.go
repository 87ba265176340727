package envelope

import (
	"errors"
	"fmt"
)

// MaxDepth is how deeply arrays and objects may nest in a body. JavaScript engines give up somewhere
// past this too, and a bound keeps a hostile event from costing unbounded memory on the parse stack.
const MaxDepth = 10000

var (
	// ErrInvalidJSON is wrapped by every error Canonical returns for text that JSON.parse would reject.
	ErrInvalidJSON = errors.New("invalid JSON")
	// ErrTooDeep is wrapped by the error Canonical returns for text nested deeper than MaxDepth.
	ErrTooDeep = errors.New("JSON nested too deeply")
)

// Canonical re-encodes any JSON text so that the result is byte-identical to JavaScript's
// JSON.stringify(JSON.parse(text)): compact, object keys in the order a JavaScript object keeps them
// (array-index keys ascending, then the rest in first-insertion order, a duplicate key keeping its
// first position and its last value), strings escaped exactly as JSON.stringify escapes them and
// numbers printed by ECMAScript's Number::toString.
//
// Limitation: numbers are IEEE doubles, as in JavaScript, so integers beyond 2^53 lose precision
// (9007199254740993 becomes 9007199254740992) and huge exponents become null. That is deliberate: the
// receiver's JSON.parse loses exactly the same precision, and we must sign what the receiver will
// recompute, not what the source sent.
//
// Invalid UTF-8 inside strings is replaced by U+FFFD the way a WHATWG decoder (Node's Buffer) does,
// because that is what the receiver's body parser hands to JSON.parse.
func Canonical(raw []byte) ([]byte, error) {
	return appendCanonical(make([]byte, 0, len(raw)), raw)
}

// appendCanonical appends the canonical form of raw to dst, so that Build writes data straight into
// the body instead of copying it from a second buffer.
func appendCanonical(dst, raw []byte) ([]byte, error) {
	// Sizing the arenas from the input up front replaces a dozen growth copies with one allocation
	// each; a typical body has a value every ten or so bytes.
	p := parser{
		in:    raw,
		root:  none,
		nodes: make([]node, 0, len(raw)/10+1),
		lits:  make([]byte, 0, len(raw)+8),
	}
	root, err := p.parse()
	if err != nil {
		return nil, err
	}
	return p.appendNode(dst, root), nil
}

type kind uint8

const (
	kindScalar kind = iota // null, true, false, number or string: its canonical bytes are in lit
	kindArray
	kindObject
)

// span locates canonical bytes in parser.lits. Storing offsets instead of slices keeps the node arena
// free of pointers, so the garbage collector never scans it.
type span struct{ start, end int32 }

// node is one value in the parsed tree. Children form a singly linked list through next so that an
// object can be reordered by relinking, without moving any bytes.
type node struct {
	kind        kind
	lit         span // scalar: its canonical text
	key         span // member of an object: the canonical text of its key, without quotes
	first, last int32
	next        int32
}

const none int32 = -1

// parser turns JSON text into a tree of nodes whose scalars and keys are already in canonical form,
// so that writing the result out is plain concatenation. It is iterative: nesting depth costs heap,
// not goroutine stack.
type parser struct {
	in    []byte
	pos   int
	root  int32
	nodes []node
	lits  []byte
	stack []int32
}

func (p *parser) syntaxError(offset int, format string, args ...any) error {
	return fmt.Errorf("%w at byte offset %d: %s", ErrInvalidJSON, offset, fmt.Sprintf(format, args...))
}

func (p *parser) unexpected(what string) error {
	if p.pos >= len(p.in) {
		return p.syntaxError(p.pos, "unexpected end of input, want %s", what)
	}
	if c := p.in[p.pos]; c > ' ' && c < 0x7f {
		return p.syntaxError(p.pos, "unexpected %q, want %s", c, what)
	}
	return p.syntaxError(p.pos, "unexpected byte %#02x, want %s", p.in[p.pos], what)
}

// skipSpace skips the four characters JSON.parse accepts as whitespace; anything else (a byte order
// mark, a non-breaking space) is a syntax error in JavaScript too.
func (p *parser) skipSpace() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) newNode(k kind) int32 {
	p.nodes = append(p.nodes, node{kind: k, first: none, last: none, next: none})
	return int32(len(p.nodes) - 1)
}

// attach adds child to the innermost open container or, outside any container, makes it the root.
func (p *parser) attach(child int32, key span) {
	if len(p.stack) == 0 {
		p.root = child
		return
	}
	parent := &p.nodes[p.stack[len(p.stack)-1]]
	p.nodes[child].key = key
	if parent.last == none {
		parent.first = child
	} else {
		p.nodes[parent.last].next = child
	}
	parent.last = child
}

// parseKey reads `"key" :` and returns the key's canonical text.
func (p *parser) parseKey() (span, error) {
	p.skipSpace()
	if p.pos >= len(p.in) || p.in[p.pos] != '"' {
		return span{}, p.unexpected("a string key")
	}
	key, err := p.parseString()
	if err != nil {
		return span{}, err
	}
	// The key is stored without its quotes so that array-index detection and ordering see the bare text.
	key.start++
	key.end--
	p.skipSpace()
	if p.pos >= len(p.in) || p.in[p.pos] != ':' {
		return span{}, p.unexpected("':'")
	}
	p.pos++
	return key, nil
}

func (p *parser) parse() (int32, error) {
	var key span
	for {
		// A value is expected here.
		p.skipSpace()
		if p.pos >= len(p.in) {
			return none, p.unexpected("a value")
		}
		switch c := p.in[p.pos]; {
		case c == '{' || c == '[':
			if len(p.stack) >= MaxDepth {
				return none, fmt.Errorf("%w: more than %d levels at byte offset %d", ErrTooDeep, MaxDepth, p.pos)
			}
			k := kindArray
			if c == '{' {
				k = kindObject
			}
			n := p.newNode(k)
			p.attach(n, key)
			p.stack = append(p.stack, n)
			p.pos++
			p.skipSpace()
			if p.pos < len(p.in) && (p.in[p.pos] == '}' && k == kindObject || p.in[p.pos] == ']' && k == kindArray) {
				p.pos++
				p.stack = p.stack[:len(p.stack)-1]
				break
			}
			if k == kindObject {
				var err error
				if key, err = p.parseKey(); err != nil {
					return none, err
				}
			}
			continue
		default:
			n := p.newNode(kindScalar)
			lit, err := p.parseScalar()
			if err != nil {
				return none, err
			}
			p.nodes[n].lit = lit
			p.attach(n, key)
		}

		// A value just ended: close containers until one needs another value.
	closing:
		for {
			p.skipSpace()
			if len(p.stack) == 0 {
				if p.pos < len(p.in) {
					return none, p.unexpected("end of input")
				}
				return p.root, nil
			}
			top := p.stack[len(p.stack)-1]
			if p.pos >= len(p.in) {
				return none, p.unexpected("',' or a closing bracket")
			}
			switch c := p.in[p.pos]; {
			case c == ',':
				p.pos++
				if p.nodes[top].kind == kindObject {
					var err error
					if key, err = p.parseKey(); err != nil {
						return none, err
					}
				}
				break closing
			case c == '}' && p.nodes[top].kind == kindObject:
				p.pos++
				p.orderMembers(top)
				p.stack = p.stack[:len(p.stack)-1]
			case c == ']' && p.nodes[top].kind == kindArray:
				p.pos++
				p.stack = p.stack[:len(p.stack)-1]
			default:
				if p.nodes[top].kind == kindObject {
					return none, p.unexpected("',' or '}'")
				}
				return none, p.unexpected("',' or ']'")
			}
		}
	}
}

func (p *parser) parseScalar() (span, error) {
	start := int32(len(p.lits))
	switch c := p.in[p.pos]; {
	case c == '"':
		return p.parseString()
	case c == '-' || c >= '0' && c <= '9':
		if err := p.parseNumber(); err != nil {
			return span{}, err
		}
	default:
		matched := false
		for _, word := range [...]string{"null", "true", "false"} {
			if len(p.in)-p.pos >= len(word) && string(p.in[p.pos:p.pos+len(word)]) == word {
				p.lits = append(p.lits, word...)
				p.pos += len(word)
				matched = true
				break
			}
		}
		if !matched {
			return span{}, p.unexpected("a value")
		}
	}
	return span{start, int32(len(p.lits))}, nil
}

// appendNode writes the tree under root. It walks with an explicit stack for the same reason the parser
// does: a deeply nested body must not exhaust the goroutine stack.
func (p *parser) appendNode(dst []byte, root int32) []byte {
	type frame struct {
		container int32
		child     int32
	}
	write := func(dst []byte, n int32) ([]byte, bool) {
		nd := &p.nodes[n]
		switch nd.kind {
		case kindArray:
			return append(dst, '['), true
		case kindObject:
			return append(dst, '{'), true
		default:
			return append(dst, p.lits[nd.lit.start:nd.lit.end]...), false
		}
	}
	dst, open := write(dst, root)
	if !open {
		return dst
	}
	stack := []frame{{root, p.nodes[root].first}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		parent := &p.nodes[top.container]
		if top.child == none {
			if parent.kind == kindObject {
				dst = append(dst, '}')
			} else {
				dst = append(dst, ']')
			}
			stack = stack[:len(stack)-1]
			continue
		}
		child := top.child
		if child != parent.first {
			dst = append(dst, ',')
		}
		top.child = p.nodes[child].next
		if parent.kind == kindObject {
			k := p.nodes[child].key
			dst = append(dst, '"')
			dst = append(dst, p.lits[k.start:k.end]...)
			dst = append(dst, '"', ':')
		}
		if dst, open = write(dst, child); open {
			stack = append(stack, frame{child, p.nodes[child].first})
		}
	}
	return dst
}
