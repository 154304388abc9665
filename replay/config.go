package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// This file reads table configuration files, the tables a replay server
// (cmd/replayd --config) serves.
//
// # Schema
//
// A config file is YAML (.yaml, .yml) or JSON (.json) with one top-level
// field, tables, a non-empty list of tables with unique names. Every field
// of a table except name is optional:
//
//	tables:
//	  - name: replay                     # required, unique
//	    sampler: uniform                 # default uniform
//	    remover: fifo                    # default fifo
//	    max_size: 1000000                # default 1000000, >= 1
//	    max_times_sampled: 0             # <= 0: unlimited
//	    rate_limiter: {min_size: 1}      # default {min_size: 1}
//	    signature:                       # default: none (not checked)
//	      - {name: obs, dtype: float32, shape: [84, 84]}
//	    seed: 0                          # 0: random
//
// A selector (sampler, remover) is a kind name, uniform, fifo, lifo,
// min_heap or max_heap, or a mapping {kind: prioritized, priority_exponent:
// 0.6}; prioritized needs the mapping form because it needs an exponent.
//
// A rate limiter is a mapping in exactly one of these forms:
//
//	{min_size: N}                                   # MinSize(N)
//	{sample_to_insert_ratio: {samples_per_insert: S, min_size_to_sample: M, error_buffer: B}}
//	{sample_to_insert_ratio: {samples_per_insert: S, min_size_to_sample: M, min_diff: LO, max_diff: HI}}
//	{queue: N}                                      # Queue(N)
//	{stack: N}                                      # Stack(N)
//	{samples_per_insert: S, min_size_to_sample: M, min_diff: LO, max_diff: HI}
//
// In the last (general) form min_diff and max_diff default to -inf and +inf;
// wherever they appear they may be numbers, YAML's .inf/-.inf, or the
// strings "inf", "+inf" and "-inf".
//
// A signature column has a name, a dtype (uint8, int8, int16, int32, int64,
// uint16, uint32, uint64, float32, float64, bool) and the shape of one step
// (default [], a scalar); a dimension of -1 matches any size.
//
// Decoding is strict: unknown fields, duplicate keys, values of the wrong
// type and more than one YAML document are errors. YAML anchors, aliases and
// merge keys (<<) are allowed. Every error is a *ConfigError naming the
// file, the path of the field at fault, e.g.
// tables[1].rate_limiter.sample_to_insert_ratio.error_buffer, and the
// reason; the line is added when known.

// ConfigError is the error returned by LoadConfig and ParseConfig. It
// wraps the validation error of the sampler, ratelimit or table package when
// there is one, so errors.Is works with their sentinels.
type ConfigError struct {
	// File is the name of the config (the path given to LoadConfig, the
	// name given to ParseConfig).
	File string
	// Path is the field at fault, e.g. "tables[1].sampler", or empty for
	// errors about the whole file (syntax errors, an empty file).
	Path string
	// Line and Column locate the field in the file (1-based), or are 0.
	Line, Column int
	// Err is the reason.
	Err error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(cleanReason(e.Err.Error()))
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// cleanReason drops the package prefixes of wrapped sentinels from a
// message: the path already says which part of the config is wrong.
func cleanReason(msg string) string {
	for _, s := range []error{sampler.ErrInvalidSpec, ratelimit.ErrInvalidConfig, table.ErrInvalidOptions} {
		msg = strings.ReplaceAll(msg, s.Error()+": ", "")
	}
	return msg
}

// DefaultConfig returns the tables a server has when no config is given:
// one table "default" with a uniform sampler, a FIFO remover, max size
// 1,000,000 and a MinSize(1) rate limiter.
func DefaultConfig() []table.Options {
	return []table.Options{defaultTableOptions("default")}
}

// defaultTableOptions returns a table's options with every default of
// table.Options.EnsureDefaults filled in except Chunks and Now, which are
// the server's.
func defaultTableOptions(name string) table.Options {
	o := table.Options{Name: name}
	o.EnsureDefaults()
	o.Now = nil
	return o
}

// LoadConfig reads the table config file at path; its extension (.json,
// .yaml or .yml) gives the format. See ParseConfig.
func LoadConfig(path string) ([]table.Options, error) {
	var format string
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		format = "json"
	case ".yaml", ".yml":
		format = "yaml"
	default:
		return nil, &ConfigError{File: path, Err: fmt.Errorf("unknown config format %q: want a .json, .yaml or .yml file", filepath.Ext(path))}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Err: err}
	}
	return ParseConfig(data, format, path)
}

