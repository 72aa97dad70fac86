# paypath: the two set-up commands on a fresh Debian 12 machine are `make prove` and `make test`.
# Both install what is missing (apt), build, and start the private stack (scripts/stack) first.
BUILD ?= build
JOBS  ?= 2
STACK := scripts/stack
# Every target that talks to the servers loads their settings from here (written by `stack up`). It holds
# the stack's passwords, so it is written 0600 like $PAYPATH_STACK_DIR/secrets.env.
ENVFILE := $(BUILD)/stack.env

.PHONY: all deps build stack broker test prove prove-ha demo bench down down-ha clean

all: build

deps:
	bash scripts/deps.sh
	bash scripts/npm-deps.sh

build: deps
	@mkdir -p $(BUILD)
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo > $(BUILD)/cmake.log 2>&1 || { cat $(BUILD)/cmake.log; exit 1; }
	cmake --build $(BUILD) -j$(JOBS)

stack: deps
	@mkdir -p $(BUILD)
	rm -f $(ENVFILE).tmp && (umask 077 && touch $(ENVFILE).tmp) && $(STACK) up > $(ENVFILE).tmp && mv -f $(ENVFILE).tmp $(ENVFILE)

# The broker topology (exchange paypath.events, the ledger queue, its DLX and DLQ), declared as the admin:
# the services may only verify it, so every target that runs them needs it. Idempotent.
broker: build stack
	set -a && . ./$(ENVFILE) && $(BUILD)/paypath broker declare

# All tests: unit, integration and fault suites, against the real servers. Suites run one at a time
# because some of them stop and restart a server to simulate an outage.
test: build stack broker
	set -a && . ./$(ENVFILE) && cd $(BUILD) && ctest --output-on-failure --timeout 900

# The main job: 1000 logical charges through api, fault proxy, relay and consumer with duplicates, lost
# responses and crashes injected; prints the verdict and writes report/ (report.html, transcript, metrics).
PROVE_ARGS ?=
prove: build stack broker
	set -a && . ./$(ENVFILE) && $(BUILD)/paypath prove --report report $(PROVE_ARGS)

# Optional, a third command: the proof run on the clustered stack (scripts/stack-ha, docs/ha.md: a 3-node
# RabbitMQ cluster, PostgreSQL under Patroni with two synchronous-capable standbys and 3 etcd members) at
# about 100 charges/s, two processes of each kind, while every kind of member is SIGKILLed in turn and the
# PostgreSQL primary is partitioned away. The cluster keeps running afterwards (`make down-ha` stops it).
HA_ENVFILE := $(BUILD)/stack-ha.env
PROVE_HA_ARGS ?=
prove-ha: build
	rm -f $(HA_ENVFILE).tmp && (umask 077 && touch $(HA_ENVFILE).tmp) && $(STACK) up --ha > $(HA_ENVFILE).tmp && mv -f $(HA_ENVFILE).tmp $(HA_ENVFILE)
	set -a && . ./$(HA_ENVFILE) && $(BUILD)/paypath broker declare && \
	  $(BUILD)/paypath prove --scenario ha --database paypath_prove_ha --report report-ha $(PROVE_HA_ARGS)

down-ha:
	$(STACK) down --ha

# A short curl-style demo of the API: created, 409 in flight, replay, 422.
demo: build stack broker
	set -a && . ./$(ENVFILE) && bash scripts/demo.sh $(BUILD)/paypath

# Benchmarks against the limits of paypath's own dependencies; writes bench/results.md (~4-5 minutes).
bench: build stack broker
	set -a && . ./$(ENVFILE) && BUILD=$(BUILD) bash bench/run.sh

down:
	$(STACK) down

clean:
	rm -rf $(BUILD)
