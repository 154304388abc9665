package tensor

import "reflect"

// dtypeFromReflect maps a value of a named element type (for example
// `type Reward float32`) to its dtype through its kind.
func dtypeFromReflect(v any) DType {
	switch reflect.TypeOf(v).Kind() {
	case reflect.Uint8:
		return Uint8
	case reflect.Int8:
		return Int8
	case reflect.Int16:
		return Int16
	case reflect.Int32:
		return Int32
	case reflect.Int64:
		return Int64
	case reflect.Uint16:
		return Uint16
	case reflect.Uint32:
		return Uint32
	case reflect.Uint64:
		return Uint64
	case reflect.Float32:
		return Float32
	case reflect.Float64:
		return Float64
	case reflect.Bool:
		return Bool
	}
	return Invalid
}
