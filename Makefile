# ramboot: `make image BOARD=rpi4` builds a Pi 4 netboot tree in out/rpi4;
# `make test` installs what the tests need and runs them all.

BOARD    ?= rpi4
comma    := ,
OUT      ?= out/$(subst $(comma),-,$(BOARD))
OVERLAYS ?=
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/ramboot

.PHONY: all image rootfs serve demo test unit e2e bench storm deps deb fuzz clean $(BIN)

all: $(BIN)

$(BIN):
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ramboot

## image: build the boot tree for BOARD (rpi4, pc, virt; or several, BOARD=rpi4,pc, for a mixed rack) into OUT; OVERLAYS=dir1,dir2 adds files
image: $(BIN)
	./$(BIN) build --board $(BOARD) --out $(OUT) $(if $(OVERLAYS),--overlay $(OVERLAYS))

## rootfs: build the root image nodes run from RAM (Debian, or FROM=dir|tarball) into OUT/images; INCLUDE=pkg,pkg adds packages
FROM    ?=
INCLUDE ?=
rootfs: $(BIN)
	./$(BIN) rootfs --board $(BOARD) --out $(OUT) $(if $(OVERLAYS),--overlay $(OVERLAYS)) $(if $(FROM),--from $(FROM)) $(if $(INCLUDE),--include $(INCLUDE))

## serve: serve out/BOARD on IFACE (proxyDHCP next to your router); NODES=nodes.yaml optional
IFACE ?=
NODES ?=
serve: $(BIN)
	@test -n "$(IFACE)" || { echo "make serve needs IFACE=<the interface the Pis are on>"; exit 2; }
	./$(BIN) serve --root $(OUT) --interface $(IFACE) $(if $(NODES),--nodes $(NODES))

## demo: build the virt image and netboot a QEMU guest from ramboot serve in a network namespace
demo: $(BIN) deps
	bash e2e/demo.sh

## deb: the Debian package (the binary, the systemd units, an example /etc/ramboot/serve.yaml, a man page) into DEB_OUT (out/deb); DEB_ARCH=arm64 builds one for arm64
DEB_ARCH ?= $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_OUT  ?= out/deb
deb:
	GOOS=linux GOARCH=$(DEB_ARCH) CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DEB_OUT)/ramboot-$(DEB_ARCH) ./cmd/ramboot
	bash dist/deb/build.sh $(DEB_OUT)/ramboot-$(DEB_ARCH) $(VERSION) $(DEB_ARCH) $(DEB_OUT)

## deps: install QEMU (bookworm-backports), fdtput and the real peers the tests use
deps:
	bash e2e/deps.sh

