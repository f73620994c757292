# The dock agent's front door. See README.md.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X dock/agent.Version=$(VERSION)
OUT := build/out
DEMO_DIR ?= $(OUT)/demo
PROGRAMS := dockagent central dockctl
ARM_PKGS := ./queue/ ./health/ ./hw/... ./board/... ./uplink/wire/
export CGO_ENABLED ?= 0

.PHONY: demo test test-unit test-arm test-cross fuzz-smoke test-long cross bench-offload bench-uplink footprint deps clean

demo: ## the agent on a simulated dock, end to end; exits by itself
	$(GO) run -ldflags "-X dock/agent.Version=$(VERSION)" ./agent/cmd/dockdemo -dir $(DEMO_DIR)

deps:
	@bash build/deps.sh

test: deps test-unit fuzz-smoke test-arm test-cross ## everything CI runs

test-unit:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# The parsers of untrusted input, fuzzed briefly on every run (longer in test-long).
FUZZTIME ?= 10s
fuzz-smoke:
	$(GO) test -run '^$$' -fuzz '^FuzzDecoder$$' -fuzztime $(FUZZTIME) ./hw/camlink/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeReplies$$' -fuzztime $(FUZZTIME) ./hw/camlink/
	$(GO) test -run '^$$' -fuzz '^FuzzParseChunk$$' -fuzztime $(FUZZTIME) ./uplink/wire/

# Unit tests of the hardware-facing and durable packages, built for the boards and run
# under qemu-user: armv7 (32-bit, where Badger's allocator can wrap) and arm64.
test-arm:
	GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64-static $(ARM_PKGS)
	GOARCH=arm GOARM=7 $(GO) test -count=1 -exec qemu-arm-static $(ARM_PKGS)

# The ARM builds start under qemu-user and print their version.
test-cross:
	$(GO) test -count=1 -tags crosstest ./build/crosstest/

test-long: deps ## the slow runs: longer fuzzing, the long crash tests
	$(MAKE) fuzz-smoke FUZZTIME=2m
	DOCK_LONG=1 $(GO) test -count=1 -timeout 80m ./...

cross: ## linux/arm (v7), linux/arm64 and linux/amd64 binaries under build/out/<arch>/
	@for t in arm:7 arm64: amd64:; do \
	  arch=$${t%%:*}; arm=$${t##*:}; dir=$(OUT)/$$arch; mkdir -p $$dir; \
	  for p in $(PROGRAMS); do \
	    GOOS=linux GOARCH=$$arch GOARM=$$arm $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $$dir/$$p ./agent/cmd/$$p || exit 1; \
	  done; \
	  ls -l $$dir | awk 'NR>1 {printf "  %-8s %-10s %6.1f MB\n", "'$$arch'", $$9, $$5/1048576}'; \
	done

bench-offload: ## copy+hash into the spool against cp and cp+sha256sum
	bash build/bench-offload.sh

bench-uplink: ## upload through mosquitto against nginx PUT and raw TCP
	bash build/bench-uplink.sh

footprint: cross ## binary sizes, idle CPU, RSS idle and busy
	bash build/footprint.sh

clean:
	chmod -R u+w $(OUT) 2>/dev/null || true
	rm -rf $(OUT)
