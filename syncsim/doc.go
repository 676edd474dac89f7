// Package syncsim holds the whole sync's deterministic simulation (its
// tests): the real SyncWorkflow in Temporal's test environment, the real
// activities, the real store on SQLite and the real upstream client,
// against the mock upstream with every behaviour the contract allows
// (docs/design.md §4), all on one virtual clock. A seed draws the
// upstream's manners and a schedule of faults: worker crashes before an
// attempt, after its effects (the result lost) and in the middle of a
// page's database transaction, fetcher leases that expire under a stalled
// holder while a second fetcher works, and manual-sync storms. After every
// step the invariants are checked against the mock's ground truth.
//
// syncplan's simulation drives the planner alone, thousands of seeds a
// second; this one drives everything the sync runs, a few seeds a second.
package syncsim
