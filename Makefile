# flowerbed: every target a developer or CI runs.
CARGO ?= cargo
PREFIX ?= /usr/local
# The Flower release the acceptance tests run against: the newest in the profile table.
FLWR_VERSION ?= $(shell scripts/flower-releases.sh | tail -n 1)
# The seed-era release: the oldest in the profile table.
FLWR_OLDEST ?= $(shell scripts/flower-releases.sh | head -n 1)

.PHONY: build test lint bench e2e install completions man fmt clean flwr-venv

build:
	$(CARGO) build --locked --release

# Unit and integration tests. Installs the pinned flwr into .venv/ first (cached).
test: flwr-venv
	FLOWERBED_FLWR_VENV=$(CURDIR)/.venv/flwr-$(FLWR_VERSION) $(CARGO) test --locked

flwr-venv:
	@scripts/flwr-venv.sh $(FLWR_VERSION) >/dev/null

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) bench --locked

# Live end-to-end: Docker engine (started if needed, stopped after), Compose v2, local Flower
# images (cached per release), then tests/e2e/scenarios for every release in the profile table,
# newest first (each scenario's "# flwr:" header picks the releases it applies to).
E2E_FLWR_VERSIONS ?= $(shell scripts/flower-releases.sh | tac)
e2e:
	E2E_FLWR_VERSIONS="$(E2E_FLWR_VERSIONS)" tests/e2e/run.sh $(E2E_SCENARIOS)

install:
	$(CARGO) install --locked --path . --root $(PREFIX)

completions: build
	mkdir -p target/completions
	for shell in bash zsh fish elvish powershell; do \
		target/release/flowerbed completions $$shell > target/completions/flowerbed.$$shell; done

man: build
	target/release/flowerbed man --out-dir target/man

clean:
	$(CARGO) clean

# Fuzz every parser for FUZZ_SECONDS each (libFuzzer via cargo-fuzz; stable toolchain
# with RUSTC_BOOTSTRAP for the sanitizer flags). Not part of `make test`.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= certificate_material compose_reader subject_names run_script_reader journal_reader
.PHONY: fuzz
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$target && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$target corpus/$$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done
