//! Probes: each problem family in its own file, each call under a hard deadline.
