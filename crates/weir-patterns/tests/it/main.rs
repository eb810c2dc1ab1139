//! Integration tests of weir-patterns: each pattern DAG driven as a user drives it (a weir home,
//! a SQLite store, the executor, `trigger_run` / `backfill` with `--conf` params), its output
//! checked against counts computed independently from the source.

mod antipatterns;
mod custom;
mod daily;
mod debugging;
mod error_handling;
mod error_testing;
mod hourly;
mod monthly;
mod parallel;
mod partitioning;
mod support;
mod testing_parallel;
mod unit_testing;
mod weekly;
