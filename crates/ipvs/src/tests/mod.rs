//! Golden-byte tests.