// ParseConfig parses a table config in format "json" or "yaml" ("yml" is
// accepted too); name is used in errors. It returns the tables in file
// order with defaults filled in (sampler, remover, max size and rate
// limiter; Chunks and Now stay unset), each valid for table.New. The schema
// is described in this file's comments and in docs/config.md.
func ParseConfig(data []byte, format, name string) ([]table.Options, error) {
	d := configDecoder{file: name}
	var root *yaml.Node
	var err error
	switch strings.ToLower(format) {
	case "json":
		root, err = d.parseJSON(data)
	case "yaml", "yml":
		root, err = d.parseYAML(data)
	default:
		return nil, &ConfigError{File: name, Err: fmt.Errorf("unknown config format %q: want json or yaml", format)}
	}
	if err != nil {
		return nil, err
	}
	return d.config(root)
}

// configDecoder walks a parsed config. JSON is parsed into the same
// yaml.Node tree as YAML, so one walker checks both.
type configDecoder struct {
	file string
}

func (d *configDecoder) errAt(n *yaml.Node, path string, err error) error {
	e := &ConfigError{File: d.file, Path: path, Err: err}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

func (d *configDecoder) errf(n *yaml.Node, path, format string, args ...any) error {
	return d.errAt(n, path, fmt.Errorf(format, args...))
}

func (d *configDecoder) parseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{File: d.file, Err: errors.New("empty config: want a mapping with a tables list")}
		}
		return nil, &ConfigError{File: d.file, Err: err}
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, &ConfigError{File: d.file, Err: err}
		}
		return nil, d.errf(&more, "", "more than one YAML document")
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0], nil
	}
	return &doc, nil
}

// parseJSON parses data into a yaml.Node tree with the line and column of
// every value, rejecting duplicate keys and trailing data.
func (d *configDecoder) parseJSON(data []byte) (*yaml.Node, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &ConfigError{File: d.file, Err: errors.New("empty config: want an object with a tables list")}
	}
	// Syntax errors first, with the position encoding/json reports.
	var probe any
	if err := json.Unmarshal(data, &probe); err != nil {
		e := &ConfigError{File: d.file, Err: fmt.Errorf("invalid JSON: %w", err)}
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			e.Line, e.Column = cfgLineCol(data, int(se.Offset))
		}
		return nil, e
	}
	p := jsonTreeParser{data: data, dec: json.NewDecoder(bytes.NewReader(data)), d: d}
	p.dec.UseNumber()
	return p.value()
}

type jsonTreeParser struct {
	data []byte
	dec  *json.Decoder
	d    *configDecoder
}

// next returns the next token and the 1-based line and column where it
// starts.
func (p *jsonTreeParser) next() (json.Token, int, int, error) {
	off := int(p.dec.InputOffset())
	for off < len(p.data) && strings.IndexByte(" \t\r\n:,", p.data[off]) >= 0 {
		off++
	}
	line, col := cfgLineCol(p.data, off)
	tok, err := p.dec.Token()
	return tok, line, col, err
}

func (p *jsonTreeParser) value() (*yaml.Node, error) {
	tok, line, col, err := p.next()
	if err != nil {
		return nil, &ConfigError{File: p.d.file, Line: line, Column: col, Err: fmt.Errorf("invalid JSON: %w", err)}
	}
	return p.valueFrom(tok, line, col)
}

func (p *jsonTreeParser) valueFrom(tok json.Token, line, col int) (*yaml.Node, error) {
	n := &yaml.Node{Line: line, Column: col}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
			seen := map[string]bool{}
			for p.dec.More() {
				ktok, kl, kc, err := p.next()
				if err != nil {
					return nil, &ConfigError{File: p.d.file, Line: kl, Column: kc, Err: fmt.Errorf("invalid JSON: %w", err)}
				}
				key, _ := ktok.(string)
				if seen[key] {
					return nil, &ConfigError{File: p.d.file, Line: kl, Column: kc, Err: fmt.Errorf("duplicate key %q", key)}
				}
				seen[key] = true
				val, err := p.value()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: kl, Column: kc}, val)
			}
		case '[':
			n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
			for p.dec.More() {
				val, err := p.value()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, val)
			}
		}
		if _, _, _, err := p.next(); err != nil { // the closing delimiter
			return nil, &ConfigError{File: p.d.file, Err: fmt.Errorf("invalid JSON: %w", err)}
		}
	case string:
		n.Kind, n.Tag, n.Value, n.Style = yaml.ScalarNode, "!!str", v, yaml.DoubleQuotedStyle
	case json.Number:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!float", v.String()
		if !strings.ContainsAny(v.String(), ".eE") {
			n.Tag = "!!int"
		}
	case bool:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!bool", strconv.FormatBool(v)
	case nil:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", "null"
	}
	return n, nil
}

