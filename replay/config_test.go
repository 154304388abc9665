package replay

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// defaultTable is what a table with only a name decodes to.
func defaultTable(name string) table.Options {
	return table.Options{
		Name:        name,
		Sampler:     sampler.UniformSpec(),
		Remover:     sampler.FIFOSpec(),
		MaxSize:     table.DefaultMaxSize,
		RateLimiter: ratelimit.Must(ratelimit.MinSize(1)),
	}
}

// with returns defaultTable("t") changed by f.
func with(f func(o *table.Options)) []table.Options {
	o := defaultTable("t")
	f(&o)
	return []table.Options{o}
}

func TestConfigFields(t *testing.T) {
	inf := ratelimit.Unbounded
	tests := []struct {
		name string
		yaml string // the table's fields after "name: t"
		want []table.Options
	}{
		{"defaults", ``, with(func(o *table.Options) {})},
		{"sampler uniform", `sampler: uniform`, with(func(o *table.Options) {})},
		{"sampler fifo", `sampler: fifo`, with(func(o *table.Options) { o.Sampler = sampler.FIFOSpec() })},
		{"sampler lifo", `sampler: lifo`, with(func(o *table.Options) { o.Sampler = sampler.LIFOSpec() })},
		{"sampler min_heap", `sampler: min_heap`, with(func(o *table.Options) { o.Sampler = sampler.MinHeapSpec() })},
		{"sampler max_heap", `sampler: max_heap`, with(func(o *table.Options) { o.Sampler = sampler.MaxHeapSpec() })},
		{"sampler case and dash", `sampler: Max-Heap`, with(func(o *table.Options) { o.Sampler = sampler.MaxHeapSpec() })},
		{"sampler prioritized", `sampler: {kind: prioritized, priority_exponent: 0.6}`,
			with(func(o *table.Options) { o.Sampler = sampler.PrioritizedSpec(0.6) })},
		{"sampler prioritized exponent 0", `sampler: {kind: prioritized, priority_exponent: 0}`,
			with(func(o *table.Options) { o.Sampler = sampler.PrioritizedSpec(0) })},
		{"sampler mapping without exponent", `sampler: {kind: lifo}`, with(func(o *table.Options) { o.Sampler = sampler.LIFOSpec() })},
		{"remover lifo", `remover: lifo`, with(func(o *table.Options) { o.Remover = sampler.LIFOSpec() })},
		{"remover prioritized", "remover:\n      kind: prioritized\n      priority_exponent: 1",
			with(func(o *table.Options) { o.Remover = sampler.PrioritizedSpec(1) })},
		{"max_size", `max_size: 10`, with(func(o *table.Options) { o.MaxSize = 10 })},
		{"max_size float notation", `max_size: 1e3`, with(func(o *table.Options) { o.MaxSize = 1000 })},
		{"max_size underscores", `max_size: 1_000`, with(func(o *table.Options) { o.MaxSize = 1000 })},
		{"max_times_sampled", `max_times_sampled: 3`, with(func(o *table.Options) { o.MaxTimesSampled = 3 })},
		{"max_times_sampled negative is unlimited", `max_times_sampled: -1`, with(func(o *table.Options) { o.MaxTimesSampled = -1 })},
		{"seed", `seed: 42`, with(func(o *table.Options) { o.Seed = 42 })},
		{"seed full uint64", `seed: 18446744073709551615`, with(func(o *table.Options) { o.Seed = math.MaxUint64 })},
		{"seed hex", `seed: 0xff`, with(func(o *table.Options) { o.Seed = 255 })},
		{"min_size", `rate_limiter: {min_size: 100}`,
			with(func(o *table.Options) { o.RateLimiter = ratelimit.Must(ratelimit.MinSize(100)) })},
		{"sample_to_insert_ratio error_buffer", `rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 4, min_size_to_sample: 1000, error_buffer: 400}}`,
			with(func(o *table.Options) { o.RateLimiter = ratelimit.Must(ratelimit.SampleToInsertRatio(4, 1000, 400)) })},
		{"sample_to_insert_ratio range", `rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 2, min_size_to_sample: 10, min_diff: 0, max_diff: 40}}`,
			with(func(o *table.Options) {
				o.RateLimiter = ratelimit.Must(ratelimit.SampleToInsertRatioRange(2, 10, 0, 40))
			})},
		{"sample_to_insert_ratio infinite range", `rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 2, min_size_to_sample: 10, min_diff: -.inf, max_diff: "inf"}}`,
			with(func(o *table.Options) {
				o.RateLimiter = ratelimit.Must(ratelimit.SampleToInsertRatioRange(2, 10, -inf, inf))
			})},
		{"queue", `rate_limiter: {queue: 100}`, with(func(o *table.Options) { o.RateLimiter = ratelimit.Must(ratelimit.Queue(100)) })},
		{"stack", `rate_limiter: {stack: 7}`, with(func(o *table.Options) { o.RateLimiter = ratelimit.Must(ratelimit.Stack(7)) })},
		{"general", `rate_limiter: {samples_per_insert: 0.5, min_size_to_sample: 2, min_diff: -10, max_diff: 10}`,
			with(func(o *table.Options) { o.RateLimiter = ratelimit.Must(ratelimit.New(0.5, 2, -10, 10)) })},
		{"general default diffs", `rate_limiter: {samples_per_insert: 3, min_size_to_sample: 5}`,
			with(func(o *table.Options) { o.RateLimiter = ratelimit.Must(ratelimit.New(3, 5, -inf, inf)) })},
		{"general string infinities", `rate_limiter: {samples_per_insert: 1, min_size_to_sample: 1, min_diff: "-inf", max_diff: "+inf"}`,
			with(func(o *table.Options) { o.RateLimiter = ratelimit.Must(ratelimit.New(1, 1, -inf, inf)) })},
		{"signature", "signature:\n    - {name: obs, dtype: float32, shape: [84, 84]}\n    - {name: action, dtype: int64}\n    - {name: any, dtype: uint8, shape: [-1, 3]}",
			with(func(o *table.Options) {
				o.Signature = &table.Signature{Columns: []table.ColumnSpec{
					{Name: "obs", DType: tensor.Float32, Shape: []int{84, 84}},
					{Name: "action", DType: tensor.Int64, Shape: []int{}},
					{Name: "any", DType: tensor.Uint8, Shape: []int{-1, 3}},
				}}
			})},
		{"signature null", `signature: null`, with(func(o *table.Options) {})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "tables:\n  - name: t\n"
			if tt.yaml != "" {
				src += "    " + tt.yaml + "\n"
			}
			got, err := ParseConfig([]byte(src), "yaml", "config.yaml")
			if err != nil {
				t.Fatalf("ParseConfig(%q): %v", src, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseConfig(%q)\n got %+v\nwant %+v", src, got, tt.want)
			}
			for _, o := range got {
				if _, err := table.New(o); err != nil {
					t.Fatalf("table.New rejects the decoded options: %v", err)
				}
			}
		})
	}
}

