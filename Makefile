# docchat: `make run` builds, installs and starts a local PostgreSQL with docchat and shows it
# working; `make test` runs every test. Both set up whatever is missing first.
.PHONY: run stop test setup install
run:
	bash scripts/run.sh
stop:
	bash scripts/stop.sh
test:
	bash scripts/test.sh
setup:
	bash scripts/setup.sh
install: setup
	bash scripts/install.sh
