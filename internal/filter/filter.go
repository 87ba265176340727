// Package filter owns content filters: a subscription's spec.filter.expression, a CEL expression over an event's
// type, tenant, collection, data and time, compiled and type-checked once and evaluated per event within a cost
// limit; and, over the same variables and within the same limit, ordering keys (spec.ordering.key). It takes plain
// Go values and imports no Kubernetes package: the subscription controller compiles an expression to report why
// it is invalid, and ingest compiles it again to evaluate it on every matching event.
package filter

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// MaxExpressionLength bounds an expression, in bytes; the CRD enforces the same bound on spec.filter.expression.
const MaxExpressionLength = 4096

// CostLimit bounds the cost of evaluating an expression on one event, in CEL cost units (roughly one per
// operation, one per element a comprehension visits): evaluation stops once it is spent. It is per subscription
// and per event, so with many subscriptions a filter that scans a large list in every event cannot slow ingest
// down for everyone; 10,000 units lets a comprehension visit about a thousand elements. Because it bounds every
// evaluation to well under a millisecond, evaluation is not also interrupted by a context, which would cost a
// context per evaluation.
const CostLimit = 10000

// Reasons an expression does not decide an event; each is a value of the reason label of
// hookpost_filter_errors_total. In every case the event is not delivered to that subscription.
const (
	// ReasonInvalid: the expression does not compile (the subscription is Ready=False with reason InvalidFilter).
	ReasonInvalid = "invalid"
	// ReasonEvaluation: evaluation failed, e.g. data lacks a field the expression reads without has().
	ReasonEvaluation = "evaluation"
	// ReasonCostExceeded: evaluation spent CostLimit.
	ReasonCostExceeded = "costExceeded"
	// ReasonNotBool: the expression's value (of type dyn, read from data) was not a bool.
	ReasonNotBool = "notBool"
	// ReasonNotKey: an ordering key's value (of type dyn, read from data) was neither a string nor a number.
	ReasonNotKey = "notKey"
)

// Error is why an expression did not decide an event.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	// Err is CEL's error. It may quote values of the event's data: log Reason, not Err.
	Err error
}

func (e *Error) Error() string { return e.Reason + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Program is a compiled expression, safe for concurrent use.
type Program struct {
	expression string
	program    cel.Program
}

// Expression returns the source text the program was compiled from.
func (p *Program) Expression() string { return p.expression }

// env declares the variables an expression may use. data is dyn: an event's payload is any JSON object, so
// field access is checked when evaluated, not when compiled.
var env = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("type", cel.StringType),
		cel.Variable("tenant", cel.StringType),
		cel.Variable("collection", cel.StringType),
		cel.Variable("data", cel.DynType),
		cel.Variable("time", cel.TimestampType),
		// JSON numbers are doubles: data.amount * 2.0 > 300 compares a double with an int, which the checker
		// refuses without this (at runtime CEL compares them anyway).
		cel.CrossTypeNumericComparisons(true),
	)
})

// Compile parses and type-checks expression and prepares it for evaluation. The error is the compiler's message
// (with the position of the problem), or says why the expression cannot be a filter: its type is not bool, or it
// is longer than MaxExpressionLength, or it costs more than CostLimit whatever the event.
func Compile(expression string) (*Program, error) {
	return compile(expression, func(out *cel.Type) error {
		// dyn passes: a value read from data is typed only when evaluated, and a non-bool then is ReasonNotBool.
		if !out.IsExactType(cel.BoolType) && !out.IsExactType(cel.DynType) {
			return fmt.Errorf("the expression evaluates to %s; a filter must evaluate to a bool, such as data.amount > 100", out)
		}
		return nil
	})
}

// CompileKey compiles an ordering key (spec.ordering.key) like Compile does a filter, with the same variables and
// cost limit; the expression must evaluate to a string or a number (Program.Key).
func CompileKey(expression string) (*Program, error) {
	return compile(expression, func(out *cel.Type) error {
		for _, t := range []*cel.Type{cel.StringType, cel.IntType, cel.UintType, cel.DoubleType, cel.DynType} {
			if out.IsExactType(t) {
				return nil
			}
		}
		return fmt.Errorf("the expression evaluates to %s; an ordering key must evaluate to a string or a number, such as string(data.order_id) or tenant", out)
	})
}

