//! One pass over an AdmissionReview body: the envelope and, when the request's `kind` comes
//! before its objects (the order the API server writes them in), the objects straight into
//! the type that kind names. Any other body (objects before the kind, a repeated field, an
//! object that does not decode, not a review at all) takes the two passes of
//! [`Review`] then [`Subject::of`], which say exactly what is wrong; a body the one pass
//! decodes gets the same answer from both.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use kube::core::admission::Operation;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::review::{Kind, Request, Review, Text, UserInfo};
use super::subject::{
    resource_of, ConfigObject, Objects, OldConfig, PoolObject, Subject, SubjectError,
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
    let text = std::str::from_utf8(body).ok()?;
    let OnePass {
        api_version,
        request,
    } = serde_json::from_str(text).ok()?;
    let OnePassRequest { request, objects } = request?;
    let objects = objects?;
    let subject = Subject::with_objects(&request, || Ok(objects));
    Some(Decoded {
        api_version,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OnePass<'a> {
    #[serde(borrow, default)]
    api_version: Cow<'a, str>,
    #[serde(borrow)]
    request: Option<OnePassRequest<'a>>,
}

/// The request, and its objects unless they came before its kind (`None`: decode again).
struct OnePassRequest<'a> {
    request: Request<'a>,
    objects: Option<Objects<'a>>,
}

/// The fields of [`Request`], spelled as in the review.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Field {
    Uid,
    Kind,
    SubResource,
    Name,
    Operation,
    UserInfo,
    Object,
    OldObject,
    DryRun,
    #[serde(other)]
    Other,
}

/// One object field as read.
enum Slot<'a> {
    Absent,
    /// It came before the kind.
    Deferred,
    Config(Option<Box<ConfigObject>>),
    OldConfig(Option<OldConfig<'a>>),
    Pool(Option<Box<PoolObject>>),
    /// A kind this webhook does not judge.
    Skipped,
}

impl<'a> Slot<'a> {
    /// Reads the object (`old`: the old object) in `map` as the type `kind` names.
    fn read<'de: 'a, A: MapAccess<'de>>(
        map: &mut A,
        kind: Option<&Kind>,
        old: bool,
    ) -> Result<Self, A::Error> {
        Ok(match kind.map(resource_of) {
            Some("encryptionconfigs") if old => Slot::OldConfig(map.next_value()?),
            Some("encryptionconfigs") => Slot::Config(map.next_value()?),
            Some("ippools") => Slot::Pool(map.next_value()?),
            Some(_) => {
                map.next_value::<IgnoredAny>()?;
                Slot::Skipped
            }
            None => {
                map.next_value::<IgnoredAny>()?;
                Slot::Deferred
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

/// The objects of a request of `kind`; `None` when they must be decoded again.
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

/// Stores a field's value, refusing a repeated field as the derived decoder does.
fn set<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    match slot.replace(value) {
        Some(_) => Err(E::duplicate_field(name)),
        None => Ok(()),
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for OnePassRequest<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RequestVisitor(PhantomData))
    }
}

struct RequestVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for RequestVisitor<'a> {
    type Value = OnePassRequest<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionRequest")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OnePassRequest<'a>, A::Error> {
        let mut uid: Option<Text<'de>> = None;
        let mut kind: Option<Kind<'de>> = None;
        let mut sub_resource: Option<Option<Text<'de>>> = None;
        let mut name: Option<Text<'de>> = None;
        let mut operation: Option<Operation> = None;
        let mut user_info: Option<UserInfo<'de>> = None;
        let mut dry_run: Option<Option<bool>> = None;
        let (mut object, mut old_object) = (None, None);
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Uid => set(&mut uid, map.next_value()?, "uid")?,
                Field::Kind => set(&mut kind, map.next_value()?, "kind")?,
                Field::SubResource => set(&mut sub_resource, map.next_value()?, "subResource")?,
                Field::Name => set(&mut name, map.next_value()?, "name")?,
                Field::Operation => set(&mut operation, map.next_value()?, "operation")?,
                Field::UserInfo => set(&mut user_info, map.next_value()?, "userInfo")?,
                Field::DryRun => set(&mut dry_run, map.next_value()?, "dryRun")?,
                Field::Object => {
                    let slot = Slot::read(&mut map, kind.as_ref(), false)?;
                    set(&mut object, slot, "object")?
                }
                Field::OldObject => {
                    let slot = Slot::read(&mut map, kind.as_ref(), true)?;
                    set(&mut old_object, slot, "oldObject")?
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
        let (object, old_object) = (
            object.unwrap_or(Slot::Absent),
            old_object.unwrap_or(Slot::Absent),
        );
        let (has_object, has_old_object) = (object.present(), old_object.present());
        let objects = objects_of(&kind, old_object, object);
        let request = Request {
            uid: uid.ok_or_else(|| de::Error::missing_field("uid"))?.0,
            kind,
            sub_resource: sub_resource.flatten(),
            name: name.map(|name| name.0).unwrap_or_default(),
            operation: operation.ok_or_else(|| de::Error::missing_field("operation"))?,
            user_info: user_info.unwrap_or_default(),
            object: has_object,
            old_object: has_old_object,
            dry_run: dry_run.flatten(),
        };
        Ok(OnePassRequest { request, objects })
    }
}
