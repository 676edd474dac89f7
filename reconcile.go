package scorekeeper

// Drift is one field of a user's stored summary that differs from the
// summary recomputed from the user's transactions and payouts (invariant
// 2). Field is earned, spent, payout, paidOut or failedPayout.
type Drift struct {
	UserID     string `json:"userId"`
	Field      string `json:"field"`
	Stored     Amount `json:"stored"`
	Recomputed Amount `json:"recomputed"`
}

// ReconcileReport is what a reconciliation found: the store's pages of
// users, the activity's, the workflow's result and the REST answer all
// speak it.
type ReconcileReport struct {
	UsersChecked int     `json:"usersChecked"`
	Drifted      []Drift `json:"drifted"`
	// DriftedUsers counts users with at least one drifted field.
	DriftedUsers int `json:"driftedUsers"`
	// Repaired counts users whose summary was rewritten.
	Repaired int `json:"repaired"`
}