// compile is Compile and CompileKey; checkType refuses an output type the expression's use cannot take.
func compile(expression string, checkType func(*cel.Type) error) (*Program, error) {
	if len(expression) > MaxExpressionLength {
		return nil, fmt.Errorf("the expression is %d bytes long; keep it at most %d", len(expression), MaxExpressionLength)
	}
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("declare filter variables: %w", err)
	}
	ast, iss := e.Compile(expression)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if err := checkType(ast.OutputType()); err != nil {
		return nil, err
	}
	// The size of data is only known per event, so the estimate's maximum is unbounded as soon as the expression
	// iterates over data: those costs are bounded when evaluated (cel.CostLimit below). What the estimate does
	// know is the least the expression costs on any event; beyond the limit it could never decide one.
	est, err := e.EstimateCost(ast, unknownSizes{})
	if err != nil {
		return nil, fmt.Errorf("estimate the expression's cost: %w", err)
	}
	if est.Min > CostLimit {
		return nil, fmt.Errorf("the expression costs at least %d units on any event, more than the limit of %d; make it simpler", est.Min, CostLimit)
	}
	// Folds constants and compiles constant regular expressions once, not per evaluation.
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if est.Max > CostLimit {
		// Only an expression whose cost depends on the sizes in data can exceed the limit; tracking the cost
		// is about a third of a cheap expression's evaluation, so the others, bounded by the estimate, skip it.
		opts = append(opts, cel.CostLimit(CostLimit))
	}
	prg, err := e.Program(ast, opts...)
	if err != nil {
		return nil, err
	}
	return &Program{expression: expression, program: prg}, nil
}

// unknownSizes leaves every size and call cost to CEL's defaults, which treat the sizes of data's lists, maps
// and strings as unknown.
type unknownSizes struct{}

func (unknownSizes) EstimateSize(checker.AstNode) *checker.SizeEstimate { return nil }

func (unknownSizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// Match reports whether the program accepts ev. The error, an *Error, says why the expression could not decide
// (the caller does not deliver the event).
func (p *Program) Match(ev *Event) (bool, error) {
	out, err := p.eval(ev)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, &Error{Reason: ReasonNotBool, Err: fmt.Errorf("the expression evaluated to a %s, not a bool", out.Type().TypeName())}
	}
	return b, nil
}

// MaxKeyLength is the longest ordering key kept as it is: a longer one is kept as "sha256:" and its hex digest, so
// it fits the delivery's spec.ordering.key and still tells keys apart.
const MaxKeyLength = 253

// Key returns the ordering key a program compiled with CompileKey gives ev: a string as it is, a number in
// decimal (a JSON number read from data is a double: 42.0 is "42"). The error, an *Error, says why there is none
// (ReasonEvaluation, ReasonCostExceeded, or ReasonNotKey for a value of another type).
func (p *Program) Key(ev *Event) (string, error) {
	out, err := p.eval(ev)
	if err != nil {
		return "", err
	}
	var key string
	switch v := out.Value().(type) {
	case string:
		key = v
	case int64:
		key = strconv.FormatInt(v, 10)
	case uint64:
		key = strconv.FormatUint(v, 10)
	case float64:
		key = strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return "", &Error{Reason: ReasonNotKey, Err: fmt.Errorf("the expression evaluated to a %s, not a string or a number", out.Type().TypeName())}
	}
	if len(key) > MaxKeyLength {
		sum := sha256.Sum256([]byte(key))
		key = "sha256:" + hex.EncodeToString(sum[:])
	}
	return key, nil
}

// eval evaluates the program on ev within the cost limit.
func (p *Program) eval(ev *Event) (ref.Val, error) {
	act, err := ev.activation()
	if err != nil {
		return nil, &Error{Reason: ReasonEvaluation, Err: err}
	}
	out, _, err := p.program.Eval(act)
	if err != nil {
		var cancelled interpreter.EvalCancelledError
		if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
			return nil, &Error{Reason: ReasonCostExceeded, Err: err}
		}
		return nil, &Error{Reason: ReasonEvaluation, Err: err}
	}
	return out, nil
}

// Event is what an expression sees of one event. Its data is parsed the first time an expression needs it, once
// for all the subscriptions that evaluate it; an Event is not safe for concurrent use.
type Event struct {
	Type, Tenant, Collection string
	// Time is when the event occurred.
	Time time.Time
	// Data is the event's payload, a JSON object; empty reads as {}.
	Data []byte

	act interpreter.Activation
	err error
}

func (ev *Event) activation() (interpreter.Activation, error) {
	if ev.act != nil || ev.err != nil {
		return ev.act, ev.err
	}
	// JSON numbers become doubles, as in CEL's own JSON mapping: data.amount > 100 compares a double with an int,
	// which CEL allows; arithmetic mixing them (data.amount + 1) does not, so write 1.0.
	var data any = map[string]any{}
	if len(ev.Data) > 0 {
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			ev.err = fmt.Errorf("parse the event's data: %w", err)
			return nil, ev.err
		}
	}
	// Converted to CEL values here, once, rather than by every program that reads them.
	adapt := types.DefaultTypeAdapter.NativeToValue
	ev.act, ev.err = interpreter.NewActivation(map[string]any{
		"type": types.String(ev.Type), "tenant": types.String(ev.Tenant), "collection": types.String(ev.Collection),
		"data": adapt(data), "time": types.Timestamp{Time: ev.Time},
	})
	return ev.act, ev.err
}
