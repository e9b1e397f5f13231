//! Test builders for nodes, pods, pools and configs (being written).
