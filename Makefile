# The dock agent's front door. See README.md.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The agent never trusts a clock that reads earlier than its build (see agent/clock.go).
BUILD_TIME ?= $(shell git log -1 --format=%cI 2>/dev/null)
LDFLAGS := -s -w -X dock/agent/version.Version=$(VERSION) -X dock/agent/version.BuildTime=$(BUILD_TIME)
# Debian versions start with a digit: 0.1.0+git<commits>.g<hash> until releases are tagged.
PKG_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null); if [ -n "$$v" ]; then echo $${v\#v}; else echo 0.1.0+git$$(git rev-list --count HEAD 2>/dev/null || echo 0).g$$(git rev-parse --short HEAD 2>/dev/null || echo 0); fi)
NFPM := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
OUT := build/out
DEMO_DIR ?= $(OUT)/demo
PROGRAMS := dockagent central dockctl docksmoke
export CGO_ENABLED ?= 0

.PHONY: package test-package demo run test test-unit test-race test-vm test-vm-long vm-rootfs test-arm test-cross fuzz-smoke test-long cross bench-offload bench-uplink footprint deps clean

demo: ## the agent on a simulated dock, end to end; exits by itself
	$(GO) run -ldflags "-X dock/agent/version.Version=$(VERSION)" ./agent/cmd/dockdemo -dir $(DEMO_DIR)

# Central with its web console, an embedded broker and two simulated docks, until Ctrl-C:
# prints the console's address and a one-time admin password.
RUN_DIR ?= $(OUT)/run
RUN_ADDR ?= 127.0.0.1:8080
run: ## central, its console and simulated docks; until Ctrl-C
	$(GO) run -ldflags "-X dock/agent.Version=$(VERSION)" ./agent/cmd/consolerun -dir $(RUN_DIR) -addr $(RUN_ADDR)

deps:
	@bash build/deps.sh

test: deps test-unit test-race test-vm fuzz-smoke test-arm test-cross test-package ## everything CI runs

test-unit:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	cd uplink/tempfork/paho.mqtt.golang && $(GO) test -count=1 -timeout 5m . ./packets/

# The packages with goroutines of their own, again under the race detector (it needs cgo:
# gcc and libc6-dev, which .ci/run installs). The crash test's agent process runs as built
# for the plain run above.
RACE_PKGS := ./agent ./agent/simrun ./queue/... ./uplink/... ./hw/... ./board/...
test-race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)

# The real hw package on an emulated arm64 board (hw/vmtest): a trixie-backports kernel with
# gpio-sim under qemu-system-aarch64, cameras on emulated UARTs. Fetches qemu and the kernel
# first (build/vm/fetch-kernel.sh, cached in build/out/vm); the test skips, saying why, only
# when they cannot be had.
test-vm:
	bash build/vm/fetch-kernel.sh || echo "test-vm: no qemu-system-aarch64 or kernel: the VM test will skip" >&2
	$(GO) test -count=1 -timeout 5m -v -run '^TestDockBoardInVM$$' ./hw/vmtest/

# Level 2: the shipped .deb on the emulated arm64 board (build/vm): a Debian arm64 root file
# system (build/vm/build-rootfs.sh: mmdebstrap through qemu-user-static, cached in
# build/out/vm), the package installed with dpkg -i and its service online at central;
# cameras hot-plugged over QMP (USB serial and storage on a bay's port), one undocked
# mid-offload, systemctl stop during an upload; 20 power cuts (qemu SIGKILLed) at random
# moments of offload and upload (DOCK_VM_CUTS=n for another count, DOCK_SEED replays).
# DOCK_VM_LOCK=<file> takes that flock(1) lock for the boots, yielding it every 8 minutes
# between boots (never with the same lock already held around make).
vm-rootfs:
	bash build/vm/build-rootfs.sh || echo "vm-rootfs: no root file system for the emulated board: its tests will skip" >&2

test-vm-long: package vm-rootfs
	DOCK_LONG=1 $(GO) test -count=1 -timeout 120m -v ./build/vm/

# The parsers of untrusted input, fuzzed briefly on every run (longer in test-long). The
# budget is a count of executions, not a duration: Go 1.26's fuzz coordinator can fail a
# target with "context deadline exceeded" when a duration ends (go.dev/issue/75804).
FUZZTIME ?= 200000x
fuzz-smoke:
	$(GO) test -run '^$$' -fuzz '^FuzzDecoder$$' -fuzztime $(FUZZTIME) ./hw/camlink/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeReplies$$' -fuzztime $(FUZZTIME) ./hw/camlink/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckName$$' -fuzztime $(FUZZTIME) ./hw/camlink/
	$(GO) test -run '^$$' -fuzz '^FuzzListing$$' -fuzztime $(FUZZTIME) ./hw/camlink/
	$(GO) test -run '^$$' -fuzz '^FuzzParseChunk$$' -fuzztime $(FUZZTIME) ./uplink/wire/

# The whole test suite built for the boards and run under qemu-user: arm64 and armv7
# (32-bit, where Badger's allocator can wrap). The crash test's agent process and the
# brokers run natively; everything the tests themselves do runs emulated.
test-arm:
	GOARCH=arm64 $(GO) test -count=1 -timeout 20m -exec qemu-aarch64-static ./...
	GOARCH=arm GOARM=7 $(GO) test -count=1 -timeout 20m -exec qemu-arm-static ./...

# The ARM builds start under qemu-user and print their version.
test-cross:
	$(GO) test -count=1 -tags crosstest ./build/crosstest/

test-long: deps package vm-rootfs ## the slow runs: longer fuzzing, the long crash tests, the emulated board with the .deb
	$(MAKE) fuzz-smoke FUZZTIME=5000000x
	DOCK_LONG=1 $(GO) test -count=1 -timeout 150m ./...

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

package: cross ## .deb packages for armhf, arm64 and amd64 (nfpm), version from git
	@for t in arm:armhf arm64:arm64 amd64:amd64; do \
	  sed -e "s|\$${ARCH}|$${t##*:}|; s|\$${GOARCH_DIR}|$${t%%:*}|g; s|\$${VERSION}|$(PKG_VERSION)|" build/package/nfpm.yaml > $(OUT)/nfpm-$${t##*:}.yaml; \
	  $(GO) run $(NFPM) pkg --packager deb --config $(OUT)/nfpm-$${t##*:}.yaml --target $(OUT)/ || exit 1; \
	done

# The packages hold what they must, for every architecture.
test-package: package
	@for a in armhf arm64 amd64; do \
	  deb=$$(ls $(OUT)/dock-agent_*_$$a.deb | tail -1); list=$$(dpkg-deb -c $$deb); \
	  for f in ./usr/bin/dockagent ./usr/bin/dockctl ./lib/systemd/system/dock-agent.service ./etc/dock-agent/config.json ./var/lib/dock-agent/ ./lib/udev/rules.d/70-dock-bays.rules ./usr/lib/modules-load.d/dock-agent.conf; do \
	    grep -q " $$f$$" <<< "$$list" || { echo "$$deb lacks $$f"; exit 1; }; \
	  done; \
	  [ "$$(dpkg-deb -f $$deb Architecture)" = $$a ] || { echo "$$deb is not $$a"; exit 1; }; \
	  echo "$$deb: contents and architecture ok"; \
	done

clean:
	chmod -R u+w $(OUT) 2>/dev/null || true
	rm -rf $(OUT)
