//! The lab: a whole cluster inside network namespaces on one machine.
