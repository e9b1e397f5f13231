//! The admission rules of SPEC §3 (being written).
