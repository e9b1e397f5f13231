//! One pass over an AdmissionReview body: the envelope walked with [`Skim`], which skips the
//! fields no rule reads and reads the request's strings and flags in place (a string with
//! escapes goes to serde_json), and, when the request's `kind` comes before its objects (the
//! order the API server writes them in), each object's name, and its spec through serde_json
//! straight into the type that kind names. Any other body (objects before the
//! kind, a repeated field, a key spelled with escapes, an object that does not decode, not a
//! review at all, anything the cursor does not take) takes the two passes of [`Review`] then
//! [`Subject::of`], which say exactly what is wrong; a body the one pass decodes gets the same
//! answer from both (tests/skim.rs holds it to that against serde_json, over random edits).
//!
//! One difference, on purpose: a value the one pass hands to serde_json gets serde_json's
//! nesting limit (128) counted from where the value starts, where the two passes count from
//! the top of the review; a spec nested 125 to 128 levels deep is decoded by the one pass and
//! refused by the two. No API server writes such a spec, and either way nothing breaks.

use std::borrow::Cow;

use kube::core::admission::Operation;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::review::{Kind, Request, Review, Text, UserInfo};
use super::skim::Skim;
use super::subject::{
    resource_of, ConfigObject, Name, Object, Objects, OldConfig, PoolObject, Subject, SubjectError,
};
use super::BadReview;

/// A review as decoded: its `apiVersion`, its request, and what the request is about.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub api_version: Cow<'a, str>,
    pub request: Request<'a>,
    pub subject: Result<Subject<'a>, SubjectError>,
}

/// Decodes `body`, in one pass when it can.
pub fn decode(body: &[u8]) -> Result<Decoded<'_>, BadReview> {
    match one_pass(body) {
        Some(decoded) => Ok(decoded),
        None => two_passes(body),
    }
}

/// The review when its kind comes before its objects and everything decodes. The body is
/// checked to be UTF-8 once, so strings are not checked one by one.
pub(super) fn one_pass(body: &[u8]) -> Option<Decoded<'_>> {
    let mut skim = Skim::new(std::str::from_utf8(body).ok()?);
    let (mut api_version, mut request) = (None, None);
    skim.object(|skim, key| match key? {
        "apiVersion" => once(&mut api_version, text(skim)?.0),
        "request" => once(&mut request, self::request(skim)?),
        _ => skim.skip(),
    })?;
    if !skim.at_end() {
        return None;
    }
    let (request, objects) = request?;
    let subject = Subject::with_objects(&request, || Ok(objects));
    Some(Decoded {
        api_version: api_version.unwrap_or_default(),
        request,
        subject,
    })
}

/// The envelope with the objects skipped, then the objects as the kind's type.
pub(super) fn two_passes(body: &[u8]) -> Result<Decoded<'_>, BadReview> {
    let review: Review = serde_json::from_slice(body).map_err(BadReview::Malformed)?;
    let request = review.request.ok_or(BadReview::NoRequest)?;
    let subject = Subject::of(&request, body);
    Ok(Decoded {
        api_version: review.api_version,
        request,
        subject,
    })
}

/// The request, read field by field.
fn request<'a>(skim: &mut Skim<'a>) -> Option<(Request<'a>, Objects<'a>)> {
    let mut fields = Fields::default();
    skim.object(|skim, key| fields.read(skim, key?))?;
    fields.into_request()
}

/// The fields of a request as read so far.
#[derive(Default)]
struct Fields<'a> {
    uid: Option<Text<'a>>,
    kind: Option<Kind<'a>>,
    sub_resource: Option<Option<Text<'a>>>,
    name: Option<Text<'a>>,
    operation: Option<Operation>,
    user_info: Option<UserInfo<'a>>,
    dry_run: Option<Option<bool>>,
    object: Option<Slot<'a>>,
    old_object: Option<Slot<'a>>,
}

