# lookout: `make demo` and `make test` work on a fresh Debian 12 machine.
# Every tool and cache lives under .state/ (ignored; safe to delete).

SHELL := /bin/bash
STATE := $(CURDIR)/.state
export LOOKOUT_ORT_LIB ?= $(STATE)/ort/libonnxruntime.so
export GOFLAGS := -buildvcs=false
# OpenCV reads this when it loads; it keeps its own warnings out of JSON logs.
export OPENCV_LOG_LEVEL ?= ERROR
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN := bin/lookout
PY := $(STATE)/venv/bin/python
CKPT ?=
FUZZTIME ?= 10s

.PHONY: all deps deps-go deps-py build test test-go test-py test-soak test-capacity test-demo fuzz vet demo model export golden bench bench-models soak chaos capacity page-cost clean

all: build

## deps: install everything build and tests need (apt, ONNX Runtime, Kafka jars, real sample footage, venv)
deps: deps-go deps-py

deps-go:
	scripts/deps-apt.sh
	scripts/ort.sh
	scripts/kafka.sh fetch
	scripts/realdata.sh

deps-py:
	scripts/venv.sh

build: deps-go
	go build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/lookout

vet:
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

## test: everything CI runs: Go unit and integration tests against the real Kafka,
## RTSP server and ONNX models, the Python training tests, and short fuzz runs.
test: build deps-py vet test-go test-py fuzz test-soak test-capacity test-demo

test-go:
	scripts/test-go.sh

test-py:
	cd training && $(PY) -m pytest -q

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

## test-soak: the 2-minute soak (make soak runs 30 minutes)
test-soak: build
	scripts/soak.sh 2m 10s

## test-capacity: the short capacity check: 4 real-time sources per decode mode against
## ffmpeg in the same run; fails only at twice the documented ratio (docs/CAPACITY.md)
test-capacity: build
	scripts/capacity.py --quick

## test-demo: make demo, shortened, must print captions of all four cameras
test-demo: build
	DEMO_SECONDS=10 scripts/demo.sh | tee $(STATE)/demo-test.out
	@for cam in road-1 road-2 lot-1 lot-2; do grep -q " $$cam  pts=" $(STATE)/demo-test.out || { echo "test-demo: no caption from $$cam"; exit 1; }; done

## page-cost: lookout's CPU with the status page closed, open, closed (16 sources; docs/STATUS.md; about 2 minutes)
page-cost: build
	LOOKOUT_PAGE_COST=1 go test -count=1 -run 'TestE2EStatusPageCost$$' -v ./e2e/

## demo: start a local Kafka, caption four synthetic cameras, print captions read back from Kafka
demo: build
	scripts/demo.sh

## model: reproduce models/demo from scratch (about 20-35 minutes on 2 cores)
model: build deps-py
	scripts/train-demo.sh

## export: export a local VisionEncoderDecoder checkpoint: make export CKPT=path [OUT=dir] [EXPORT_FLAGS="--layout merged --no-optimize"]
export: deps-py
	@test -n "$(CKPT)" || { echo "usage: make export CKPT=path/to/checkpoint [OUT=dir] [EXPORT_FLAGS=...]"; exit 2; }
	PYTHONPATH=training $(PY) -m lookout_train export --ckpt "$(CKPT)" --out "$(or $(OUT),$(STATE)/export)" $(EXPORT_FLAGS)

## golden: regenerate the golden outputs the Go engine is tested against
golden: build deps-py
	scripts/golden.sh

## bench: Go engine vs optimum vs PyTorch vs the raw ONNX Runtime bound on the golden images (docs/BENCHMARKS.md);
## PyTorch joins once `make model` has left its checkpoint in .state/runs/demo/ckpt; BENCH_FLAGS adds flags
bench: build deps-py
	$(PY) scripts/bench-python.py --model models/demo --threads 1 \
		$(if $(wildcard $(STATE)/runs/demo/ckpt),--pytorch $(STATE)/runs/demo/ckpt,--skip pytorch) $(BENCH_FLAGS)

## bench-models: CPU per caption of random-weight ViT-GPT2 base and Florence-2 base (and the tiny fixtures) through
## lookout caption on a 720p clip, batch 1 and 8 (docs/MODELS.md); builds the models once into .state/basebench
## (about 3 GB of ONNX graphs); BENCH_MODELS_FLAGS adds flags (--seconds 10, --only tiny-vit-gpt2)
bench-models: build deps-py
	$(PY) scripts/bench-models.py $(BENCH_MODELS_FLAGS)

soak: build
	scripts/soak.sh 30m 60s

## chaos: 10 minutes of random SIGKILLs and restarts of 3-4 fleet instances plus a broker
## restart, then the accounting (docs/SCALING.md); make test runs the 2-minute version
chaos: build
	LOOKOUT_FLEET_CHAOS=10m go test -count=1 -timeout 30m -run 'TestE2EFleetChaos$$' -v ./e2e/

## capacity: cameras per core beside ffmpeg's decode limit (docs/CAPACITY.md; about 15 minutes)
capacity: build
	scripts/capacity.py

clean:
	rm -rf bin
