//! Settings layers. Each layer is a JSON object; layers merge in the fixed order
//! built-in → vendor → model → domain → category → user → device, later wins.
//! Objects merge key by key, any other value replaces, and `null` removes the key.

use serde_json::{Map, Value};

use crate::Invalid;

pub type Settings = Map<String, Value>;

/// Largest serialized size of one layer.
pub const MAX_LAYER_BYTES: usize = 64 * 1024;
/// Most items in one list or object of a layer, and most values (at every depth) in a
/// layer: the seven layers merged stay within what a stored template takes
/// (`provisor_render::stored::MAX_SETTINGS_VALUES`).
pub const MAX_ITEMS: usize = 1024;
pub const MAX_LAYER_VALUES: usize = 1024;

/// Checks that `value` can be a settings layer and returns it as an object.
pub fn layer(value: Value) -> Result<Settings, Invalid> {
    let Value::Object(map) = value else {
        return Err(Invalid::new("settings", "must be a JSON object"));
    };
    if serde_json::to_vec(&map).map_or(0, |v| v.len()) > MAX_LAYER_BYTES {
        return Err(Invalid::new(
            "settings",
            format!("must be at most {MAX_LAYER_BYTES} bytes"),
        ));
    }
    let mut values = 0usize;
    let mut stack: Vec<&Value> = map.values().collect();
    if map.len() > MAX_ITEMS {
        return Err(Invalid::new(
            "settings",
            format!("must have at most {MAX_ITEMS} keys"),
        ));
    }
    while let Some(v) = stack.pop() {
        values += 1;
        if values > MAX_LAYER_VALUES {
            return Err(Invalid::new(
                "settings",
                format!("must hold at most {MAX_LAYER_VALUES} values in all"),
            ));
        }
        match v {
            Value::Array(a) if a.len() > MAX_ITEMS => {
                return Err(Invalid::new(
                    "settings",
                    format!("a list must have at most {MAX_ITEMS} items"),
                ));
            }
            Value::Object(o) if o.len() > MAX_ITEMS => {
                return Err(Invalid::new(
                    "settings",
                    format!("an object must have at most {MAX_ITEMS} keys"),
                ));
            }
            Value::Array(a) => stack.extend(a),
            Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    if has_nul(&map) {
        return Err(Invalid::new(
            "settings",
            "must not contain the NUL character",
        ));
    }
    Ok(map)
}

/// NUL cannot be stored by every backend (PostgreSQL's JSONB refuses it).
fn has_nul(map: &Settings) -> bool {
    fn value(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(value),
            Value::Object(o) => has_nul(o),
            _ => false,
        }
    }
    map.iter().any(|(k, v)| k.contains('\0') || value(v))
}

/// Puts `overlay` on top of `base`.
pub fn merge_into(base: &mut Settings, overlay: &Settings) {
    for (key, value) in overlay {
        match (base.get_mut(key), value) {
            (_, Value::Null) => {
                base.remove(key);
            }
            (Some(Value::Object(b)), Value::Object(o)) => merge_into(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Merges layers given lowest first.
pub fn merge<'a>(layers: impl IntoIterator<Item = &'a Settings>) -> Settings {
    let mut out = Settings::new();
    for layer in layers {
        merge_into(&mut out, layer);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Settings {
        layer(v).unwrap()
    }

    #[test]
    fn later_layers_win_objects_merge_null_removes() {
        let domain = obj(
            json!({"ntp": "pool.ntp.org", "codecs": {"g722": true, "pcmu": true}, "lang": "en"}),
        );
        let category = obj(json!({"codecs": {"pcmu": false}, "lang": null}));
        let device = obj(json!({"ntp": "10.0.0.1"}));
        let merged = merge([&domain, &category, &device]);
        assert_eq!(
            Value::Object(merged),
            json!({"ntp": "10.0.0.1", "codecs": {"g722": true, "pcmu": false}})
        );
    }

    #[test]
    fn a_layer_must_be_an_object() {
        assert!(layer(json!([1, 2])).is_err());
        assert!(layer(json!("x")).is_err());
        assert!(layer(json!({"big": "x".repeat(MAX_LAYER_BYTES)})).is_err());
        assert!(layer(json!({"a": [{"b": "x\u{0}"}]})).is_err());
        assert!(layer(json!({"k\u{0}": 1})).is_err());
    }
}
