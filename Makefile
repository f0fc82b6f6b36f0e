# featcodec: two commands from a fresh machine.
#   make demo   create .venv, install everything, run the embedded demo
#   make test   same set-up if needed, then ruff + the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A known-good pair (torch 2.13.0+cpu with PyPI torchvision fails to import on
# some machines); override with e.g. make TORCH_SPEC="torch torchvision".
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.featcodec-installed
DEMO_OUT ?= demo-out

.PHONY: all install demo test test-fast bench lint clean

all: test

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.cpp csrc/*.cu csrc/*.h)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q setuptools wheel ninja
	$(BIN)/pip install -q $(TORCH_SPEC)
	# sam2's setup.py imports torch: no build isolation, and no CUDA extension.
	SAM2_BUILD_CUDA=0 $(BIN)/pip install -q --no-build-isolation "sam2>=1.0"
	# setup.py compiles csrc/ against the installed torch.
	$(BIN)/pip install -q --no-build-isolation -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/featcodec demo -o $(DEMO_OUT) --force

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m pytest bench -q --benchmark-only --benchmark-columns=median,iqr,ops

clean:
	rm -rf build *.egg-info codec/*.so $(DEMO_OUT)
