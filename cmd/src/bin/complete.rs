//! `kubectl_complete-encrypt`: kubectl runs it to complete `kubectl encrypt <TAB>`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = std::io::stdout();
    // A closed pipe or any write error only means the shell stopped listening.
    let _ = kubectl_encrypt::completion::complete(&args, &mut stdout.lock());
}