const fullYAML = `# two tables
tables:
  - name: replay
    sampler: {kind: prioritized, priority_exponent: 0.6}
    remover: fifo
    max_size: 1000000
    max_times_sampled: 0
    rate_limiter:
      sample_to_insert_ratio: {samples_per_insert: 4, min_size_to_sample: 1000, error_buffer: 400}
    signature:
      - {name: obs, dtype: float32, shape: [84, 84]}
      - {name: reward, dtype: float32}
    seed: 7
  - name: queue
    sampler: fifo
    remover: fifo
    max_size: 100
    max_times_sampled: 1
    rate_limiter: {queue: 100}
`

const fullJSON = `{
  "tables": [
    {
      "name": "replay",
      "sampler": {"kind": "prioritized", "priority_exponent": 0.6},
      "remover": "fifo",
      "max_size": 1000000,
      "max_times_sampled": 0,
      "rate_limiter": {"sample_to_insert_ratio": {"samples_per_insert": 4, "min_size_to_sample": 1000, "error_buffer": 400}},
      "signature": [
        {"name": "obs", "dtype": "float32", "shape": [84, 84]},
        {"name": "reward", "dtype": "float32"}
      ],
      "seed": 7
    },
    {"name": "queue", "sampler": "fifo", "remover": "fifo", "max_size": 100, "max_times_sampled": 1, "rate_limiter": {"queue": 100}}
  ]
}`

