# Tripline. `make run`: set up, build (release) and run the main job on the samples.
#           `make test`: set up, lint, and run the whole test suite.
SWIFT ?= $(shell command -v swift || echo /opt/swift/usr/bin/swift)
export PATH := /opt/swift/usr/bin:$(PATH)
BIN = .build/release/tripline

.PHONY: run test setup build lint bench phonedata namedata clean

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release --product tripline

run: build
	$(BIN) check --config Examples/tripline.yaml
	$(BIN) match Examples/selectors.ndjson > /dev/null
	rm -f .tripline/state.sqlite* .tripline/alerts-*.ndjson
	$(BIN) serve --config Examples/tripline.yaml < Examples/selectors.ndjson
	@echo "--- .tripline/alerts-ops.ndjson (operating agency, brief template; partner content opaque where not entitled):"
	@python3 -c "import json; [print(json.loads(l).get('text', l.strip())) for l in open('.tripline/alerts-ops.ndjson')]"
	@echo "--- notifications per receiver:"
	@wc -l .tripline/alerts-*.ndjson

lint:
	$(SWIFT) format lint --strict -r Sources Tests Benchmarks

test:
	@bash scripts/setup.sh --peers
	$(MAKE) lint
	$(SWIFT) build --build-tests
	# One test at a time: the timing tests (deadlines, isolation) measure the service, not a cooperative pool of
	# two threads shared with the blocking process-driving tests.
	$(SWIFT) test --skip-build --no-parallel

bench: setup
	$(SWIFT) build -c release --product tripline-bench --product tripline
	.build/release/tripline-bench
	python3 scripts/bench_serve.py .build/release/tripline

# Regenerate the phone numbering-plan resources from the pinned phonenumbers package.
phonedata:
	@bash scripts/setup.sh --peers
	python3 scripts/gen_phone_metadata.py Sources/TriplineSelectors/Resources

namedata:
	python3 scripts/gen_name_variants.py

clean:
	rm -rf .build
