//! Prints the CRDs, or writes them to a folder with the `kustomization.yaml` listing them:
//! `crdgen [--out manifests/crds]`.

use std::path::{Path, PathBuf};

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
            Some(dir) => write(&dir.join(file), &text),
            None => print!("---\n{text}"),
        }
    }
    if let Some(dir) = &out {
        let kustomization = kube_encrypt_api::crd::kustomization();
        write(
            &dir.join(kube_encrypt_api::crd::KUSTOMIZATION_FILE),
            &kustomization,
        );
    }
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("crdgen: writing {}: {e}", path.display());
        std::process::exit(1);
    }
}
