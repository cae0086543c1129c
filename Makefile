# Top-level entry points. `make deps` installs Debian packages (idempotent,
# as root or with sudo); `make build` configures and builds into build/;
# `make test` builds and runs ctest; `make train` runs the main job.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= 2
CMAKE_ARGS ?=
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

APT_PACKAGES := build-essential cmake ccache pkg-config git \
  libprotobuf-dev protobuf-compiler libonnx-dev libabsl-dev libdnnl-dev \
  libgtest-dev libgmock-dev libbenchmark-dev libopenmpi-dev openmpi-bin \
  libtomlplusplus-dev zlib1g-dev libjpeg62-turbo-dev dataset-fashion-mnist \
  python3 python3-pip clang-format

.PHONY: all deps build test train clean format

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "all Debian packages present"; fi

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS)

# The main job: distributed LASGD training of the zoo CNN on Fashion-MNIST
# (Debian's dataset-fashion-mnist) on TRAIN_RANKS ranks under mpirun, printing
# progress and the final test accuracy.
TRAIN_CONFIG ?= zoo/fashion-mnist/config.toml
TRAIN_ARGS ?=
TRAIN_RANKS ?= 2
MPIRUN ?= mpirun --bind-to none --oversubscribe $(if $(SUDO),,--allow-run-as-root) -np $(TRAIN_RANKS)
train: build
	$(MPIRUN) $(BUILD_DIR)/bin/lasgd-run train $(TRAIN_CONFIG) $(TRAIN_ARGS)

format:
	git ls-files '*.cc' '*.h' '*.cu' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR)
