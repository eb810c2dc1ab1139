//! The 50 reference DAGs of spec 110.
