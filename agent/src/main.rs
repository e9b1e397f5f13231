fn main() {
    eprintln!("kube-encrypt-agent: not yet wired");
    std::process::exit(1);
}
