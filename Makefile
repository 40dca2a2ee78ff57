# Two commands do all set-up on a fresh machine:
#   make bench [RECIPE=name] [RUNS=n] [SET="key=value ..."] [DATA=path] [RESULTS=csv] [REPORTS=folder]
#   make test
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.setup-stamp
RECIPE  ?=
RUNS    ?=
SET     ?=
DATA    ?=
RESULTS ?= results/results.csv
# Report bundles: by default a reports folder beside $(RESULTS) (bench run decides it: results/reports here).
REPORTS ?=
PYTEST_ARGS ?= --durations=30
# Debian packages the suite runs for real (Chromium for the site, SLURM + munge for the cluster paths,
# PostgreSQL for bench tune --storage shared by several nodes).
SYSTEM_PACKAGES ?= chromium chromium-driver slurm-wlm munge postgresql

.PHONY: setup system-packages bench test validate mutation clean-venv

setup: $(STAMP)

# Re-installs only when pyproject.toml changes; the stamp makes a second `make setup` instant.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

bench: setup
	$(PY) -m bench run $(RECIPE) $(if $(RUNS),--runs $(RUNS)) $(foreach s,$(SET),--set $(s)) \
		$(if $(DATA),--data $(DATA)) --results $(RESULTS) $(if $(REPORTS),--reports $(REPORTS))

system-packages:
	@tests/setup/system_packages.sh $(SYSTEM_PACKAGES)

test: setup system-packages
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Mutation testing (mutmut) over the modules that decide recorded numbers, one module at a time with the fast
# tests that cover it; outside `make test` and CI (all nine modules: 73 minutes on the 2-core VM).
# Scores: tests/README.md.
#   make mutation [MUTATION_MODULES=clock,stats] [MUTATION_JOBS=2]
MUTATION_MODULES ?=
MUTATION_JOBS ?= 2
mutation: setup
	$(PY) -c "import mutmut" 2>/dev/null || $(PY) -m pip install -q 'mutmut>=3.8'
	$(PY) tests/mutation/run.py --jobs $(MUTATION_JOBS) $(if $(MUTATION_MODULES),--modules $(MUTATION_MODULES))

validate: setup
	$(PY) -m bench validate recipes/*.yaml recipes/*/*.yaml

clean-venv:
	rm -rf $(VENV)
