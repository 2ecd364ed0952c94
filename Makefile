# stackgen — developer and CI entry points. `make demo` and `make test` are the README's
# two commands on a fresh machine; both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROXY ?= traefik
SUBPATH ?=
# Client options of the demo stack: HTTP2=0 turns h2 off, HTTP3=1 adds QUIC (Caddy, Traefik),
# IPV6=1 makes it dual-stack.
HTTP2 ?= 1
HTTP3 ?= 0
IPV6 ?= 0
DEMO_DIR ?= demo
TLS ?= http
# TARGET=swarm: the demo stack on this engine as a single-node swarm (docker stack deploy);
# TARGET=edge-home: an edge and a home stack joined by WireGuard (demo/edge, demo/home).
TARGET ?= compose
# ACCESS=gate: the token gate on (docs/access.md).
ACCESS ?=

.PHONY: help venv tools lint unit engine images test test-swarm test-edge golden demo demo-down wheel clean bench bench-lan bench-wan bench-report

help:
	@echo "make demo      real stack on this machine (PROXY=traefik SUBPATH=/jellyfin TLS=dns HTTP2=0 HTTP3=1 IPV6=1 TARGET=swarm|edge-home ACCESS=gate optional)"
	@echo "make demo-down remove the demo stack"
	@echo "make test      lint + unit + integration tests (installs engine, images, Pebble)"
	@echo "make unit      fast tests, no Docker"
	@echo "make test-swarm multi-node swarm of Docker-in-Docker nodes (~3-5 min; SWARM_PROXIES=nginx)"
	@echo "make test-edge edge/home hosts joined by userspace WireGuard behind an outbound-only NAT (~1 min)"
	@echo "make golden    rewrite golden files after an intended change"
	@echo "make bench     every proxy vs Jellyfin direct, the TLS ceiling and the docs configs"
	@echo "make bench-lan, bench-wan   the same behind a LAN (1 GbE, 0.5 ms) or WAN (40 ms, 0.1 % loss, 100 Mbit) profile"
	@echo "               (~30 min; BENCH_PROXIES=nginx BENCH_SIZE=64 BENCH_PAIRS=2 for a short run)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# Third-party tools the tests run (sslyze pins its own cryptography: kept apart).
TOOLS := .cache/tools-venv
$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet 'sslyze>=6,<7'
	touch $@

tools: $(TOOLS)/.installed

lint: venv
	$(VENV)/bin/ruff check stackgen tests bench
	$(VENV)/bin/ruff format --check stackgen tests bench
	$(VENV)/bin/mypy stackgen bench

unit: venv
	$(VENV)/bin/pytest -q tests/unit

golden: venv
	STACKGEN_UPDATE_GOLDEN=1 $(VENV)/bin/pytest -q tests/unit/test_golden.py

engine:
	bash tests/infra/engine.sh

# Built, then checked against the official images' contract: each image's own smoke
# commands (`build.py --check`) and the running checks of tests/infra/smoke-images.sh.
images: venv engine
	$(PY) tests/images/build.py --check
	bash tests/infra/smoke-images.sh

# Integration tests on two workers: each takes its own slot (ports, Pebble, subnet).
JOBS ?= 2
test: venv tools lint engine images
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(JOBS) tests/integration

# A real multi-node swarm (Docker-in-Docker nodes) on this machine: docs/swarm-multinode.md.
# Too slow for CI's `make test`; one process (the cluster is per session).
SWARM_PROXIES ?= traefik,nginx,caddy
test-swarm: venv engine
	STACKGEN_SWARM_PROXIES=$(SWARM_PROXIES) $(VENV)/bin/pytest -q -p no:cacheprovider tests/swarm

# An edge and a home host joined by userspace WireGuard, the home behind an outbound-only
# NAT (docs/edge-home.md). Root only (/dev/net/tun, NET_ADMIN); not in `make test`.
test-edge: venv engine
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/edge

demo: venv
	PROXY=$(PROXY) SUBPATH=$(SUBPATH) TLS=$(TLS) HTTP2=$(HTTP2) HTTP3=$(HTTP3) IPV6=$(IPV6) \
		TARGET=$(TARGET) ACCESS=$(ACCESS) DEMO_DIR=$(DEMO_DIR) bash tests/infra/demo.sh

demo-down: venv
	DEMO_DIR=$(DEMO_DIR) bash tests/infra/demo-down.sh

wheel: venv
	$(PY) -m build --wheel --outdir dist .

# Root only (network namespace, cgroup statistics). Knobs, read by bench/run.py:
# BENCH_PROXIES BENCH_CONFIGS BENCH_HTTP BENCH_SIZE (MiB) BENCH_PAIRS BENCH_API_SECONDS
# BENCH_STREAMS BENCH_STREAM_SECONDS BENCH_BITRATE (Mbit/s) BENCH_OUT (results folder,
# default .cache/bench/results: never the tracked tree) BENCH_SLOT (0..9: two runs on one
# engine take different slots; see bench/README.md). Writes the run's JSON, REPORT.md
# and plots there; exit 1 lists the goals missed. bench-report judges that folder again.
bench: venv engine images
	$(PY) -m bench.run

# The network profiles (bench/netem.py: a netem qdisc on the client's veth pair; the kernel
# needs sch_netem), HTTP/1.1 and h2 each, into their own results folders.
bench-lan: venv engine images
	BENCH_NETWORK=lan BENCH_OUT=$(or $(BENCH_OUT),.cache/bench/results-lan) $(PY) -m bench.run

bench-wan: venv engine images
	BENCH_NETWORK=wan BENCH_OUT=$(or $(BENCH_OUT),.cache/bench/results-wan) $(PY) -m bench.run

bench-report: venv
	$(PY) -m bench.run --report $(BENCH_OUT)

clean:
	rm -rf dist build .mypy_cache .ruff_cache .pytest_cache
