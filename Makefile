# podsmith's two commands: `make test` (the test suite CI runs) and
# `make demo` (build and start a pod sandbox with the defaults).
SHELL := /bin/bash
GO ?= go
STATICCHECK_VERSION := v0.8.2
BIN := $(CURDIR)/.bin
STATICCHECK := $(BIN)/staticcheck-$(STATICCHECK_VERSION)
# As root, privileged tests must run: they fail instead of skipping.
ifeq ($(shell id -u),0)
export PODSMITH_REQUIRE_ROOT := 1
endif
GO_TEST_FLAGS ?= -race -count=1 -timeout 30m
MODULES := . $(patsubst %/go.mod,%,$(wildcard cri/go.mod examples/go.mod))

.PHONY: test deps lint fmt vet staticcheck unit demo podctl crishim bench bench-pause-modes clean

test: deps lint unit

# The quickstart: build podctl, run examples/pods/basic.json with runc,
# look inside the pause, stop and remove it (hack/demo.sh).
demo: deps podctl
	@./hack/demo.sh

podctl:
	@mkdir -p $(BIN)
	cd examples && $(GO) build -o $(BIN)/podctl ./podctl

# The CRI shim (examples/crishim); make bench-peers runs it against
# containerd (bench/bench-peers.mk).
crishim:
	@mkdir -p $(BIN)
	cd examples && $(GO) build -o $(BIN)/crishim ./crishim

BENCH_PEERS_DEPS := crishim
include bench/bench-peers.mk

deps:
	@./hack/install-deps.sh

lint: fmt vet staticcheck

fmt:
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi

vet:
	@for m in $(MODULES); do \
		(cd $$m && $(GO) vet ./... && GOOS=darwin $(GO) vet ./...) || exit 1; \
	done

$(STATICCHECK):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@mv $(BIN)/staticcheck $(STATICCHECK)

staticcheck: $(STATICCHECK)
	@for m in $(MODULES); do (cd $$m && $(STATICCHECK) ./...) || exit 1; done

unit:
	@for m in $(MODULES); do \
		echo "== go test $$m"; \
		(cd $$m && $(GO) test $(GO_TEST_FLAGS) ./...) || exit 1; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# podctl run with a pause against run --no-pause, end to end (root).
bench-pause-modes: podctl
	@./bench/pause-modes.sh

clean:
	rm -rf $(BIN)
