# make bench-peers: podsmith's CRI shim against containerd 1.6 (Debian's)
# and containerd 2.4.2 (built from the Go module proxy, cached), all timed by
# one gRPC client (examples/cribench). Root only; see bench/README.md.
# Included by the Makefile: include bench/bench-peers.mk

BIN ?= $(CURDIR)/.bin
GO ?= go

# Work dir of the run (configs, roots, state, sockets, logs; removed at
# the end) and the build cache (containerd 2.4.2, crictl, the pause image).
BENCH_DIR ?= /var/lib/podsmith-bench
PODSMITH_PEERS_CACHE ?= /var/cache/podsmith/peers
BENCH_ITERATIONS ?= 30
BENCH_CONCURRENCY ?= 1,4
BENCH_NETWORKS ?= pod,host
BENCH_MEMORY_PODS ?= 20
# The system the ratios are relative to (podsmith/containerd-2.4, ...).
BENCH_REF ?= containerd-2.4
BENCH_RESULTS ?= $(BIN)/bench-peers

# ---- podsmith's CRI shim --------------------------------------------------
# PODSMITH_SHIM_CMD starts podsmith's CRI shim (it runs until SIGTERM),
# serving CRI v1 on unix://$(PODSMITH_SHIM_SOCK) (change both together).
# bench/peers.sh writes its CNI config (bridge pbk-ps, 10.199.232.0/24) in
# $(BENCH_DIR)/ps/net.d first. When the command's first word (the binary)
# does not exist, bench-peers benchmarks the two containerds only, and
# says so. BENCH_PEERS_DEPS: prerequisites, e.g. the target that builds it.
PODSMITH_SHIM_SOCK ?= $(BENCH_DIR)/crishim.sock
PODSMITH_SHIM_CMD ?= $(BIN)/crishim --listen unix://$(PODSMITH_SHIM_SOCK) --root $(BENCH_DIR)/ps/state --run-root $(BENCH_DIR)/ps/run --netns-dir $(BENCH_DIR)/ps/netns --cni-conf-dir $(BENCH_DIR)/ps/net.d --cni-bin-dir /usr/lib/cni --runtime runc
BENCH_PEERS_DEPS ?=
# ---------------------------------------------------------------------------

.PHONY: bench-peers bench-peers-cleanup cribench

cribench:
	@mkdir -p $(BIN)
	cd examples && $(GO) build -o $(BIN)/cribench ./cribench

# bench/peers.sh bench does it all under one trap: setup, start the peers
# and the shim, cribench (latency, then memory), stop and clean up
# everything, on failure or interrupt too.
bench-peers: cribench $(BENCH_PEERS_DEPS)
	PODSMITH_BENCH_DIR='$(BENCH_DIR)' PODSMITH_PEERS_CACHE='$(PODSMITH_PEERS_CACHE)' \
	CRIBENCH='$(BIN)/cribench' BENCH_ITERATIONS='$(BENCH_ITERATIONS)' \
	BENCH_CONCURRENCY='$(BENCH_CONCURRENCY)' BENCH_NETWORKS='$(BENCH_NETWORKS)' \
	BENCH_MEMORY_PODS='$(BENCH_MEMORY_PODS)' BENCH_REF='$(BENCH_REF)' BENCH_RESULTS='$(BENCH_RESULTS)' \
	PODSMITH_SHIM_SOCK='$(PODSMITH_SHIM_SOCK)' PODSMITH_SHIM_CMD='$(PODSMITH_SHIM_CMD)' \
	bash bench/peers.sh bench

# After a crash or a kill -9 of make: stop all of it, remove the work dir.
bench-peers-cleanup:
	PODSMITH_BENCH_DIR='$(BENCH_DIR)' PODSMITH_PEERS_CACHE='$(PODSMITH_PEERS_CACHE)' \
	PODSMITH_SHIM_SOCK='$(PODSMITH_SHIM_SOCK)' bash bench/peers.sh cleanup
