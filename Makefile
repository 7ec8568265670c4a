# cotd — make targets. `make test` is the test command CI runs.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
PKGS     := ./...
FUZZTIME ?= 30s
CONFIG   ?=

.PHONY: build run test race lint bench gobench fuzz clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/cotd serve $(if $(CONFIG),--config $(CONFIG))

# The whole check: formatting, vet, and every test under the race detector.
test: lint race

race:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@# go.mod and go.sum must be what go mod tidy makes of them (direct imports not // indirect).
	$(GO) mod tidy -diff
	@if command -v staticcheck >/dev/null 2>&1; then staticcheck $(PKGS); else echo "staticcheck not installed; skipped"; fi

# The smoke scenario against a cotd it spawns; fails on the scenario's pass
# criteria (loss, latency, connects). gobench runs the Go benchmarks.
bench:
	$(GO) run ./cmd/cotbench run configs/bench/smoke.toml --spawn

gobench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./cot/... ./tlsstate/ ./engine/broker/

# Each native fuzz target for FUZZTIME.
fuzz:
	@for pkg in ./cot/ ./cot/takproto/ ./tlsstate/ ./engine/auth/ ./engine/web/; do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin/