impl<'a> Fields<'a> {
    /// Reads the value of `key`; `None` for a repeated field or an object before the kind.
    fn read(&mut self, skim: &mut Skim<'a>, key: &str) -> Option<()> {
        match key {
            "uid" => once(&mut self.uid, text(skim)?),
            "kind" => once(&mut self.kind, kind(skim)?),
            "subResource" => once(&mut self.sub_resource, optional(skim, text)?),
            "name" => once(&mut self.name, text(skim)?),
            "operation" => once(&mut self.operation, operation(skim)?),
            "userInfo" => once(&mut self.user_info, user_info(skim)?),
            "dryRun" => once(&mut self.dry_run, optional(skim, flag)?),
            "object" => once(
                &mut self.object,
                Slot::read(skim, self.kind.as_ref()?, false)?,
            ),
            "oldObject" => once(
                &mut self.old_object,
                Slot::read(skim, self.kind.as_ref()?, true)?,
            ),
            _ => skim.skip(),
        }
    }

    fn into_request(self) -> Option<(Request<'a>, Objects<'a>)> {
        let kind = self.kind?;
        let object = self.object.unwrap_or(Slot::Absent);
        let old_object = self.old_object.unwrap_or(Slot::Absent);
        let request = Request {
            uid: self.uid?.0,
            sub_resource: self.sub_resource.flatten(),
            name: self.name.map(|name| name.0).unwrap_or_default(),
            operation: self.operation?,
            user_info: self.user_info.unwrap_or_default(),
            object: object.present(),
            old_object: old_object.present(),
            dry_run: self.dry_run.flatten(),
            kind,
        };
        let objects = objects_of(&request.kind, old_object, object)?;
        Some((request, objects))
    }
}

/// Stores a field's value; `None` when it was there already.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.replace(value).is_none().then_some(())
}

/// One object field as read.
enum Slot<'a> {
    Absent,
    Config(Option<Box<ConfigObject>>),
    OldConfig(Option<OldConfig<'a>>),
    Pool(Option<Box<PoolObject>>),
    /// A kind this webhook does not judge.
    Skipped,
}

impl<'a> Slot<'a> {
    /// Reads the object (`old`: the old object) as the type `kind` names.
    fn read(skim: &mut Skim<'a>, kind: &Kind, old: bool) -> Option<Self> {
        Some(match resource_of(kind) {
            "encryptionconfigs" if old => {
                Slot::OldConfig(skim.raw_or_null()?.map(OldConfig::from_json))
            }
            "encryptionconfigs" => Slot::Config(object(skim)?),
            "ippools" => Slot::Pool(object(skim)?),
            _ => {
                skim.skip()?;
                Slot::Skipped
            }
        })
    }

    fn config(self) -> Option<Option<Box<ConfigObject>>> {
        match self {
            Slot::Absent => Some(None),
            Slot::Config(object) => Some(object),
            _ => None,
        }
    }

    fn old_config(self) -> Option<Option<OldConfig<'a>>> {
        match self {
            Slot::Absent => Some(None),
            Slot::OldConfig(object) => Some(object),
            _ => None,
        }
    }

    fn pool(self) -> Option<Option<Box<PoolObject>>> {
        match self {
            Slot::Absent => Some(None),
            Slot::Pool(object) => Some(object),
            _ => None,
        }
    }

    /// Whether the object is there (for [`Request::object`]).
    fn present(&self) -> Option<IgnoredAny> {
        match self {
            Slot::Absent | Slot::Config(None) | Slot::OldConfig(None) | Slot::Pool(None) => None,
            _ => Some(IgnoredAny),
        }
    }
}