// cfgLineCol converts a byte offset into a 1-based line and column.
func cfgLineCol(data []byte, off int) (line, col int) {
	off = min(max(off, 0), len(data))
	line = 1 + bytes.Count(data[:off], []byte{'\n'})
	return line, off - bytes.LastIndexByte(data[:off], '\n')
}

// configField is one key of a mapping.
type configField struct {
	key   string
	knode *yaml.Node
	val   *yaml.Node
}

// cfgResolve follows aliases.
func cfgResolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// fields returns the keys of mapping n in order, merging "<<" keys, and
// rejects keys not in allowed and duplicate keys.
func (d *configDecoder) fields(n *yaml.Node, path string, allowed ...string) ([]configField, error) {
	n = cfgResolve(n)
	if n.Kind != yaml.MappingNode {
		return nil, d.errf(n, path, "want a mapping, got %s", cfgDescribe(n))
	}
	var out []configField
	seen := map[string]bool{}
	var merged []configField
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := cfgResolve(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			m, err := d.mergeFields(v, path, allowed)
			if err != nil {
				return nil, err
			}
			merged = append(merged, m...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			return nil, d.errf(k, path, "want a field name, got %s", cfgDescribe(k))
		}
		if seen[k.Value] {
			return nil, d.errf(k, cfgJoin(path, k.Value), "duplicate key %q", k.Value)
		}
		seen[k.Value] = true
		if !slices.Contains(allowed, k.Value) {
			return nil, d.errf(k, cfgJoin(path, k.Value), "unknown field %q (want %s)", k.Value, strings.Join(allowed, ", "))
		}
		out = append(out, configField{key: k.Value, knode: k, val: v})
	}
	// Merged keys apply only where the mapping does not set the key itself.
	for _, f := range merged {
		if !seen[f.key] {
			seen[f.key] = true
			out = append(out, f)
		}
	}
	return out, nil
}

func (d *configDecoder) mergeFields(v *yaml.Node, path string, allowed []string) ([]configField, error) {
	v = cfgResolve(v)
	var srcs []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		srcs = []*yaml.Node{v}
	case yaml.SequenceNode:
		srcs = v.Content
	default:
		return nil, d.errf(v, path, "merge key << wants a mapping or a list of mappings, got %s", cfgDescribe(v))
	}
	var out []configField
	seen := map[string]bool{}
	for _, s := range srcs {
		fs, err := d.fields(s, path, allowed...)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			// Earlier mappings in a merge list take precedence.
			if !seen[f.key] {
				seen[f.key] = true
				out = append(out, f)
			}
		}
	}
	return out, nil
}

func cfgJoin(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func cfgIndex(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// cfgDescribe names a node's type and value for "want X, got Y" messages.
func cfgDescribe(n *yaml.Node) string {
	n = cfgResolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return strconv.Quote(n.Value)
		case "!!int", "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		}
		return n.ShortTag() + " " + n.Value
	}
	return "nothing"
}

func (d *configDecoder) str(n *yaml.Node, path string) (string, error) {
	n = cfgResolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return "", d.errf(n, path, "want a string, got %s", cfgDescribe(n))
	}
	return n.Value, nil
}

// parseInt parses an integer scalar: a YAML or JSON integer, or a float
// with an integral value (1e6).
func (d *configDecoder) parseInt(n *yaml.Node, path string, bits int) (int64, error) {
	n = cfgResolve(n)
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int":
			v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, bits)
			if err == nil {
				return v, nil
			}
			return 0, d.errf(n, path, "integer %s out of range for %d bits", n.Value, bits)
		case "!!float":
			f, err := cfgParseFloat(n.Value)
			if lim := math.Ldexp(1, bits-1); err == nil && f == math.Trunc(f) && f >= -lim && f < lim {
				return int64(f), nil
			}
		}
	}
	return 0, d.errf(n, path, "want an integer, got %s", cfgDescribe(n))
}

