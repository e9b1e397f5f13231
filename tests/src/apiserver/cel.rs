//! CEL evaluation of `x-kubernetes-validations` rules (used by `schema`).
