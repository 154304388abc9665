package program

import (
	"context"
	"fmt"
	"reflect"
	"runtime/debug"
)

var (
	contextType = reflect.TypeFor[context.Context]()
	errorType   = reflect.TypeFor[error]()
)

// callable is a function with its arguments, checked when the node is
// made and called, with handles dereferenced, when the node runs.
type callable struct {
	what     string // "function" or "constructor", for messages
	fn       reflect.Value
	takesCtx bool
	args     []argPlan
}

type argKind int

const (
	argPlain argKind = iota
	argNil
	argHandle
	argSlice // slice or array of handles
	argMap   // map with handle values
)

// argPlan says how to turn one argument into the value passed.
type argPlan struct {
	kind  argKind
	v     reflect.Value // the argument as given
	param reflect.Type  // the type passed (parameter type or variadic element)
	out   reflect.Type  // for argSlice and argMap: the dereferenced container type
}

// newCallable checks fn (a function) against args. A first parameter of
// type context.Context receives the node's context and takes no argument.
// Handles, and slices, arrays and maps of handles, are dereferenced to
// their clients, so a parameter of the client type (or a slice of it)
// accepts them.
func newCallable(what string, fn any, args []any) (*callable, error) {
	if fn == nil {
		return nil, fmt.Errorf("nil %s", what)
	}
	fv := reflect.ValueOf(fn)
	ft := fv.Type()
	if ft.Kind() != reflect.Func {
		return nil, fmt.Errorf("%s is a %v, not a function", what, ft)
	}
	if fv.IsNil() {
		return nil, fmt.Errorf("nil %s", what)
	}
	c := &callable{what: what, fn: fv}
	params := make([]reflect.Type, ft.NumIn())
	for i := range params {
		params[i] = ft.In(i)
	}
	if len(params) > 0 && params[0] == contextType {
		c.takesCtx = true
		params = params[1:]
	}
	variadic := ft.IsVariadic()
	switch {
	case variadic && len(args) < len(params)-1:
		return nil, fmt.Errorf("%s %v takes at least %d arguments, got %d", what, ft, len(params)-1, len(args))
	case !variadic && len(args) != len(params):
		return nil, fmt.Errorf("%s %v takes %d arguments, got %d", what, ft, len(params), len(args))
	}
	for i, a := range args {
		var pt reflect.Type
		if variadic && i >= len(params)-1 {
			pt = params[len(params)-1].Elem()
		} else {
			pt = params[i]
		}
		plan, err := planArg(a, pt)
		if err != nil {
			return nil, fmt.Errorf("%s %v: argument %d: %w", what, ft, i+1, err)
		}
		c.args = append(c.args, plan)
	}
	return c, nil
}

func planArg(a any, pt reflect.Type) (argPlan, error) {
	if a == nil {
		switch pt.Kind() {
		case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice:
			return argPlan{kind: argNil, param: pt}, nil
		}
		return argPlan{}, fmt.Errorf("nil for parameter of type %v", pt)
	}
	v := reflect.ValueOf(a)
	at := v.Type()
	plan := argPlan{kind: argPlain, v: v, param: pt}
	got, desc := at, at.String()
	switch {
	case at.Implements(handleValueType):
		plan.kind = argHandle
		got = v.Interface().(handleValue).handleClientType()
		desc = fmt.Sprintf("Handle[%v]", got)
	case (at.Kind() == reflect.Slice || at.Kind() == reflect.Array) && at.Elem().Implements(handleValueType):
		plan.kind = argSlice
		ct := reflect.Zero(at.Elem()).Interface().(handleValue).handleClientType()
		if at.Kind() == reflect.Slice {
			got = reflect.SliceOf(ct)
			desc = fmt.Sprintf("[]Handle[%v]", ct)
		} else {
			got = reflect.ArrayOf(at.Len(), ct)
			desc = fmt.Sprintf("[%d]Handle[%v]", at.Len(), ct)
		}
		plan.out = got
	case at.Kind() == reflect.Map && at.Elem().Implements(handleValueType):
		plan.kind = argMap
		ct := reflect.Zero(at.Elem()).Interface().(handleValue).handleClientType()
		got = reflect.MapOf(at.Key(), ct)
		desc = fmt.Sprintf("map[%v]Handle[%v]", at.Key(), ct)
		plan.out = got
	}
	if !got.AssignableTo(pt) {
		if got != at {
			return argPlan{}, fmt.Errorf("%s dereferences to %v, not assignable to %v", desc, got, pt)
		}
		return argPlan{}, fmt.Errorf("%v is not assignable to %v", at, pt)
	}
	return plan, nil
}

