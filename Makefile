# Sextant's build. The two commands that matter: `make run` and `make test`.
GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
BIN         := bin
REPORTS     := reports
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BUF         := github.com/bufbuild/buf/cmd/buf@v1.75.0

.PHONY: build run test bench lint proto clean

## build: the sextant binary into bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/sextant ./cmd/sextant

## run: build and start a standalone server (HTTP 8848, client gRPC 9848), no config file needed
run: build
	$(BIN)/sextant server

## test: the whole suite, with the race detector
test:
	$(GO) test -race -timeout 15m ./...

## bench: Go micro-benchmarks of the engines, bus, registry and encoders, then a
## short run of every sextant-bench scenario against fresh servers (reports/bench.{txt,json})
bench: build
	@mkdir -p $(REPORTS)
	$(GO) test -run '^$$' -bench . -benchmem ./core/... | tee $(REPORTS)/micro.txt
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/sextant-bench ./cmd/sextant-bench
	$(BIN)/sextant-bench suite --server $(BIN)/sextant --out $(REPORTS) --profile short

## lint: gofmt, go vet and staticcheck (pinned)
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## proto: regenerate Go from proto/ (uses buf; no protoc needed)
proto:
	cd proto && $(GO) run $(BUF) generate

clean:
	rm -rf $(BIN) $(REPORTS)
