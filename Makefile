# Two commands do all set-up on a fresh machine:
#   make bench [RECIPE=name] [RUNS=n] [SET="key=value ..."] [DATA=path] [RESULTS=csv]
#   make test
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.setup-stamp
RECIPE  ?=
RUNS    ?=
SET     ?=
DATA    ?=
RESULTS ?= results/results.csv
PYTEST_ARGS ?=
# Debian packages the suite runs for real (Chromium for the site, SLURM + munge for the cluster paths).
SYSTEM_PACKAGES ?= chromium chromium-driver slurm-wlm munge

.PHONY: setup system-packages bench test validate clean-venv

setup: $(STAMP)

# Re-installs only when pyproject.toml changes; the stamp makes a second `make setup` instant.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

bench: setup
	$(PY) -m bench run $(RECIPE) $(if $(RUNS),--runs $(RUNS)) $(foreach s,$(SET),--set $(s)) \
		$(if $(DATA),--data $(DATA)) --results $(RESULTS)

system-packages:
	@tests/setup/system_packages.sh $(SYSTEM_PACKAGES)

test: setup system-packages
	$(PY) -m pytest -q $(PYTEST_ARGS)

validate: setup
	$(PY) -m bench validate recipes/*.yaml recipes/*/*.yaml

clean-venv:
	rm -rf $(VENV)