## test: every test, unit and end-to-end (QEMU boots), after installing what they need
# The virt build first: it is the README's build path, and it leaves the
# verified kernel package unpacked in the cache for the real-tree module
# tests. The real-archive test of kernel/apt runs too (RAMBOOT_NET_TESTS).
# The Debian roots of the root images build in the background meanwhile
# (an arm64 one runs its package scripts under qemu-user for minutes); the
# e2e tests that boot them wait on the cache's lock and find them built.
# One test binary at a time (-p 1), so that the root builds get the other core.
# The e2e packages share one run directory (RAMBOOT_E2E_RUN, e2e/cache): the
# boot trees and root images are built there once, by the first test binary
# that needs them, under a file lock; they run bin/ramboot (RAMBOOT_BIN).
# The e2e scenario packages (e2e/README.md) run one test binary each, each
# with its own -timeout, in two lanes: a QEMU guest in software emulation
# keeps one core busy and leaves the other mostly idle, so lane B
# (E2E_LANE_B) runs beside the unit tests and lane A (E2E_LANE_A) after
# them; in each lane the packages that boot root images come last, so that
# the background builds are done. Lane B's output is kept in
# out/test-lane-b.log and added to out/test.log when both are done.
CACHE_DIR  = $${XDG_CACHE_HOME:-$$HOME/.cache}/ramboot
E2E_RUN    = out/e2e-run
E2E_LANE_A = image:15m boot:25m serve:30m hostile:20m power:10m
E2E_LANE_B = pc:25m install:35m ramroot:35m
E2E_TESTS  = $(E2E_LANE_A) $(E2E_LANE_B)
empty     :=
space     := $(empty) $(empty)
E2E_NAMES = $(subst $(space),|,$(foreach t,$(E2E_TESTS),$(firstword $(subst :, ,$(t)))))
test: deps $(BIN)
	$(GO) vet ./...
	$(GO) mod tidy -diff
	./$(BIN) build --board virt --out out/test-virt --quiet
	release=$$(sed -n 's/.*"release": "\(.*\)".*/\1/p' out/test-virt/manifest.json | head -1); \
	tree=$$(ls -d $(CACHE_DIR)/extract/*/usr/lib/modules/$$release $(CACHE_DIR)/extract/*/lib/modules/$$release 2>/dev/null | head -1); \
	test -n "$$tree" || { echo "no unpacked kernel $$release in $(CACHE_DIR)"; exit 1; }; \
	( ./$(BIN) rootfs --board virt --out out/test-virt --quiet && ./$(BIN) rootfs --board pc --out out/test-pc --quiet ) >out/test-rootfs.log 2>&1 & \
	rm -rf $(E2E_RUN) out/e2e-logs && mkdir -p $(E2E_RUN); \
	pkgs=$$($(GO) list ./... | grep -v -E '/e2e/($(E2E_NAMES))$$'); \
	{ export RAMBOOT_STRICT=1 RAMBOOT_NET_TESTS=1 RAMBOOT_KERNEL_TREE=$$tree RAMBOOT_E2E_RUN=$(CURDIR)/$(E2E_RUN) RAMBOOT_E2E_LOGS=$(CURDIR)/out/e2e-logs RAMBOOT_BIN=$(CURDIR)/$(BIN); \
	  echo 0 >out/test-lane-b.rc; \
	  ( for t in $(E2E_LANE_B); do $(GO) test -v -count=1 -timeout $${t#*:} ./e2e/$${t%%:*}/ || echo 1 >out/test-lane-b.rc; done ) >out/test-lane-b.log 2>&1 & laneb=$$!; \
	  rc=0; $(GO) test -v -p 1 -count=1 -timeout 20m $$pkgs || rc=1; \
	  for t in $(E2E_LANE_A); do $(GO) test -v -count=1 -timeout $${t#*:} ./e2e/$${t%%:*}/ || rc=1; done; \
	  echo "== lane A done; waiting for lane B ($(E2E_LANE_B))"; wait $$laneb; \
	  echo "== lane B (out/test-lane-b.log)"; cat out/test-lane-b.log; \
	  test "$$(cat out/test-lane-b.rc)" = 0 || rc=1; \
	  echo $$rc >out/test.rc; } 2>&1 | tee out/test.log; \
	rm -rf $(E2E_RUN)
	@echo "== the 15 slowest tests (out/test.log has them all)"
	@awk '/^--- (PASS|FAIL)/ { t = $$4; gsub(/[()s]/, "", t); printf "%8.1fs  %-5s %s\n", t, substr($$2, 1, length($$2) - 1), $$3 } \
		/^(ok|FAIL)[ \t]+github.com/ { t = $$3; sub(/s$$/, "", t); total += t } \
		END { printf "%8.1fs  total of the packages\n", total > "/dev/stderr" }' out/test.log 2>out/test.total | sort -rn | head -15; cat out/test.total
	@exit $$(cat out/test.rc)

## unit: the fast tests only (-short: no downloads, no QEMU, no lab; about a minute)
# The switches of `make test` are unset: nothing here talks to the archive,
# and what cannot run here skips.
unit:
	env -u RAMBOOT_STRICT -u RAMBOOT_NET_TESTS $(GO) test -count=1 -short -timeout 5m ./...

## bench: build times and sizes against u-root's own image tool, in one run
# RAMBOOT_STRICT=1: a benchmark that cannot run (no root, a peer missing)
# fails instead of skipping.
bench: deps
	rm -rf out/e2e-bench && mkdir -p out/e2e-bench && \
	RAMBOOT_STRICT=1 RAMBOOT_E2E_RUN=$(CURDIR)/out/e2e-bench $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 50m ./e2e/...; \
	rc=$$?; rm -rf out/e2e-bench; exit $$rc

## storm: the boot-storm benchmark alone (BenchmarkStorm): N=100,250 simulated Pi 4s at once against ramboot serve and dnsmasq + nginx, the link shaped to 1 Gbit/s; IMAGE_MB=32 the root image
N        ?= 100,250
IMAGE_MB ?= 32
storm: deps $(BIN)
	rm -rf out/e2e-storm && mkdir -p out/e2e-storm && \
	STORM_N=$(N) STORM_IMAGE_MB=$(IMAGE_MB) RAMBOOT_STRICT=1 RAMBOOT_E2E_RUN=$(CURDIR)/out/e2e-storm RAMBOOT_BIN=$(CURDIR)/$(BIN) \
	  $(GO) test -run '^$$' -bench '^BenchmarkStorm$$' -benchtime 1x -timeout 60m ./e2e/bench/; \
	rc=$$?; rm -rf out/e2e-storm; exit $$rc

## fuzz: run every fuzz target in the module for a while each (FUZZTIME=30s)
# The targets are listed by `go test -list`, so a new Fuzz function runs
# without an edit here; -fuzz takes one target per run.
FUZZTIME ?= 30s
fuzz:
	@list=$$(mktemp); trap 'rm -f $$list' EXIT; \
	$(GO) test -list '^Fuzz' ./... >$$list || { cat $$list; exit 1; }; \
	targets=$$(awk '/^Fuzz/ { f = f " " $$1 } /^ok / { n = split(f, a, " "); for (i = 1; i <= n; i++) print $$2 ":" a[i]; f = "" }' $$list); \
	test -n "$$targets" || { echo "no fuzz targets found"; exit 1; }; \
	for t in $$targets; do \
		echo "== $${t#*:} ($${t%%:*}) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) $${t%%:*} || exit 1; \
	done

clean:
	rm -rf bin out
