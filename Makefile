# Build, test and benchmark targets. `make test` is what CI runs.
GO        ?= go
PKGS      ?= ./...
BENCH     ?= .
BENCHTIME ?= 1s
COUNT     ?= 1
FUZZTIME  ?= 10s

.PHONY: all build test vet fmt-check lint bench bench-compare fuzz generate generate-check

all: build test

build:
	$(GO) build $(PKGS)

test: vet fmt-check
	$(GO) test -race -timeout 20m $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

lint:
	$(GO) tool staticcheck $(PKGS)

bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) -count $(COUNT) $(PKGS)

# bench-compare runs the benchmarks COUNT times and summarises with benchstat.
bench-compare:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count 6 $(PKGS) | tee bench.out
	$(GO) tool benchstat bench.out

# fuzz runs every fuzz target of FUZZPKGS for FUZZTIME each: a duration
# (10s) or, immune to a Go 1.26 fuzzing race that fails a target as its time
# runs out, a number of executions (30000x).
FUZZPKGS ?= ./replay/ ./internal/chunkcodec/ ./courier/ ./sampler/
fuzz:
	@for pkg in $(FUZZPKGS); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

generate:
	$(GO) generate $(PKGS)

# generate-check fails if the committed generated code is stale.
generate-check: generate
	@git diff --exit-code --stat -- '*.go' || (echo "generated code is out of date: run make generate"; exit 1)
	@test -z "$$(git status --porcelain --untracked-files=all -- replay/internal/wire)" || (echo "generated code is out of date: run make generate"; exit 1)
