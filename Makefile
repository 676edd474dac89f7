# scorekeeper — build, run and test from nothing.
#
# Tools (the Temporal CLI, linters) are installed into .tools/bin, which git
# ignores, and reused when present.

GO            ?= go
TOOLS         := $(CURDIR)/.tools/bin
TEMPORAL_VER  := v1.5.1
TEMPORAL      := $(TOOLS)/temporal
# The Temporal server the CLI embeds, built from its module for the tests
# against a real Temporal Service (e2e/realtemporal_test.go): the server
# and its SQL tool, with the module's schemas beside them.
TEMPORAL_SERVER_VER := v1.29.1
TEMPORAL_SERVER_DIR := $(CURDIR)/.tools/temporal-server
TEMPORAL_SERVER     := $(TEMPORAL_SERVER_DIR)/bin/temporal-server
STATICCHECK   := $(TOOLS)/staticcheck
WORKFLOWCHECK := $(TOOLS)/workflowcheck
TEST_TIMEOUT  ?= 45m

export TEMPORAL_CLI := $(TEMPORAL)

.PHONY: all build run test bench chaos sim lint fmt tools temporal temporal-server clean

all: build

## build: compile bin/scorekeeper
build:
	$(GO) build -o bin/scorekeeper ./cmd/scorekeeper

## temporal: install the pinned Temporal CLI (dev server + Web UI) into .tools/bin
temporal: $(TEMPORAL)
$(TEMPORAL):
	@mkdir -p $(TOOLS)
	@echo "installing Temporal CLI $(TEMPORAL_VER) into $(TOOLS) (a few minutes the first time)"
	GOBIN=$(TOOLS) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VER)

## temporal-server: build the Temporal server and temporal-sql-tool (the
## version the CLI embeds) into .tools/temporal-server, with its schemas
temporal-server: $(TEMPORAL_SERVER)
$(TEMPORAL_SERVER):
	@mkdir -p $(TEMPORAL_SERVER_DIR)/build $(TEMPORAL_SERVER_DIR)/bin
	@echo "building Temporal server $(TEMPORAL_SERVER_VER) into $(TEMPORAL_SERVER_DIR) (a few minutes the first time)"
	GOBIN=$(TEMPORAL_SERVER_DIR)/build $(GO) install go.temporal.io/server/cmd/server@$(TEMPORAL_SERVER_VER) go.temporal.io/server/cmd/tools/sql@$(TEMPORAL_SERVER_VER)
	rm -rf $(TEMPORAL_SERVER_DIR)/schema
	cp -R "$$($(GO) env GOMODCACHE)/go.temporal.io/server@$(TEMPORAL_SERVER_VER)/schema" $(TEMPORAL_SERVER_DIR)/schema
	chmod -R u+w $(TEMPORAL_SERVER_DIR)/schema
	mv $(TEMPORAL_SERVER_DIR)/build/sql $(TEMPORAL_SERVER_DIR)/bin/temporal-sql-tool
	mv $(TEMPORAL_SERVER_DIR)/build/server $(TEMPORAL_SERVER)

## run: the whole system on the embedded defaults (Temporal Web UI on :8233, API on :3000)
run: build temporal
	./scripts/run.sh

## test: every test, end-to-end included (real Postgres, real Temporal dev server),
## then a brief run of each fuzz target beyond its committed seed corpus.
## The fuzz budget is a count, not a duration: Go 1.26's coordinator can
## report a spurious "context deadline exceeded" when a -fuzztime duration
## ends (golang/go#75804, fixed in 1.27); a count has no deadline to race.
FUZZ_EXECS ?= 20000x
test: temporal temporal-server
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -run '^$$' -fuzz '^FuzzSummaryPath$$' -fuzztime $(FUZZ_EXECS) -fuzzminimizetime 500x ./web/
	$(GO) test -run '^$$' -fuzz '^FuzzPayoutsQuery$$' -fuzztime $(FUZZ_EXECS) -fuzzminimizetime 500x ./web/
	$(GO) test -run '^$$' -fuzz '^FuzzValidUserID$$' -fuzztime $(FUZZ_EXECS) -fuzzminimizetime 500x .

## chaos: the end-to-end fault suite in full, printing its table of
## violations (make test runs the short form)
chaos: temporal
	./scripts/chaos.sh

## sim: the sync's deterministic simulations against adversarial upstreams:
## the planner's, SEEDS seeds (make test runs 500; a failing seed replays
## with SIM_SEED=<n> go test -run TestSim_Adversarial ./syncplan/), and the
## whole sync's, SYNC_SEEDS seeds (make test runs 24 and the named ones;
## SIM_SEED=<n> go test -run TestSim_WholeSync ./syncsim/)
SEEDS ?= 10000
SYNC_SEEDS ?= 200
sim:
	@bash -o pipefail -c "SIM_SEEDS=$(SEEDS) $(GO) test -count=1 -v -run '^TestSim_Adversarial\$$' -timeout 0 ./syncplan/ \
		| grep -E '^TestSim_Adversarial:|replay with|^(--- )?FAIL|^ok'"
	@bash -o pipefail -c "SIM_SEEDS=$(SYNC_SEEDS) $(GO) test -count=1 -v -run '^TestSim_WholeSync\$$' -timeout 0 ./syncsim/ \
		| grep -E '^TestSim_WholeSync:|replays it|^(--- )?FAIL|^ok'"


## bench: performance goals, measured
bench: temporal
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./...

## lint: gofmt, go vet, staticcheck, workflowcheck (workflow determinism)
lint: $(STATICCHECK) $(WORKFLOWCHECK)
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(WORKFLOWCHECK) ./workflows/...

$(STATICCHECK):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

$(WORKFLOWCHECK):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0

fmt:
	gofmt -w .

clean:
	rm -rf bin data
