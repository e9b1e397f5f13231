//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded to
//! JSON for the kinds kubectl's typed clients send (`kubectl create namespace|configmap|
//! secret|serviceaccount`): Namespace, ConfigMap, Secret, ServiceAccount. Responses are
//! always JSON, which those clients accept.

use base64::Engine;
use serde_json::{json, Map, Value};

/// `k8s\0`, the envelope's magic prefix.
const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bytes,
    Bool,
    Int,
    Msg(&'static [Field]),
    MapStr,
    MapBytes,
    RepStr,
    RepMsg(&'static [Field]),
}

struct Field(u64, &'static str, Kind);

const OWNER_REFERENCE: &[Field] = &[
    Field(1, "kind", Kind::Str),
    Field(3, "name", Kind::Str),
    Field(4, "uid", Kind::Str),
    Field(5, "apiVersion", Kind::Str),
    Field(6, "controller", Kind::Bool),
    Field(7, "blockOwnerDeletion", Kind::Bool),
];
const OBJECT_META: &[Field] = &[
    Field(1, "name", Kind::Str),
    Field(2, "generateName", Kind::Str),
    Field(3, "namespace", Kind::Str),
    Field(5, "uid", Kind::Str),
    Field(6, "resourceVersion", Kind::Str),
    Field(7, "generation", Kind::Int),
    Field(11, "labels", Kind::MapStr),
    Field(12, "annotations", Kind::MapStr),
    Field(13, "ownerReferences", Kind::RepMsg(OWNER_REFERENCE)),
    Field(14, "finalizers", Kind::RepStr),
];
const CONFIG_MAP: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(2, "data", Kind::MapStr),
    Field(3, "binaryData", Kind::MapBytes),
    Field(4, "immutable", Kind::Bool),
];
const SECRET: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(2, "data", Kind::MapBytes),
    Field(3, "type", Kind::Str),
    Field(4, "stringData", Kind::MapStr),
    Field(5, "immutable", Kind::Bool),
];
const NAMESPACE_SPEC: &[Field] = &[Field(1, "finalizers", Kind::RepStr)];
const NAMESPACE: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(2, "spec", Kind::Msg(NAMESPACE_SPEC)),
];
const LOCAL_OBJECT_REFERENCE: &[Field] = &[Field(1, "name", Kind::Str)];
const SERVICE_ACCOUNT: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(3, "imagePullSecrets", Kind::RepMsg(LOCAL_OBJECT_REFERENCE)),
    Field(4, "automountServiceAccountToken", Kind::Bool),
];
const TYPE_META: &[Field] = &[
    Field(1, "apiVersion", Kind::Str),
    Field(2, "kind", Kind::Str),
];
const UNKNOWN: &[Field] = &[
    Field(1, "typeMeta", Kind::Msg(TYPE_META)),
    Field(2, "raw", Kind::Bytes),
];

fn schema(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    match (api_version, kind) {
        ("v1", "ConfigMap") => Some(CONFIG_MAP),
        ("v1", "Secret") => Some(SECRET),
        ("v1", "Namespace") => Some(NAMESPACE),
        ("v1", "ServiceAccount") => Some(SERVICE_ACCOUNT),
        _ => None,
    }
}

/// Decodes an enveloped protobuf object into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("the protobuf body lacks the k8s envelope")?;
    let unknown = message(envelope, UNKNOWN)?;
    let api_version = unknown
        .pointer("/typeMeta/apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = unknown
        .pointer("/typeMeta/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let fields = schema(api_version, kind).ok_or_else(|| {
        format!("protobuf bodies of {kind} ({api_version}) are not supported by this emulator; send application/json")
    })?;
    let raw = unknown.get("raw").and_then(Value::as_str).unwrap_or("");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|e| e.to_string())?;
    let mut obj = message(&raw, fields)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

/// Reads the protobuf wire format: `(field number, wire type, payload)` triples.
struct Reader<'a>(&'a [u8]);

enum Payload<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first().ok_or("truncated varint")?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated field".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn next(&mut self) -> Result<Option<(u64, Payload<'a>)>, String> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let payload = match key & 7 {
            0 => Payload::Varint(self.varint()?),
            1 => self.take(8).map(|_| Payload::Fixed)?,
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|e| e.to_string())?;
                Payload::Bytes(self.take(len)?)
            }
            5 => self.take(4).map(|_| Payload::Fixed)?,
            other => return Err(format!("unsupported wire type {other}")),
        };
        Ok(Some((key >> 3, payload)))
    }
}

fn text(bytes: &[u8]) -> Result<Value, String> {
    std::str::from_utf8(bytes)
        .map(|s| json!(s))
        .map_err(|e| e.to_string())
}

fn message(bytes: &[u8], fields: &[Field]) -> Result<Value, String> {
    let mut out = Map::new();
    let mut reader = Reader(bytes);
    while let Some((number, payload)) = reader.next()? {
        let Some(Field(_, name, kind)) = fields.iter().find(|f| f.0 == number) else {
            continue;
        };
        let name = name.to_string();
        match (kind, payload) {
            (Kind::Str, Payload::Bytes(b)) => {
                out.insert(name, text(b)?);
            }
            (Kind::Bytes, Payload::Bytes(b)) => {
                out.insert(
                    name,
                    json!(base64::engine::general_purpose::STANDARD.encode(b)),
                );
            }
            (Kind::Bool, Payload::Varint(v)) => {
                out.insert(name, json!(v != 0));
            }
            (Kind::Int, Payload::Varint(v)) => {
                out.insert(name, json!(v as i64));
            }
            (Kind::Msg(inner), Payload::Bytes(b)) => {
                out.insert(name, message(b, inner)?);
            }
            (Kind::MapStr | Kind::MapBytes, Payload::Bytes(b)) => {
                let value_kind = if matches!(kind, Kind::MapStr) {
                    Kind::Str
                } else {
                    Kind::Bytes
                };
                let entry = message(b, &[Field(1, "k", Kind::Str), Field(2, "v", value_kind)])?;
                let key = entry
                    .get("k")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let value = entry.get("v").cloned().unwrap_or_else(|| json!(""));
                let map = out.entry(name).or_insert_with(|| json!({}));
                map[key] = value;
            }
            (Kind::RepStr, Payload::Bytes(b)) => push(&mut out, name, text(b)?),
            (Kind::RepMsg(inner), Payload::Bytes(b)) => push(&mut out, name, message(b, inner)?),
            _ => return Err(format!("field {name} has an unexpected wire type")),
        }
    }
    Ok(Value::Object(out))
}

fn push(out: &mut Map<String, Value>, name: String, value: Value) {
    if let Value::Array(items) = out.entry(name).or_insert_with(|| json!([])) {
        items.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3 | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_configmap_as_kubectl_sends_it() {
        let meta = [
            field(1, b"settings"),
            field(11, &[field(1, b"app"), field(2, b"web")].concat()),
        ]
        .concat();
        let cm = [
            field(1, &meta),
            field(2, &[field(1, b"mode"), field(2, b"strict")].concat()),
            vec![4 << 3, 1],
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &cm)].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "labels": {"app": "web"}},
                "data": {"mode": "strict"}, "immutable": true
            })
        );
        let other = [
            MAGIC.to_vec(),
            field(1, &[field(1, b"apps/v1"), field(2, b"Deployment")].concat()),
        ]
        .concat();
        assert!(decode(&other)
            .unwrap_err()
            .contains("send application/json"));
    }
}
