//! Every ERROR and WARN line the agents and the webhook logged, counted by message, and
//! whether each was expected: logged while an injected fault was in effect (or just after),
//! or naming a fake Node of the churn.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::LazyLock;

use jiff::{SignedDuration, Timestamp};
use regex::Regex;
use serde::Serialize;

use super::churn::FAKE_NODE_PREFIX;

/// How long after a fault ends its consequences may still be logged (reconnect backoff,
/// a restarted agent's first reconcile, the webhook's caches catching up).
pub const GRACE: SignedDuration = SignedDuration::from_secs(30);

/// A span of time in which some ERROR/WARN lines are expected, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
    pub cause: String,
}

impl Window {
    fn covers(&self, at: Timestamp) -> bool {
        self.start <= at && at <= self.end + GRACE
    }
}

/// One WARN or ERROR line.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub at: Option<Timestamp>,
    pub level: String,
    /// The message with field and span values blanked, so repeats group together.
    pub message: String,
    pub raw: String,
}

/// All lines with the same level and message, from one kind of process.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// `agent` or `webhook`.
    pub source: String,
    pub level: String,
    pub message: String,
    pub count: usize,
    /// How many of them were expected, and the causes they were attributed to.
    pub expected: usize,
    pub causes: Vec<String>,
    /// Lines per process role (`agent-node-1`: 3).
    pub by_role: BTreeMap<String, usize>,
    /// The first line as logged.
    pub example: String,
}

impl Group {
    pub fn all_expected(&self) -> bool {
        self.expected == self.count
    }
}

static LEVEL_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\S+)\s+(ERROR|WARN)\s+(.*)$").expect("a valid regex"));
static SPAN_FIELDS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{[^}]*\}").expect("a valid regex"));
static FIELD_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|\s)([A-Za-z_][\w.]*)=").expect("a valid regex"));

/// Parses a tracing text line (`<RFC 3339> <LEVEL> <spans>: <target>: <message> <fields>`);
/// `None` unless it is a WARN or ERROR line.
pub fn parse(raw: &str) -> Option<Line> {
    let captures = LEVEL_LINE.captures(raw.trim_end())?;
    let rest = SPAN_FIELDS.replace_all(&captures[3], "{…}");
    let message = blank_fields(&rest);
    Some(Line {
        at: captures[1].parse().ok(),
        level: captures[2].to_owned(),
        message,
        raw: raw.trim_end().to_owned(),
    })
}

/// The message with every field's value blanked: tracing prints values unquoted, so a value
/// runs to the next ` name=` (or the end of the line).
fn blank_fields(text: &str) -> String {
    let names: Vec<_> = FIELD_NAME.captures_iter(text).collect();
    let Some(first) = names.first() else {
        return text.to_owned();
    };
    let head = text[..first.get(0).map_or(0, |m| m.start())].trim_end();
    let fields: Vec<String> = names.iter().map(|c| format!("{}=…", &c[1])).collect();
    format!("{head} {}", fields.join(" "))
}

/// Why a line was expected, if it was: a fake Node named in it, else the fault in progress
/// when it was logged, else the fault that ended last before it (within [`GRACE`]).
pub fn cause(line: &Line, windows: &[Window]) -> Option<String> {
    if line.raw.contains(FAKE_NODE_PREFIX) {
        return Some("node churn (a fake Node)".into());
    }
    let at = line.at?;
    let covering = windows.iter().filter(|w| w.covers(at));
    let in_progress = covering.clone().find(|w| w.start <= at && at <= w.end);
    in_progress
        .or_else(|| covering.max_by_key(|w| w.end))
        .map(|w| w.cause.clone())
}

/// The ERROR/WARN lines of each `(role, log file)`, grouped by source, level and message;
/// most frequent first. An unreadable log is an error: the report would be incomplete.
pub fn collect(logs: &[(String, PathBuf)], windows: &[Window]) -> std::io::Result<Vec<Group>> {
    let mut groups: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    for (role, path) in logs {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in text.lines().filter_map(parse) {
            add(&mut groups, role, &line, cause(&line, windows));
        }
    }
    let mut out: Vec<Group> = groups.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
    Ok(out)
}

fn source_of(role: &str) -> &str {
    role.split('-').next().unwrap_or(role)
}