// handles returns the nodes of the handles among the arguments.
func (c *callable) handles() []*nodeBase {
	if c == nil {
		return nil
	}
	var out []*nodeBase
	add := func(v reflect.Value) {
		out = append(out, v.Interface().(handleValue).handleNode()) // nil for a zero Handle
	}
	for _, a := range c.args {
		switch a.kind {
		case argHandle:
			add(a.v)
		case argSlice:
			for i := 0; i < a.v.Len(); i++ {
				add(a.v.Index(i))
			}
		case argMap:
			it := a.v.MapRange()
			for it.Next() {
				add(it.Value())
			}
		}
	}
	return out
}

// values dereferences the arguments (clients go to set) and returns the
// values to call the function with, ctx first if it takes one.
func (c *callable) values(ctx context.Context, rt *binding, set *clientSet) ([]reflect.Value, error) {
	var out []reflect.Value
	if c.takesCtx {
		out = append(out, reflect.ValueOf(&ctx).Elem())
	}
	deref := func(v reflect.Value) (reflect.Value, error) {
		n := v.Interface().(handleValue).handleNode()
		if n == nil || n.entry == nil {
			return reflect.Value{}, fmt.Errorf("%w: zero or unadded handle", ErrInvalidProgram)
		}
		cl, err := rt.dereferenceInto(ctx, n.entry, set)
		if err != nil {
			return reflect.Value{}, err
		}
		return reflect.ValueOf(cl), nil
	}
	for i, a := range c.args {
		var v reflect.Value
		var err error
		switch a.kind {
		case argPlain:
			v = a.v
		case argNil:
			v = reflect.Zero(a.param)
		case argHandle:
			v, err = deref(a.v)
		case argSlice:
			if a.out.Kind() == reflect.Slice {
				if a.v.IsNil() {
					v = reflect.Zero(a.out)
					break
				}
				v = reflect.MakeSlice(a.out, a.v.Len(), a.v.Len())
			} else {
				v = reflect.New(a.out).Elem()
			}
			for j := 0; j < a.v.Len() && err == nil; j++ {
				var cl reflect.Value
				if cl, err = deref(a.v.Index(j)); err == nil {
					v.Index(j).Set(cl)
				}
			}
		case argMap:
			if a.v.IsNil() {
				v = reflect.Zero(a.out)
				break
			}
			v = reflect.MakeMapWithSize(a.out, a.v.Len())
			it := a.v.MapRange()
			for err == nil && it.Next() {
				var cl reflect.Value
				if cl, err = deref(it.Value()); err == nil {
					v.SetMapIndex(it.Key(), cl)
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// call calls the function, turning a panic into a *PanicError.
func (c *callable) call(args []reflect.Value) (out []reflect.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return c.fn.Call(args), nil
}

// PanicError is returned by Run when node code (a function, constructor or
// Run method) panicked; the launcher reports it with its stack.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v\n\n%s", e.Value, e.Stack) }

// resultErr returns the error result of a call, if its last result is an
// error.
func resultErr(out []reflect.Value) error {
	if len(out) == 0 {
		return nil
	}
	last := out[len(out)-1]
	if last.Type() != errorType || last.IsNil() {
		return nil
	}
	return last.Interface().(error)
}