func (d *configDecoder) parseUint64(n *yaml.Node, path string) (uint64, error) {
	n = cfgResolve(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		if v, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
			return v, nil
		}
	}
	return 0, d.errf(n, path, "want an integer in [0, 2^64), got %s", cfgDescribe(n))
}

// parseFloat parses a number. With inf set, the strings "inf", "+inf" and
// "-inf" are accepted, and infinities become ±ratelimit.Unbounded.
func (d *configDecoder) parseFloat(n *yaml.Node, path string, inf bool) (float64, error) {
	n = cfgResolve(n)
	var f float64
	var err error
	switch {
	case n.Kind != yaml.ScalarNode:
		err = errors.New("not a scalar")
	case n.ShortTag() == "!!int" || n.ShortTag() == "!!float":
		f, err = cfgParseFloat(n.Value)
	case inf && n.ShortTag() == "!!str":
		switch strings.ToLower(n.Value) {
		case "inf", "+inf", "infinity", "+infinity":
			f = math.Inf(1)
		case "-inf", "-infinity":
			f = math.Inf(-1)
		default:
			err = errors.New("not a number")
		}
	default:
		err = errors.New("not a number")
	}
	if err != nil {
		want := "a number"
		if inf {
			want = `a number, "inf" or "-inf"`
		}
		return 0, d.errf(n, path, "want %s, got %s", want, cfgDescribe(n))
	}
	if inf {
		switch {
		case f >= ratelimit.Unbounded:
			f = ratelimit.Unbounded
		case f <= -ratelimit.Unbounded:
			f = -ratelimit.Unbounded
		}
	}
	return f, nil
}

func cfgParseFloat(s string) (float64, error) {
	switch strings.ToLower(s) {
	case ".inf", "+.inf":
		return math.Inf(1), nil
	case "-.inf":
		return math.Inf(-1), nil
	case ".nan":
		return math.NaN(), nil
	}
	return strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
}

func (d *configDecoder) config(root *yaml.Node) ([]table.Options, error) {
	fs, err := d.fields(root, "", "tables")
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, d.errf(root, "tables", "required: list the tables to serve")
	}
	list := cfgResolve(fs[0].val)
	if list.Kind != yaml.SequenceNode {
		return nil, d.errf(list, "tables", "want a list of tables, got %s", cfgDescribe(list))
	}
	if len(list.Content) == 0 {
		return nil, d.errf(list, "tables", "empty: a server needs at least one table")
	}
	out := make([]table.Options, 0, len(list.Content))
	names := map[string]int{}
	for i, tn := range list.Content {
		p := cfgIndex("tables", i)
		o, nameNode, err := d.table(tn, p)
		if err != nil {
			return nil, err
		}
		if j, dup := names[o.Name]; dup {
			return nil, d.errf(nameNode, p+".name", "duplicate table name %q (also tables[%d])", o.Name, j)
		}
		names[o.Name] = i
		out = append(out, o)
	}
	return out, nil
}

var tableFields = []string{"name", "sampler", "remover", "max_size", "max_times_sampled", "rate_limiter", "signature", "seed"}

func (d *configDecoder) table(n *yaml.Node, p string) (o table.Options, nameNode *yaml.Node, err error) {
	fs, err := d.fields(n, p, tableFields...)
	if err != nil {
		return o, nil, err
	}
	o = defaultTableOptions("")
	for _, f := range fs {
		fp := cfgJoin(p, f.key)
		switch f.key {
		case "name":
			nameNode = f.val
			if o.Name, err = d.str(f.val, fp); err == nil && o.Name == "" {
				err = d.errf(f.val, fp, "must not be empty")
			}
		case "sampler":
			o.Sampler, err = d.selector(f.val, fp)
		case "remover":
			o.Remover, err = d.selector(f.val, fp)
		case "max_size":
			if o.MaxSize, err = d.parseInt(f.val, fp, 64); err == nil && o.MaxSize < 1 {
				err = d.errf(f.val, fp, "must be >= 1, got %d", o.MaxSize)
			}
		case "max_times_sampled":
			var v int64
			v, err = d.parseInt(f.val, fp, 32)
			o.MaxTimesSampled = int32(v)
		case "rate_limiter":
			o.RateLimiter, err = d.rateLimiter(f.val, fp)
		case "signature":
			o.Signature, err = d.signature(f.val, fp)
		case "seed":
			o.Seed, err = d.parseUint64(f.val, fp)
		}
		if err != nil {
			return o, nil, err
		}
	}
	if nameNode == nil {
		return o, nil, d.errf(n, p+".name", "required")
	}
	// The checks above cover every field; this is a backstop so that
	// whatever table.New would reject is rejected here, with the path.
	if err := o.Validate(); err != nil {
		return o, nil, d.errAt(n, p, err)
	}
	return o, nameNode, nil
}