fn add(
    groups: &mut BTreeMap<(String, String, String), Group>,
    role: &str,
    line: &Line,
    cause: Option<String>,
) {
    let source = source_of(role).to_owned();
    let key = (source.clone(), line.level.clone(), line.message.clone());
    let group = groups.entry(key).or_insert_with(|| Group {
        source,
        level: line.level.clone(),
        message: line.message.clone(),
        count: 0,
        expected: 0,
        causes: Vec::new(),
        by_role: BTreeMap::new(),
        example: line.raw.clone(),
    });
    group.count += 1;
    *group.by_role.entry(role.to_owned()).or_default() += 1;
    if let Some(cause) = cause {
        group.expected += 1;
        if !group.causes.contains(&cause) {
            group.causes.push(cause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn parses_warn_and_error_lines_and_blanks_their_values() {
        let cases = [
            (
                "2026-12-02T04:50:01.123456Z  WARN kube_encrypt_agent::watch: watch failed, retrying error=\"connection refused (os error 111)\" attempt=3",
                Some(("WARN", "kube_encrypt_agent::watch: watch failed, retrying error=… attempt=…")),
            ),
            (
                "2026-12-02T04:50:02Z ERROR reconcile{node=node-1 family=v4}: kube_encrypt_agent: apply failed",
                Some(("ERROR", "reconcile{…}: kube_encrypt_agent: apply failed")),
            ),
            (
                "2026-12-02T04:50:02Z  WARN kube_encrypt_agent::reconcile: could not write the status error=the status of NodeEncryption node-1: client error (Connect) node=node-1",
                Some(("WARN", "kube_encrypt_agent::reconcile: could not write the status error=… node=…")),
            ),
            ("2026-12-02T04:50:03Z  INFO kube_encrypt_agent: started", None),
            ("not a log line", None),
        ];
        for (raw, want) in cases {
            let got = parse(raw);
            assert_eq!(
                got.as_ref().map(|l| (l.level.as_str(), l.message.as_str())),
                want,
                "{raw}"
            );
            if let Some(line) = got {
                assert!(line.at.is_some(), "{raw}");
            }
        }
    }

    #[test]
    fn a_line_is_expected_inside_a_fault_window_or_its_grace_or_naming_a_fake_node() {
        let windows = [Window {
            start: ts("2026-12-02T05:00:00Z"),
            end: ts("2026-12-02T05:00:10Z"),
            cause: "API server restart".into(),
        }];
        let line =
            |at: &str, text: &str| parse(&format!("{at} WARN agent: {text}")).expect("a WARN line");
        let cases = [
            ("2026-12-02T04:59:59Z", "watch failed", None),
            (
                "2026-12-02T05:00:05Z",
                "watch failed",
                Some("API server restart"),
            ),
            (
                "2026-12-02T05:00:39Z",
                "watch failed",
                Some("API server restart"),
            ),
            ("2026-12-02T05:00:41Z", "watch failed", None),
            (
                "2026-12-02T06:00:00Z",
                "no handshake with soak-node-3",
                Some("node churn (a fake Node)"),
            ),
        ];
        for (at, text, want) in cases {
            assert_eq!(
                cause(&line(at, text), &windows).as_deref(),
                want,
                "{at} {text}"
            );
        }
    }

    #[test]
    fn the_fault_in_progress_wins_over_one_whose_grace_still_runs() {
        let window = |start: &str, end: &str, cause: &str| Window {
            start: ts(start),
            end: ts(end),
            cause: cause.into(),
        };
        let windows = [
            window(
                "2026-12-02T05:00:00Z",
                "2026-12-02T05:00:01Z",
                "config change",
            ),
            window(
                "2026-12-02T05:00:10Z",
                "2026-12-02T05:00:20Z",
                "API server restart",
            ),
            window(
                "2026-12-02T05:00:25Z",
                "2026-12-02T05:00:26Z",
                "pool change",
            ),
        ];
        let cases = [
            ("2026-12-02T05:00:05Z", "config change"),
            ("2026-12-02T05:00:15Z", "API server restart"),
            ("2026-12-02T05:00:22Z", "API server restart"),
            ("2026-12-02T05:00:40Z", "pool change"),
        ];
        for (at, want) in cases {
            let line = parse(&format!("{at} WARN agent: watch failed")).unwrap();
            assert_eq!(cause(&line, &windows).as_deref(), Some(want), "{at}");
        }
    }

    #[test]
    fn groups_count_by_message_across_agents_and_say_how_many_were_expected() {
        let dir = std::env::temp_dir().join(format!("ke-soak-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("agent-node-1.log");
        let b = dir.join("agent-node-2.log");
        let w = dir.join("webhook.log");
        let missing = dir.join("missing.log");
        std::fs::write(&a, "2026-12-02T05:00:05Z  WARN agent: watch failed error=x\n2026-12-02T06:00:00Z  WARN agent: watch failed error=y\n").unwrap();
        std::fs::write(&b, "2026-12-02T05:00:06Z  WARN agent: watch failed error=z\n2026-12-02T05:00:06Z  INFO agent: fine\n").unwrap();
        std::fs::write(
            &w,
            "2026-12-02T06:00:00Z ERROR webhook: tls handshake failed\n",
        )
        .unwrap();
        let windows = [Window {
            start: ts("2026-12-02T05:00:00Z"),
            end: ts("2026-12-02T05:00:10Z"),
            cause: "agent kill".into(),
        }];
        let logs = [
            ("agent-node-1".to_string(), a),
            ("agent-node-2".to_string(), b),
            ("webhook".to_string(), w),
            ("agent-node-3".to_string(), missing),
        ];
        let groups = collect(&logs, &windows).unwrap();
        assert_eq!(groups.len(), 2, "{groups:#?}");
        let watch = &groups[0];
        assert_eq!(
            (watch.source.as_str(), watch.count, watch.expected),
            ("agent", 3, 2)
        );
        assert_eq!(watch.by_role["agent-node-1"], 2);
        assert!(!watch.all_expected());
        assert_eq!(watch.causes, vec!["agent kill".to_string()]);
        let tls = &groups[1];
        assert_eq!(
            (tls.source.as_str(), tls.level.as_str(), tls.expected),
            ("webhook", "ERROR", 0)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
