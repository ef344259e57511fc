# Sextant's build. The two commands that matter: `make run` and `make test`.
GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
BIN         := bin
REPORTS     := reports
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BUF         := github.com/bufbuild/buf/cmd/buf@v1.75.0

.PHONY: build run test bench fuzz lint proto image clean

## build: the sextant binary into bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/sextant ./cmd/sextant

## run: build and start a standalone server (HTTP 8848, client gRPC 9848), no config file needed
run: build
	$(BIN)/sextant server

## test: the whole suite, with the race detector; then the official SDK's suites and the raw
## wire's again on the h2 transport (remote.transport = "h2"; the grpc-js test runs both itself)
H2_SUITES := ./cmd/sextant/e2e/nacossdk/ ./cmd/sextant/e2e/wire/
test:
	$(GO) test -race -timeout 15m ./...
	SEXTANT_REMOTE_TRANSPORT=h2 $(GO) test -race -timeout 5m $(H2_SUITES)

## bench: Go micro-benchmarks of the engines, bus, registry and encoders, then a
## short run of every sextant-bench scenario against fresh servers (reports/bench.{txt,json})
bench: build
	@mkdir -p $(REPORTS)
	$(GO) test -run '^$$' -bench . -benchmem ./core/... | tee $(REPORTS)/micro.txt
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/sextant-bench ./cmd/sextant-bench
	$(BIN)/sextant-bench suite --server $(BIN)/sextant --out $(REPORTS) --profile short

## fuzz: every Go fuzz target, found in the test files, one after another, each for FUZZTIME
## (default 60s); new failing inputs land in the package's testdata/fuzz
FUZZTIME    ?= 60s
FUZZ_PKGS   := $(shell grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u)
fuzz:
	@set -e; for pkg in $(FUZZ_PKGS); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s $$pkg; \
	  done; \
	done

## lint: gofmt, go vet, the import rules (core never imports plugins, sdk never imports
## core, plugins only sdk: cmd/internal/importcheck) and staticcheck (pinned)
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run ./cmd/internal/importcheck
	$(GO) run $(STATICCHECK) ./...

## image: the container image sextant:$(VERSION) (Dockerfile: static binary, distroless, non-root)
image:
	docker build --build-arg VERSION=$(VERSION) -t sextant:$(VERSION) .

## proto: regenerate Go from proto/ (uses buf; no protoc needed)
proto:
	cd proto && $(GO) run $(BUF) generate

clean:
	rm -rf $(BIN) $(REPORTS)
