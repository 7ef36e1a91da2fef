//! Expansion snapshots: one per grammar feature (`cargo insta review` to update).