var selectorFields = []string{"kind", "priority_exponent"}

func (d *configDecoder) selector(n *yaml.Node, p string) (sampler.Spec, error) {
	n = cfgResolve(n)
	if n.Kind == yaml.ScalarNode {
		s, err := d.str(n, p)
		if err != nil {
			return sampler.Spec{}, err
		}
		k, err := sampler.ParseKind(s)
		if err != nil {
			return sampler.Spec{}, d.errAt(n, p, err)
		}
		if k == sampler.KindPrioritized {
			return sampler.Spec{}, d.errf(n, p, "prioritized needs a priority exponent: write {kind: prioritized, priority_exponent: 0.6}")
		}
		return sampler.Spec{Kind: k}, nil
	}
	fs, err := d.fields(n, p, selectorFields...)
	if err != nil {
		return sampler.Spec{}, err
	}
	var spec sampler.Spec
	var kindSet bool
	var expNode *yaml.Node
	for _, f := range fs {
		fp := cfgJoin(p, f.key)
		switch f.key {
		case "kind":
			s, err := d.str(f.val, fp)
			if err != nil {
				return spec, err
			}
			if spec.Kind, err = sampler.ParseKind(s); err != nil {
				return spec, d.errAt(f.val, fp, err)
			}
			kindSet = true
		case "priority_exponent":
			expNode = f.val
			if spec.PriorityExponent, err = d.parseFloat(f.val, fp, false); err != nil {
				return spec, err
			}
		}
	}
	if !kindSet {
		return spec, d.errf(n, p+".kind", "required (one of uniform, prioritized, fifo, lifo, min_heap, max_heap)")
	}
	if spec.Kind == sampler.KindPrioritized && expNode == nil {
		return spec, d.errf(n, p+".priority_exponent", "required for prioritized")
	}
	if err := spec.Validate(); err != nil {
		if expNode != nil {
			return spec, d.errAt(expNode, p+".priority_exponent", err)
		}
		return spec, d.errAt(n, p, err)
	}
	return spec, nil
}

// The forms of a rate limiter mapping.
var (
	limiterGeneralFields = []string{"samples_per_insert", "min_size_to_sample", "min_diff", "max_diff"}
	limiterFields        = append([]string{"min_size", "sample_to_insert_ratio", "queue", "stack"}, limiterGeneralFields...)
	ratioFields          = []string{"samples_per_insert", "min_size_to_sample", "error_buffer", "min_diff", "max_diff"}
)

func (d *configDecoder) rateLimiter(n *yaml.Node, p string) (ratelimit.Config, error) {
	fs, err := d.fields(n, p, limiterFields...)
	if err != nil {
		return ratelimit.Config{}, err
	}
	const forms = "give exactly one of {min_size: N}, {sample_to_insert_ratio: {...}}, {queue: N}, {stack: N}, or the general form {samples_per_insert, min_size_to_sample, min_diff, max_diff}"
	var named []configField
	general := false
	for _, f := range fs {
		if slices.Contains(limiterGeneralFields, f.key) {
			general = true
		} else {
			named = append(named, f)
		}
	}
	switch {
	case len(fs) == 0:
		return ratelimit.Config{}, d.errf(n, p, "empty: %s", forms)
	case len(named) > 1 || (len(named) == 1 && general):
		keys := make([]string, len(fs))
		for i, f := range fs {
			keys[i] = f.key
		}
		return ratelimit.Config{}, d.errf(n, p, "%s; got %s", forms, strings.Join(keys, ", "))
	case general:
		return d.limiterGeneral(n, p, fs)
	}
	f := named[0]
	fp := cfgJoin(p, f.key)
	switch f.key {
	case "sample_to_insert_ratio":
		rfs, err := d.fields(f.val, fp, ratioFields...)
		if err != nil {
			return ratelimit.Config{}, err
		}
		return d.limiterRatio(f.val, fp, rfs)
	}
	v, err := d.parseInt(f.val, fp, 64)
	if err != nil {
		return ratelimit.Config{}, err
	}
	var c ratelimit.Config
	switch f.key {
	case "min_size":
		c, err = ratelimit.MinSize(v)
	case "queue":
		c, err = ratelimit.Queue(v)
	case "stack":
		c, err = ratelimit.Stack(v)
	}
	if err != nil {
		return c, d.errAt(f.val, fp, err)
	}
	return c, nil
}

