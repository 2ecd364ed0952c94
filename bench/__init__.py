"""`make bench`: the harness that measures every proxy's stack on this machine and judges the
goals of `stackgen.bench.goals` (run as `python -m bench.run` from the repository root).

Test infrastructure beside the product, not shipped in the wheel: it reads what it needs
about each proxy from stackgen's proxy registry (`bench.proxy_facts`), builds its images
with `tests/images/build.py` (a command, not an import), and writes every result under
`.cache/bench/` (or `BENCH_OUT`), never into the tracked tree. See bench/README.md.
"""