/// An object under review (`None` for `null`): its name and spec decoded, the rest skipped.
fn object<'a, S: Deserialize<'a>>(skim: &mut Skim<'a>) -> Option<Option<Box<Object<S>>>> {
    if skim.null() {
        return Some(None);
    }
    let (mut metadata, mut spec) = (None, None);
    skim.object(|skim, key| match key? {
        "metadata" => once(&mut metadata, name(skim)?),
        "spec" => once(&mut spec, skim.value()?),
        _ => skim.skip(),
    })?;
    let metadata = metadata.unwrap_or_default();
    Some(Some(Box::new(Object {
        metadata,
        spec: spec?,
    })))
}

/// `metadata.name`, the rest of `metadata` skipped.
fn name(skim: &mut Skim) -> Option<Name> {
    let mut name = None;
    skim.object(|skim, key| match key? {
        "name" => once(&mut name, optional(skim, text)?),
        _ => skim.skip(),
    })?;
    Some(Name {
        name: name.flatten().map(|name| name.0.into_owned()),
    })
}

/// A string, borrowed from the body when it has no escapes (serde_json reads those).
fn text<'a>(skim: &mut Skim<'a>) -> Option<Text<'a>> {
    match skim.plain_str() {
        Some(text) => Some(Text(Cow::Borrowed(text))),
        None => skim.value(),
    }
}

/// `null` as `None`, anything else as `read` reads it.
fn optional<'a, T>(
    skim: &mut Skim<'a>,
    read: impl FnOnce(&mut Skim<'a>) -> Option<T>,
) -> Option<Option<T>> {
    match skim.null() {
        true => Some(None),
        false => read(skim).map(Some),
    }
}

fn flag(skim: &mut Skim) -> Option<bool> {
    skim.plain_bool().or_else(|| skim.value())
}

/// The operation, spelled as the API server spells it (serde_json reads any other spelling).
fn operation(skim: &mut Skim) -> Option<Operation> {
    match skim.plain_str() {
        Some("CREATE") => Some(Operation::Create),
        Some("UPDATE") => Some(Operation::Update),
        Some("DELETE") => Some(Operation::Delete),
        Some("CONNECT") => Some(Operation::Connect),
        Some(_) => None,
        None => skim.value(),
    }
}

/// The request's `kind`: all three fields, each once.
fn kind<'a>(skim: &mut Skim<'a>) -> Option<Kind<'a>> {
    let (mut group, mut version, mut kind) = (None, None, None);
    skim.object(|skim, key| match key? {
        "group" => once(&mut group, text(skim)?.0),
        "version" => once(&mut version, text(skim)?.0),
        "kind" => once(&mut kind, text(skim)?.0),
        _ => skim.skip(),
    })?;
    Some(Kind {
        group: group?,
        version: version?,
        kind: kind?,
    })
}

/// `userInfo`: the username and groups, the rest skipped.
fn user_info<'a>(skim: &mut Skim<'a>) -> Option<UserInfo<'a>> {
    let (mut username, mut groups) = (None, None);
    skim.object(|skim, key| match key? {
        "username" => once(&mut username, optional(skim, text)?),
        "groups" => once(&mut groups, optional(skim, texts)?),
        _ => skim.skip(),
    })?;
    Some(UserInfo {
        username: username.flatten(),
        groups: groups.flatten(),
    })
}

fn texts<'a>(skim: &mut Skim<'a>) -> Option<Vec<Text<'a>>> {
    let mut texts = Vec::new();
    skim.array(|skim| {
        texts.push(text(skim)?);
        Some(())
    })?;
    Some(texts)
}

/// The objects of a request of `kind`.
fn objects_of<'a>(kind: &Kind, old: Slot<'a>, new: Slot<'a>) -> Option<Objects<'a>> {
    match resource_of(kind) {
        "encryptionconfigs" => Some(Objects::Config(old.old_config()?, new.config()?)),
        "ippools" => Some(Objects::Pool(old.pool()?, new.pool()?)),
        _ => matches!(
            (&old, &new),
            (Slot::Absent | Slot::Skipped, Slot::Absent | Slot::Skipped)
        )
        .then_some(Objects::Other),
    }
}