// limiterValues reads the numeric fields of a rate limiter mapping.
type limiterValues struct {
	spi         float64
	minSize     int64
	errorBuffer float64
	minDiff     float64
	maxDiff     float64
	nodes       map[string]*yaml.Node // the fields given
}

func (v *limiterValues) has(field string) bool { return v.nodes[field] != nil }

func (d *configDecoder) limiterValues(fs []configField, p string) (limiterValues, error) {
	v := limiterValues{minDiff: -ratelimit.Unbounded, maxDiff: ratelimit.Unbounded, nodes: map[string]*yaml.Node{}}
	for _, f := range fs {
		fp := cfgJoin(p, f.key)
		var err error
		switch f.key {
		case "samples_per_insert":
			v.spi, err = d.parseFloat(f.val, fp, false)
		case "min_size_to_sample":
			v.minSize, err = d.parseInt(f.val, fp, 64)
		case "error_buffer":
			v.errorBuffer, err = d.parseFloat(f.val, fp, false)
		case "min_diff":
			v.minDiff, err = d.parseFloat(f.val, fp, true)
		case "max_diff":
			v.maxDiff, err = d.parseFloat(f.val, fp, true)
		}
		if err != nil {
			return v, err
		}
		v.nodes[f.key] = f.val
	}
	return v, nil
}

func (d *configDecoder) require(n *yaml.Node, p string, v limiterValues, keys ...string) error {
	for _, k := range keys {
		if !v.has(k) {
			return d.errf(n, cfgJoin(p, k), "required")
		}
	}
	return nil
}

func (d *configDecoder) limiterGeneral(n *yaml.Node, p string, fs []configField) (ratelimit.Config, error) {
	v, err := d.limiterValues(fs, p)
	if err != nil {
		return ratelimit.Config{}, err
	}
	if err := d.require(n, p, v, "samples_per_insert", "min_size_to_sample"); err != nil {
		return ratelimit.Config{}, err
	}
	c, err := ratelimit.New(v.spi, v.minSize, v.minDiff, v.maxDiff)
	if err != nil {
		return c, d.limiterErr(n, p, v, err)
	}
	return c, nil
}

func (d *configDecoder) limiterRatio(n *yaml.Node, p string, fs []configField) (ratelimit.Config, error) {
	v, err := d.limiterValues(fs, p)
	if err != nil {
		return ratelimit.Config{}, err
	}
	if err := d.require(n, p, v, "samples_per_insert", "min_size_to_sample"); err != nil {
		return ratelimit.Config{}, err
	}
	hasBuffer, hasMin, hasMax := v.has("error_buffer"), v.has("min_diff"), v.has("max_diff")
	var c ratelimit.Config
	switch {
	case hasBuffer && (hasMin || hasMax):
		return c, d.errf(n, p, "give either error_buffer or min_diff and max_diff, not both")
	case hasBuffer:
		c, err = ratelimit.SampleToInsertRatio(v.spi, v.minSize, v.errorBuffer)
	case hasMin && hasMax:
		c, err = ratelimit.SampleToInsertRatioRange(v.spi, v.minSize, v.minDiff, v.maxDiff)
	case hasMin:
		return c, d.errf(n, cfgJoin(p, "max_diff"), "required with min_diff")
	case hasMax:
		return c, d.errf(n, cfgJoin(p, "min_diff"), "required with max_diff")
	default:
		return c, d.errf(n, cfgJoin(p, "error_buffer"), "required (or min_diff and max_diff)")
	}
	if err != nil {
		return c, d.limiterErr(n, p, v, err)
	}
	return c, nil
}

