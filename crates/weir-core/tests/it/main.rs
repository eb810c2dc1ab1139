//! Integration tests of weir-core: one binary, one module per concern.

mod timetable;
