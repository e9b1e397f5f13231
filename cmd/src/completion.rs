//! Shell completion through kubectl: `kubectl encrypt <TAB>` runs `kubectl_complete-encrypt`
//! with the words typed after `encrypt` (the last one being completed) and reads one
//! candidate per line, then a `:<directive>` line (cobra's convention). Subcommands and flags
//! come from the clap definition; node names from the cluster, within [`NODE_TIMEOUT`].

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::CommandFactory;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use crate::cli::{Cli, ColorChoice, GlobalArgs, OutputFormat};
use crate::cluster::Cluster;

/// How long completion waits for the cluster before offering no node names.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// cobra's ShellCompDirectiveNoFileComp: do not fall back to file names.
const NO_FILES: u8 = 4;
/// cobra's ShellCompDirectiveDefault: the shell may complete file names.
const FILES: u8 = 0;

/// What to offer for the word being completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// These words (already filtered by the prefix typed).
    Words(Vec<String>),
    /// Node names starting with the prefix.
    Nodes(String),
    /// File names (the shell completes them).
    Files,
}

/// What to offer after `args` (the last element is the word being completed).
pub fn want(args: &[String]) -> Want {
    let mut command = Cli::command();
    command.build();
    let (current, done) = match args.split_last() {
        Some((current, done)) => (current.as_str(), done),
        None => ("", &[][..]),
    };
    let mut cmd = &command;
    let mut expecting: Option<&clap::Arg> = None;
    for word in done {
        if expecting.take().is_some() {
            continue;
        }
        if word.starts_with('-') {
            expecting = flag(cmd, word).filter(|a| takes_value(a) && !word.contains('='));
        } else if let Some(sub) = cmd.find_subcommand(word) {
            cmd = sub;
        }
    }
    if let Some(arg) = expecting {
        return values(arg, current);
    }
    if current.starts_with('-') {
        return Want::Words(flags(cmd, current));
    }
    let subcommands = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .filter(|n| n.starts_with(current))
        .collect();
    Want::Words(subcommands)
}

fn flag<'a>(cmd: &'a clap::Command, word: &str) -> Option<&'a clap::Arg> {
    let name = word.split('=').next().unwrap_or(word);
    cmd.get_arguments().find(|a| match name.strip_prefix("--") {
        Some(long) => a.get_long() == Some(long),
        None => name.strip_prefix('-').and_then(|s| s.chars().next()) == a.get_short(),
    })
}

fn takes_value(arg: &clap::Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.min_values() > 0)
}

fn flags(cmd: &clap::Command, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .chain(["--help".to_owned()])
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn values(arg: &clap::Arg, prefix: &str) -> Want {
    match arg.get_id().as_str() {
        "node" => return Want::Nodes(prefix.to_owned()),
        "kubeconfig" => return Want::Files,
        _ => {}
    }
    let words = arg
        .get_possible_values()
        .iter()
        .map(|v| v.get_name().to_owned())
        .filter(|v| v.starts_with(prefix))
        .collect();
    Want::Words(words)
}

/// `--kubeconfig` and `--context` as typed so far, for reaching the cluster.
fn global_flags(args: &[String]) -> GlobalArgs {
    let mut global = GlobalArgs {
        kubeconfig: None,
        context: None,
        namespace: crate::INSTALL_NAMESPACE.into(),
        color: ColorChoice::Never,
        output: OutputFormat::Table,
    };
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let (name, inline) = match word.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (word.as_str(), None),
        };
        let value = || inline.clone().or_else(|| words.clone().next().cloned());
        match name {
            "--kubeconfig" => global.kubeconfig = value().map(PathBuf::from),
            "--context" => global.context = value(),
            _ => {}
        }
    }
    global
}

/// Node names starting with `prefix`; nothing when the cluster cannot be reached in time.
pub async fn node_names(args: &[String], prefix: &str) -> Vec<String> {
    let lookup = async {
        let cluster = Cluster::connect(&global_flags(args)).await.ok()?;
        let api: Api<Node> = Api::all(cluster.client().clone());
        let list = api.list_metadata(&ListParams::default()).await.ok()?;
        Some(
            list.items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .collect::<Vec<_>>(),
        )
    };
    let names = tokio::time::timeout(NODE_TIMEOUT, lookup)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    names
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Prints the candidates for `args` and the directive line.
pub fn complete(args: &[String], out: &mut dyn Write) -> std::io::Result<()> {
    let (words, directive) = match want(args) {
        Want::Words(words) => (words, NO_FILES),
        Want::Files => (Vec::new(), FILES),
        Want::Nodes(prefix) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let names = match runtime {
                Ok(rt) => rt.block_on(node_names(args, &prefix)),
                Err(_) => Vec::new(),
            };
            (names, NO_FILES)
        }
    };
    for word in words {
        writeln!(out, "{word}")?;
    }
    writeln!(out, ":{directive}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[&str]) -> Want {
        want(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn list(items: &[&str]) -> Want {
        Want::Words(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn candidates_for_what_is_typed() {
        let cases: Vec<(&[&str], Want)> = vec![
            (
                &[""],
                list(&[
                    "enable",
                    "disable",
                    "status",
                    "check",
                    "install",
                    "uninstall",
                    "manifests",
                    "version",
                ]),
            ),
            (&["st"], list(&["status"])),
            (&["status", "--no"], list(&["--node"])),
            (&["status", "--node", "wor"], Want::Nodes("wor".into())),
            (&["-o", ""], list(&["table", "wide", "json", "yaml"])),
            (&["status", "--color", "a"], list(&["auto", "always"])),
            (
                &["enable", "--dry-run=client", "--fix"],
                list(&["--fix-nat-outgoing"]),
            ),
            (&["--kubeconfig", ""], Want::Files),
            (
                &["enable", "--route-source", ""],
                list(&["PodCIDRs", "WorkloadIPs"]),
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(words(args), expected, "{args:?}");
        }
    }

    #[test]
    fn global_flags_are_read_in_both_spellings() {
        let args: Vec<String> = ["--kubeconfig", "/k", "--context=lab", "status"]
            .map(String::from)
            .to_vec();
        let global = global_flags(&args);
        assert_eq!(global.kubeconfig, Some(PathBuf::from("/k")));
        assert_eq!(global.context.as_deref(), Some("lab"));
    }
}
