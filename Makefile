# aralez build, test and bench targets. `make help` lists them.
GO        ?= go
BIN       := bin/aralez
CONFIG    ?= etc/main.yaml
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
TEST_FLAGS ?= -race -timeout 600s
FUZZTIME  ?= 10s

REV       ?= HEAD~1

.PHONY: help build run first-build-note test vet lint deps fmt fuzz bench bench-setup bench-go bench-base bench-ab clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/aralez
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/aralez

run: first-build-note build ## build and run the proxy on etc/main.yaml (http://127.0.0.1:6193/)
	./$(BIN) -c $(CONFIG)

# first-build-note says, before a build that must first download and
# compile the dependencies, that the first build takes minutes: the Go
# tools print nothing while they work. A dependency that is not
# downloaded, or not compiled in the build cache, means a cold build.
first-build-note:
	@if ! $(GO) list -m -f '{{.Dir}}' github.com/valyala/fasthttp 2>/dev/null | grep -q . || \
	   [ "$$($(GO) list -f '{{.Stale}}' github.com/valyala/fasthttp 2>/dev/null)" != false ]; then \
	  echo "aralez: first build: downloading and compiling the dependencies (several minutes the first time; later builds take seconds)"; \
	fi

test: ## run every test with the race detector (unit + integration)
	$(GO) test $(TEST_FLAGS) ./...

vet: ## go vet
	$(GO) vet ./...

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

lint: vet deps ## gofmt check, go vet, import-direction check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

deps: ## fail on an import edge STYLE.md forbids (self-test first)
	@bash .ci/deps-check --self-test
	@bash .ci/deps-check

fuzz: ## time-boxed native fuzzing of the parsers
	$(GO) test -run '^$$' -fuzz FuzzParseUpstreams -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz FuzzNormalizePath -fuzztime $(FUZZTIME) ./proxy/pipeline/
	$(GO) test -run '^$$' -fuzz FuzzRoutePathSpellings -fuzztime $(FUZZTIME) ./proxy/pipeline/
	$(GO) test -run '^$$' -fuzz FuzzServeFastHTTP -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzFramerSplit -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz FuzzParseMain -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz FuzzBasicCheck -fuzztime $(FUZZTIME) ./policy/auth/
	$(GO) test -run '^$$' -fuzz FuzzJWTCheck -fuzztime $(FUZZTIME) ./policy/auth/

bench-go: ## Go micro-benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem ./proxy/ ./balancer/ ./policy/... ./metrics/ ./accesslog/ ./tls/

bench-setup: ## install wrk, h2load, nginx, haproxy, caddy (only what is missing)
	bash bench/setup

bench: build bench-setup ## the load suite against nginx, HAProxy, Caddy (see bench/README.md)
	$(GO) run ./bench/cmd/aralez-bench $(BENCH_FLAGS)

bench-base: ## build bin/aralez-base from REV (default HEAD~1) for a same-run A/B
	GO=$(GO) bash bench/build-base '$(REV)' bin/aralez-base

bench-ab: build bench-setup bench-base ## make bench with bin/aralez-base from REV beside bin/aralez (A/B)
	ARALEZ_BASE=bin/aralez-base $(GO) run ./bench/cmd/aralez-bench $(BENCH_FLAGS)

clean:
	rm -rf bin