// limiterErr attributes a ratelimit validation error to the field that
// caused it, checking in the order the ratelimit package does.
func (d *configDecoder) limiterErr(n *yaml.Node, p string, v limiterValues, err error) error {
	field := ""
	offset := v.spi * float64(v.minSize)
	hasBuffer := v.has("error_buffer")
	switch {
	case hasBuffer && (math.IsNaN(v.errorBuffer) || v.errorBuffer < 0):
		field = "error_buffer"
	case math.IsNaN(v.spi) || math.IsInf(v.spi, 0) || v.spi <= 0:
		field = "samples_per_insert"
	case v.minSize < 1:
		field = "min_size_to_sample"
	case math.IsNaN(v.minDiff):
		field = "min_diff"
	case math.IsNaN(v.maxDiff):
		field = "max_diff"
	case hasBuffer:
		field = "error_buffer" // the window 2*error_buffer is too narrow
	case v.minDiff > v.maxDiff:
		field = "min_diff"
	case v.maxDiff-v.minDiff < 2*max(1, v.spi):
		field = "max_diff" // the window is too narrow
	case v.minDiff > offset:
		field = "min_diff"
	}
	if node := v.nodes[field]; node != nil {
		return d.errAt(node, cfgJoin(p, field), err)
	}
	return d.errAt(n, p, err)
}

var columnFields = []string{"name", "dtype", "shape"}

func (d *configDecoder) signature(n *yaml.Node, p string) (*table.Signature, error) {
	n = cfgResolve(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, d.errf(n, p, "want a list of columns {name, dtype, shape}, got %s", cfgDescribe(n))
	}
	sig := &table.Signature{}
	names := map[string]int{}
	for j, cn := range n.Content {
		cp := cfgIndex(p, j)
		fs, err := d.fields(cn, cp, columnFields...)
		if err != nil {
			return nil, err
		}
		col := table.ColumnSpec{Shape: []int{}}
		var hasName, hasDType bool
		for _, f := range fs {
			fp := cfgJoin(cp, f.key)
			switch f.key {
			case "name":
				if col.Name, err = d.str(f.val, fp); err != nil {
					return nil, err
				}
				if col.Name == "" {
					return nil, d.errf(f.val, fp, "must not be empty")
				}
				if k, dup := names[col.Name]; dup {
					return nil, d.errf(f.val, fp, "duplicate column name %q (also %s)", col.Name, cfgIndex(p, k))
				}
				names[col.Name] = j
				hasName = true
			case "dtype":
				s, err := d.str(f.val, fp)
				if err != nil {
					return nil, err
				}
				if col.DType, err = tensor.ParseDType(s); err != nil {
					return nil, d.errf(f.val, fp, "unknown dtype %q (want %s)", s, cfgDTypeNames())
				}
				hasDType = true
			case "shape":
				if col.Shape, err = d.shape(f.val, fp); err != nil {
					return nil, err
				}
			}
		}
		if !hasName {
			return nil, d.errf(cn, cp+".name", "required")
		}
		if !hasDType {
			return nil, d.errf(cn, cp+".dtype", "required")
		}
		sig.Columns = append(sig.Columns, col)
	}
	if err := sig.Validate(); err != nil {
		return nil, d.errAt(n, p, err)
	}
	return sig, nil
}

func (d *configDecoder) shape(n *yaml.Node, p string) ([]int, error) {
	n = cfgResolve(n)
	if n.Kind != yaml.SequenceNode {
		return nil, d.errf(n, p, "want a list of dimensions, e.g. [84, 84], got %s", cfgDescribe(n))
	}
	shape := make([]int, 0, len(n.Content))
	for k, dn := range n.Content {
		dp := cfgIndex(p, k)
		v, err := d.parseInt(dn, dp, 32)
		if err != nil {
			return nil, err
		}
		if v < -1 {
			return nil, d.errf(dn, dp, "dimension %d must be >= 0, or -1 to match any size", v)
		}
		shape = append(shape, int(v))
	}
	return shape, nil
}

func cfgDTypeNames() string {
	var names []string
	for dt := tensor.DType(1); dt.Valid(); dt++ {
		names = append(names, dt.String())
	}
	return strings.Join(names, ", ")
}