func fullWant() []table.Options {
	replay := defaultTable("replay")
	replay.Sampler = sampler.PrioritizedSpec(0.6)
	replay.RateLimiter = ratelimit.Must(ratelimit.SampleToInsertRatio(4, 1000, 400))
	replay.Signature = &table.Signature{Columns: []table.ColumnSpec{
		{Name: "obs", DType: tensor.Float32, Shape: []int{84, 84}},
		{Name: "reward", DType: tensor.Float32, Shape: []int{}},
	}}
	replay.Seed = 7
	queue, err := table.QueueOptions("queue", 100)
	if err != nil {
		panic(err)
	}
	return []table.Options{replay, queue}
}

func TestConfigYAMLAndJSON(t *testing.T) {
	for _, tt := range []struct{ format, src string }{{"yaml", fullYAML}, {"yml", fullYAML}, {"json", fullJSON}, {"JSON", fullJSON}} {
		got, err := ParseConfig([]byte(tt.src), tt.format, "config."+tt.format)
		if err != nil {
			t.Fatalf("%s: %v", tt.format, err)
		}
		if want := fullWant(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.format, got, want)
		}
	}
}

func TestConfigYAMLAnchorsAndMerge(t *testing.T) {
	src := `
base: &base
  sampler: lifo
  max_size: 10
tables:
  - name: a
    <<: *base
  - <<: *base
    name: b
    max_size: 20
`
	// "base" is not a known top-level field: anchors must live inside
	// tables. Check that first, then the supported form.
	if _, err := ParseConfig([]byte(src), "yaml", "c.yaml"); err == nil || !strings.Contains(err.Error(), `c.yaml: base: unknown field "base"`) {
		t.Fatalf("top-level anchor holder: err = %v", err)
	}
	src = `
tables:
  - &a
    name: a
    sampler: lifo
    max_size: 10
  - <<: *a
    name: b
    max_size: 20
`
	got, err := ParseConfig([]byte(src), "yaml", "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := defaultTable("a")
	a.Sampler, a.MaxSize = sampler.LIFOSpec(), 10
	b := a
	b.Name, b.MaxSize = "b", 20
	if want := []table.Options{a, b}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		format string
		src    string
		path   string // the ConfigError's Path
		reason string // a substring of the message after the path
		line   int    // 0: not checked
		is     error  // a sentinel the error must match, or nil
	}{
		// Whole file.
		{"empty yaml", "yaml", "", "", "empty config", 0, nil},
		{"comments only", "yaml", "# nothing\n", "", "empty config", 0, nil},
		{"empty json", "json", "  \n", "", "empty config", 0, nil},
		{"yaml syntax", "yaml", "tables: [\n", "", "yaml:", 0, nil},
		{"json syntax", "json", "{\"tables\": [}", "", "invalid JSON", 1, nil},
		{"json trailing data", "json", "{\"tables\": []} {}", "", "invalid JSON", 0, nil},
		{"two documents", "yaml", "tables: []\n---\ntables: []\n", "", "more than one YAML document", 0, nil},
		{"not a mapping", "yaml", "- a\n", "", "want a mapping, got a list", 1, nil},
		{"unknown top-level field", "yaml", "tables: [{name: a}]\nversion: 2\n", "version", `unknown field "version" (want tables)`, 2, nil},
		{"missing tables", "yaml", "{}\n", "tables", "required", 0, nil},
		{"tables not a list", "yaml", "tables: {name: a}\n", "tables", "want a list of tables, got a mapping", 0, nil},
		{"empty tables", "yaml", "tables: []\n", "tables", "empty: a server needs at least one table", 1, nil},
		{"empty tables json", "json", `{"tables": []}`, "tables", "empty", 1, nil},
		{"duplicate top-level key", "yaml", "tables: [{name: a}]\ntables: [{name: b}]\n", "tables", `duplicate key "tables"`, 2, nil},
		{"duplicate key json", "json", `{"tables": [{"name": "a", "name": "b"}]}`, "", `duplicate key "name"`, 1, nil},

		// Tables.
		{"table not a mapping", "yaml", "tables: [a]\n", "tables[0]", `want a mapping, got "a"`, 0, nil},
		{"unknown table field", "yaml", "tables:\n  - name: a\n    max_sise: 3\n", "tables[0].max_sise", `unknown field "max_sise" (want name, sampler, remover, max_size, max_times_sampled, rate_limiter, signature, seed)`, 3, nil},
		{"unknown table field json", "json", "{\"tables\": [\n {\"name\": \"a\",\n  \"colour\": 1}]}", "tables[0].colour", `unknown field "colour"`, 3, nil},
		{"missing name", "yaml", "tables:\n  - sampler: fifo\n", "tables[0].name", "required", 0, nil},
		{"empty name", "yaml", "tables: [{name: ''}]\n", "tables[0].name", "must not be empty", 0, nil},
		{"name not a string", "yaml", "tables: [{name: 12}]\n", "tables[0].name", "want a string, got number 12", 0, nil},
		{"duplicate table names", "yaml", "tables:\n  - name: a\n  - name: b\n  - name: a\n", "tables[2].name", `duplicate table name "a" (also tables[0])`, 4, nil},

		// Selectors.
		{"unknown sampler", "yaml", "tables:\n  - name: a\n  - name: b\n    sampler: prio\n", "tables[1].sampler", `unknown selector "prio"`, 4, sampler.ErrInvalidSpec},
		{"sampler prioritized without exponent", "yaml", "tables: [{name: a, sampler: prioritized}]\n", "tables[0].sampler", "prioritized needs a priority exponent", 0, nil},
		{"sampler mapping missing exponent", "yaml", "tables: [{name: a, sampler: {kind: prioritized}}]\n", "tables[0].sampler.priority_exponent", "required for prioritized", 0, nil},
		{"sampler negative exponent", "yaml", "tables: [{name: a, sampler: {kind: prioritized, priority_exponent: -1}}]\n", "tables[0].sampler.priority_exponent", "priority exponent must be finite and >= 0, got -1", 0, sampler.ErrInvalidSpec},
		{"sampler infinite exponent", "yaml", "tables: [{name: a, sampler: {kind: prioritized, priority_exponent: .inf}}]\n", "tables[0].sampler.priority_exponent", "must be finite", 0, sampler.ErrInvalidSpec},
		{"exponent on uniform", "yaml", "tables: [{name: a, sampler: {kind: uniform, priority_exponent: 0.5}}]\n", "tables[0].sampler.priority_exponent", "only meaningful for prioritized", 0, sampler.ErrInvalidSpec},
		{"sampler missing kind", "yaml", "tables: [{name: a, sampler: {priority_exponent: 0.5}}]\n", "tables[0].sampler.kind", "required", 0, nil},
		{"sampler unknown kind in mapping", "yaml", "tables: [{name: a, sampler: {kind: random}}]\n", "tables[0].sampler.kind", `unknown selector "random"`, 0, sampler.ErrInvalidSpec},
		{"sampler unknown field", "yaml", "tables: [{name: a, sampler: {kind: uniform, exponent: 1}}]\n", "tables[0].sampler.exponent", `unknown field "exponent" (want kind, priority_exponent)`, 0, nil},
		{"sampler wrong type", "yaml", "tables: [{name: a, sampler: [fifo]}]\n", "tables[0].sampler", "want a mapping, got a list", 0, nil},
		{"sampler number", "yaml", "tables: [{name: a, sampler: 1}]\n", "tables[0].sampler", "want a string, got number 1", 0, nil},
		{"exponent not a number", "yaml", "tables: [{name: a, sampler: {kind: prioritized, priority_exponent: high}}]\n", "tables[0].sampler.priority_exponent", `want a number, got "high"`, 0, nil},
		{"unknown remover", "json", `{"tables": [{"name": "a", "remover": "oldest"}]}`, "tables[0].remover", `unknown selector "oldest"`, 1, sampler.ErrInvalidSpec},

		// Sizes and seed.
		{"max_size zero", "yaml", "tables: [{name: a, max_size: 0}]\n", "tables[0].max_size", "must be >= 1, got 0", 0, nil},
		{"max_size negative", "yaml", "tables: [{name: a, max_size: -5}]\n", "tables[0].max_size", "must be >= 1, got -5", 0, nil},
		{"max_size fraction", "yaml", "tables: [{name: a, max_size: 1.5}]\n", "tables[0].max_size", "want an integer, got number 1.5", 0, nil},
		{"max_size string", "json", `{"tables": [{"name": "a", "max_size": "10"}]}`, "tables[0].max_size", `want an integer, got "10"`, 0, nil},
		{"max_size overflow", "yaml", "tables: [{name: a, max_size: 99999999999999999999999}]\n", "tables[0].max_size", "want an integer", 0, nil},
		{"max_times_sampled overflow", "yaml", "tables: [{name: a, max_times_sampled: 3000000000}]\n", "tables[0].max_times_sampled", "out of range for 32 bits", 0, nil},
		{"max_times_sampled bool", "yaml", "tables: [{name: a, max_times_sampled: true}]\n", "tables[0].max_times_sampled", "want an integer, got boolean true", 0, nil},
		{"seed negative", "yaml", "tables: [{name: a, seed: -1}]\n", "tables[0].seed", "want an integer in [0, 2^64), got number -1", 0, nil},
		{"seed null", "yaml", "tables: [{name: a, seed: null}]\n", "tables[0].seed", "got null", 0, nil},

		// Rate limiters.
		{"limiter not a mapping", "yaml", "tables: [{name: a, rate_limiter: MinSize(1)}]\n", "tables[0].rate_limiter", `want a mapping, got "MinSize(1)"`, 0, nil},
		{"limiter empty", "yaml", "tables: [{name: a, rate_limiter: {}}]\n", "tables[0].rate_limiter", "empty: give exactly one of", 0, nil},
		{"limiter two forms", "yaml", "tables: [{name: a, rate_limiter: {min_size: 1, queue: 3}}]\n", "tables[0].rate_limiter", "give exactly one of", 0, nil},
		{"limiter form and general", "yaml", "tables: [{name: a, rate_limiter: {queue: 3, samples_per_insert: 1}}]\n", "tables[0].rate_limiter", "got queue, samples_per_insert", 0, nil},
		{"limiter unknown field", "yaml", "tables: [{name: a, rate_limiter: {min_sise: 1}}]\n", "tables[0].rate_limiter.min_sise", `unknown field "min_sise"`, 0, nil},
		{"min_size zero", "yaml", "tables: [{name: a, rate_limiter: {min_size: 0}}]\n", "tables[0].rate_limiter.min_size", "MinSize(0): min_size_to_sample must be >= 1, got 0", 0, ratelimit.ErrInvalidConfig},
		{"min_size not an integer", "yaml", "tables: [{name: a, rate_limiter: {min_size: many}}]\n", "tables[0].rate_limiter.min_size", `want an integer, got "many"`, 0, nil},
		{"queue zero", "yaml", "tables: [{name: a, rate_limiter: {queue: 0}}]\n", "tables[0].rate_limiter.queue", "Queue(0): size must be >= 1", 0, ratelimit.ErrInvalidConfig},
		{"stack negative", "yaml", "tables: [{name: a, rate_limiter: {stack: -2}}]\n", "tables[0].rate_limiter.stack", "Stack(-2): size must be >= 1", 0, ratelimit.ErrInvalidConfig},
		{"ratio not a mapping", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: 4}}]\n", "tables[0].rate_limiter.sample_to_insert_ratio", "want a mapping, got number 4", 0, nil},
		{"ratio unknown field", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 4, min_size_to_sample: 1, buffer: 3}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.buffer", `unknown field "buffer" (want samples_per_insert, min_size_to_sample, error_buffer, min_diff, max_diff)`, 0, nil},
		{"ratio missing samples_per_insert", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {min_size_to_sample: 1, error_buffer: 3}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.samples_per_insert", "required", 0, nil},
		{"ratio missing min_size_to_sample", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 1, error_buffer: 3}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.min_size_to_sample", "required", 0, nil},
		{"ratio missing buffer", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 1, min_size_to_sample: 1}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.error_buffer", "required (or min_diff and max_diff)", 0, nil},
		{"ratio buffer and diffs", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 1, min_size_to_sample: 1, error_buffer: 3, min_diff: 0}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio", "either error_buffer or min_diff and max_diff, not both", 0, nil},
		{"ratio min_diff alone", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 1, min_size_to_sample: 1, min_diff: 0}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.max_diff", "required with min_diff", 0, nil},
		{"ratio max_diff alone", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 1, min_size_to_sample: 1, max_diff: 9}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.min_diff", "required with max_diff", 0, nil},
		{"ratio buffer too small", "yaml", "tables:\n  - name: a\n  - name: b\n    rate_limiter:\n      sample_to_insert_ratio:\n        samples_per_insert: 4\n        min_size_to_sample: 1000\n        error_buffer: 1\n",
			"tables[1].rate_limiter.sample_to_insert_ratio.error_buffer", "max_diff - min_diff = 2 must be at least 2*max(1, samples_per_insert) = 8", 8, ratelimit.ErrInvalidConfig},
		{"ratio negative buffer", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 4, min_size_to_sample: 10, error_buffer: -1}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.error_buffer", "error_buffer must be >= 0, got -1", 0, ratelimit.ErrInvalidConfig},
		{"ratio zero samples_per_insert", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 0, min_size_to_sample: 10, error_buffer: 5}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.samples_per_insert", "samples_per_insert must be finite and > 0, got 0", 0, ratelimit.ErrInvalidConfig},
		{"ratio zero min_size_to_sample", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 1, min_size_to_sample: 0, error_buffer: 5}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.min_size_to_sample", "min_size_to_sample must be >= 1, got 0", 0, ratelimit.ErrInvalidConfig},
		{"ratio min_diff above offset", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 1, min_size_to_sample: 10, min_diff: 20, max_diff: 40}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.min_diff", "min_diff 20 is greater than samples_per_insert*min_size_to_sample = 10", 0, ratelimit.ErrInvalidConfig},
		{"ratio narrow range", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 1, min_size_to_sample: 10, min_diff: 9, max_diff: 10}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.max_diff", "must be at least 2*max(1, samples_per_insert) = 2", 0, ratelimit.ErrInvalidConfig},
		{"ratio min above max", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 1, min_size_to_sample: 10, min_diff: 5, max_diff: 1}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.min_diff", "min_diff 5 is greater than max_diff 1", 0, ratelimit.ErrInvalidConfig},
		{"ratio bad infinity string", "yaml", "tables: [{name: a, rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 1, min_size_to_sample: 10, min_diff: 0, max_diff: lots}}}]\n",
			"tables[0].rate_limiter.sample_to_insert_ratio.max_diff", `want a number, "inf" or "-inf", got "lots"`, 0, nil},
		{"general missing samples_per_insert", "yaml", "tables: [{name: a, rate_limiter: {min_size_to_sample: 1}}]\n", "tables[0].rate_limiter.samples_per_insert", "required", 0, nil},
		{"general missing min_size_to_sample", "yaml", "tables: [{name: a, rate_limiter: {samples_per_insert: 1}}]\n", "tables[0].rate_limiter.min_size_to_sample", "required", 0, nil},
		{"general negative samples_per_insert", "yaml", "tables: [{name: a, rate_limiter: {samples_per_insert: -1, min_size_to_sample: 1}}]\n", "tables[0].rate_limiter.samples_per_insert", "must be finite and > 0, got -1", 0, ratelimit.ErrInvalidConfig},
		{"general nan samples_per_insert", "yaml", "tables: [{name: a, rate_limiter: {samples_per_insert: .nan, min_size_to_sample: 1}}]\n", "tables[0].rate_limiter.samples_per_insert", "got NaN", 0, ratelimit.ErrInvalidConfig},
		{"general min_size_to_sample zero", "yaml", "tables: [{name: a, rate_limiter: {samples_per_insert: 1, min_size_to_sample: 0}}]\n", "tables[0].rate_limiter.min_size_to_sample", "must be >= 1", 0, ratelimit.ErrInvalidConfig},
		{"general nan min_diff", "yaml", "tables: [{name: a, rate_limiter: {samples_per_insert: 1, min_size_to_sample: 1, min_diff: .nan}}]\n", "tables[0].rate_limiter.min_diff", "must not be NaN", 0, ratelimit.ErrInvalidConfig},
		{"general nan max_diff", "yaml", "tables: [{name: a, rate_limiter: {samples_per_insert: 1, min_size_to_sample: 1, max_diff: .nan}}]\n", "tables[0].rate_limiter.max_diff", "must not be NaN", 0, ratelimit.ErrInvalidConfig},
		{"general min above max", "json", `{"tables": [{"name": "a", "rate_limiter": {"samples_per_insert": 1, "min_size_to_sample": 1, "min_diff": 3, "max_diff": 2}}]}`,
			"tables[0].rate_limiter.min_diff", "min_diff 3 is greater than max_diff 2", 0, ratelimit.ErrInvalidConfig},

		// Signatures.
		{"signature not a list", "yaml", "tables: [{name: a, signature: {obs: float32}}]\n", "tables[0].signature", "want a list of columns {name, dtype, shape}, got a mapping", 0, nil},
		{"signature empty", "yaml", "tables: [{name: a, signature: []}]\n", "tables[0].signature", "signature has no columns", 0, nil},
		{"signature column not a mapping", "yaml", "tables: [{name: a, signature: [obs]}]\n", "tables[0].signature[0]", `want a mapping, got "obs"`, 0, nil},
		{"signature unknown field", "yaml", "tables: [{name: a, signature: [{name: obs, dtype: float32, shape: [], squeeze: true}]}]\n", "tables[0].signature[0].squeeze", `unknown field "squeeze" (want name, dtype, shape)`, 0, nil},
		{"signature missing name", "yaml", "tables: [{name: a, signature: [{dtype: float32}]}]\n", "tables[0].signature[0].name", "required", 0, nil},
		{"signature empty name", "yaml", "tables: [{name: a, signature: [{name: '', dtype: float32}]}]\n", "tables[0].signature[0].name", "must not be empty", 0, nil},
		{"signature missing dtype", "yaml", "tables: [{name: a, signature: [{name: obs}]}]\n", "tables[0].signature[0].dtype", "required", 0, nil},
		{"signature unknown dtype", "yaml", "tables:\n  - name: a\n    signature:\n      - {name: obs, dtype: float32}\n      - {name: act, dtype: f16}\n", "tables[0].signature[1].dtype",
			`unknown dtype "f16" (want uint8, int8, int16, int32, int64, uint16, uint32, uint64, float32, float64, bool)`, 5, nil},
		{"signature duplicate column", "yaml", "tables: [{name: a, signature: [{name: obs, dtype: float32}, {name: obs, dtype: int32}]}]\n", "tables[0].signature[1].name", `duplicate column name "obs" (also tables[0].signature[0])`, 0, nil},
		{"signature shape not a list", "yaml", "tables: [{name: a, signature: [{name: obs, dtype: float32, shape: 84}]}]\n", "tables[0].signature[0].shape", "want a list of dimensions", 0, nil},
		{"signature bad dimension", "yaml", "tables: [{name: a, signature: [{name: obs, dtype: float32, shape: [3, -2]}]}]\n", "tables[0].signature[0].shape[1]", "dimension -2 must be >= 0, or -1 to match any size", 0, nil},
		{"signature dimension not an integer", "yaml", "tables: [{name: a, signature: [{name: obs, dtype: float32, shape: [3, x]}]}]\n", "tables[0].signature[0].shape[1]", `want an integer, got "x"`, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := "config." + tt.format
			got, err := ParseConfig([]byte(tt.src), tt.format, file)
			if err == nil {
				t.Fatalf("ParseConfig(%q) = %+v, want an error", tt.src, got)
			}
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok {
				t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
			}
			if ce.File != file || ce.Path != tt.path {
				t.Errorf("error %q: file %q path %q, want %q %q", err, ce.File, ce.Path, file, tt.path)
			}
			prefix := file + ": "
			if tt.path != "" {
				prefix += tt.path + ": "
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg[len(prefix):], tt.reason) {
				t.Errorf("error %q: want prefix %q and reason %q", msg, prefix, tt.reason)
			}
			if tt.line != 0 && ce.Line != tt.line {
				t.Errorf("error %q: line %d, want %d", msg, ce.Line, tt.line)
			}
			if ce.Line != 0 && !strings.HasSuffix(msg, fmt.Sprintf(" (line %d)", ce.Line)) {
				t.Errorf("error %q does not end with its line %d", msg, ce.Line)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not match %v", msg, tt.is)
			}
		})
	}
}

