//! `kubectl encrypt`: the kube-encrypt kubectl plugin (enable, disable, status, check).
fn main() {
    eprintln!("kubectl-encrypt: not yet implemented");
    std::process::exit(1);
}
