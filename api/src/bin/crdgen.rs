//! Prints the CRDs, or writes them to a folder: `crdgen [--out manifests/crds]`.

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let out = match (args.next().as_deref(), args.next()) {
        (None, _) => None,
        (Some("--out"), Some(dir)) => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("usage: crdgen [--out DIR]");
            std::process::exit(2);
        }
    };
    for (file, crd) in kube_encrypt_api::crd::all() {
        let text = kube_encrypt_api::crd::to_yaml(&crd);
        match &out {
            Some(dir) => {
                let path = dir.join(file);
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("crdgen: writing {}: {e}", path.display());
                    std::process::exit(1);
                }
            }
            None => print!("---\n{text}"),
        }
    }
}
