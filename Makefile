# Tripline. `make run`: set up, build (release) and tell the samples' story (the API on loopback, a list submitted
#           over HTTP, the samples streamed in, the alerts, who was told, the signed checkpoint).
#           `make test`: set up, lint, and run the whole test suite.
SWIFT ?= $(shell command -v swift || echo /opt/swift/usr/bin/swift)
export PATH := /opt/swift/usr/bin:$(PATH)
BIN = .build/release/tripline

.PHONY: run test setup build lint bench fuzz phonedata namedata clean

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release --product tripline

run: build
	python3 scripts/demo.py $(BIN)

lint:
	$(SWIFT) format lint --strict -r Sources Tests Benchmarks Fuzz/Sources Fuzz/Package.swift

test:
	@bash scripts/setup.sh --peers
	$(MAKE) lint
	$(SWIFT) build --build-tests
	# One test at a time: the timing tests (deadlines, isolation) measure the service, not a cooperative pool of
	# two threads shared with the blocking process-driving tests.
	$(SWIFT) test --skip-build --no-parallel
	# Every parser's fuzz target for a few seconds (parser modules only, no NIO), and the record step's budget.
	bash scripts/fuzz.sh --smoke

# Each fuzz target for FUZZ_SECONDS (default 60), the HTTP API's included; one line per target (Fuzz/README.md).
fuzz:
	bash scripts/fuzz.sh

bench:
	@bash scripts/setup.sh --bench
	@bash scripts/setup.sh --peers
	$(SWIFT) build -c release --product tripline-bench --product tripline
	.build/release/tripline-bench
	python3 Benchmarks/bench_rules.py .build/release/tripline-bench
	python3 Benchmarks/bench_match.py .build/release/tripline
	python3 scripts/bench_serve.py .build/release/tripline
	python3 scripts/bench_api.py .build/release/tripline
	python3 Benchmarks/bench_nodes.py .build/release/tripline

# Regenerate the phone numbering-plan resources from the pinned phonenumbers package.
phonedata:
	@bash scripts/setup.sh --peers
	python3 scripts/gen_phone_metadata.py Sources/TriplineSelectors/Resources

namedata:
	python3 scripts/gen_name_variants.py

clean:
	rm -rf .build
