# Tripline. `make run`: set up, build (release) and run the main job on the samples.
#           `make test`: set up, lint, and run the whole test suite.
SWIFT ?= $(shell command -v swift || echo /opt/swift/usr/bin/swift)
export PATH := /opt/swift/usr/bin:$(PATH)
BIN = .build/release/tripline

.PHONY: run test setup build lint bench phonedata clean

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release --product tripline

run: build
	$(BIN) check
	$(BIN) match Examples/selectors.ndjson

lint:
	$(SWIFT) format lint --strict -r Sources Tests Benchmarks

test:
	@bash scripts/setup.sh --peers
	$(MAKE) lint
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

bench: setup
	$(SWIFT) build -c release --product tripline-bench --product tripline
	.build/release/tripline-bench

# Regenerate the phone numbering-plan resources from the pinned phonenumbers package.
phonedata:
	@bash scripts/setup.sh --peers
	python3 scripts/gen_phone_metadata.py Sources/TriplineSelectors/Resources

clean:
	rm -rf .build