func TestConfigErrorFormat(t *testing.T) {
	// The example from the package documentation, exactly.
	_, err := ParseConfig([]byte("tables:\n  - name: a\n  - name: b\n    sampler: prio\n"), "yaml", "config.yaml")
	want := `config.yaml: tables[1].sampler: unknown selector "prio" (want uniform, prioritized, fifo, lifo, min_heap or max_heap) (line 4)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
}

func TestConfigUnknownFormat(t *testing.T) {
	_, err := ParseConfig([]byte("tables: [{name: a}]"), "toml", "c.toml")
	if err == nil || !strings.Contains(err.Error(), `c.toml: unknown config format "toml"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, name := range []string{"a.yaml", "a.yml", "A.YAML"} {
		got, err := LoadConfig(write(name, fullYAML))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, fullWant()) {
			t.Fatalf("%s: got %+v", name, got)
		}
	}
	got, err := LoadConfig(write("a.json", fullJSON))
	if err != nil || !reflect.DeepEqual(got, fullWant()) {
		t.Fatalf("a.json: %+v, %v", got, err)
	}

	// The format follows the extension: YAML in a .json file is an error.
	p := write("yaml.json", fullYAML)
	if _, err := LoadConfig(p); err == nil || !strings.HasPrefix(err.Error(), p+": invalid JSON") {
		t.Errorf("YAML in .json: err = %v", err)
	}
	p = write("a.toml", "")
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), p+`: unknown config format ".toml"`) {
		t.Errorf(".toml: err = %v", err)
	}
	p = filepath.Join(dir, "missing.yaml")
	if _, err := LoadConfig(p); !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), p+": ") {
		t.Errorf("missing file: err = %v", err)
	}
	p = write("bad.yaml", "tables:\n  - name: a\n    max_size: 0\n")
	if _, err := LoadConfig(p); err == nil || err.Error() != p+": tables[0].max_size: must be >= 1, got 0 (line 3)" {
		t.Errorf("bad.yaml: err = %v", err)
	}
}

