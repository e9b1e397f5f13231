//! MTU maths of SPEC §4.3 (being written).