func TestConfigDefault(t *testing.T) {
	got := DefaultConfig()
	if want := []table.Options{defaultTable("default")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("DefaultConfig() = %+v, want %+v", got, want)
	}
	parsed, err := ParseConfig([]byte("tables: [{name: default}]"), "yaml", "x.yaml")
	if err != nil || !reflect.DeepEqual(parsed, got) {
		t.Fatalf("a table with only a name = %+v, %v; want DefaultConfig()", parsed, err)
	}
	srv, err := NewServer(ServerOptions{Tables: got, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
}

// TestConfigDocs checks that every YAML and JSON example in docs/config.md
// parses, so the documentation cannot drift from the decoder.
func TestConfigDocs(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(yaml|json)\n(.*?)```").FindAllSubmatch(data, -1)
	if len(blocks) < 2 {
		t.Fatalf("docs/config.md has %d yaml/json examples, want at least 2", len(blocks))
	}
	for i, b := range blocks {
		if strings.Contains(string(b[2]), "tables:") || strings.Contains(string(b[2]), `"tables"`) {
			if _, err := ParseConfig(b[2], string(b[1]), fmt.Sprintf("docs/config.md example %d", i+1)); err != nil {
				t.Errorf("%v", err)
			}
		}
	}
}

func ExampleParseConfig() {
	tables, err := ParseConfig([]byte(`
tables:
  - name: replay
    sampler: {kind: prioritized, priority_exponent: 0.6}
    max_size: 100000
    rate_limiter:
      sample_to_insert_ratio: {samples_per_insert: 4, min_size_to_sample: 1000, error_buffer: 400}
`), "yaml", "config.yaml")
	if err != nil {
		panic(err)
	}
	for _, t := range tables {
		fmt.Println(t.Name, t.Sampler, t.Remover, t.MaxSize, t.RateLimiter)
	}

	_, err = ParseConfig([]byte("tables: [{name: replay, rate_limiter: {min_size: 0}}]"), "yaml", "config.yaml")
	fmt.Println(err)
	// Output:
	// replay prioritized(0.6) fifo 100000 RateLimiter(samples_per_insert=4, min_size_to_sample=1000, min_diff=3600, max_diff=4400)
	// config.yaml: tables[0].rate_limiter.min_size: MinSize(0): min_size_to_sample must be >= 1, got 0 (line 1)
}
