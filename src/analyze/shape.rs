//! Data shapes without values: JSON body schemas and query parameter types,
//! for the inventory and the OpenAPI export.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Keys kept per JSON object, depth of nesting, and query parameters per endpoint.
pub const MAX_KEYS: usize = 64;
pub const MAX_DEPTH: usize = 8;
pub const MAX_PARAMS: usize = 64;

/// The type of a value, as in JSON Schema.
pub fn scalar_type(v: &str) -> &'static str {
    if v.is_empty() {
        return "string";
    }
    if v.parse::<i64>().is_ok() {
        return "integer";
    }
    if v.parse::<f64>().is_ok_and(f64::is_finite) && v.contains('.') {
        return "number";
    }
    if v == "true" || v == "false" {
        return "boolean";
    }
    "string"
}

/// A JSON value's shape (types only, never values).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// JSON Schema type names seen: object, array, string, integer, number, boolean, null.
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, Shape>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<Shape>>,
}

impl Shape {
    fn add_type(&mut self, t: &str) {
        if !self.types.iter().any(|x| x == t) {
            self.types.push(t.to_string());
            self.types.sort();
        }
    }

    /// The shape of a parsed JSON value.
    pub fn of(v: &serde_json::Value) -> Shape {
        let mut s = Shape::default();
        s.add(v, 0);
        s
    }

    fn add(&mut self, v: &serde_json::Value, depth: usize) {
        use serde_json::Value as V;
        match v {
            V::Null => self.add_type("null"),
            V::Bool(_) => self.add_type("boolean"),
            V::Number(n) => self.add_type(if n.is_i64() || n.is_u64() { "integer" } else { "number" }),
            V::String(_) => self.add_type("string"),
            V::Array(a) => {
                self.add_type("array");
                if depth < MAX_DEPTH {
                    let items = self.items.get_or_insert_with(Box::default);
                    for x in a.iter().take(MAX_KEYS) {
                        items.add(x, depth + 1);
                    }
                }
            }
            V::Object(o) => {
                self.add_type("object");
                if depth < MAX_DEPTH {
                    for (k, x) in o.iter() {
                        // (the key is copied only when it is new)
                        if let Some(p) = self.properties.get_mut(k) {
                            p.add(x, depth + 1);
                        } else if self.properties.len() < MAX_KEYS {
                            self.properties.entry(k.clone()).or_default().add(x, depth + 1);
                        }
                    }
                }
            }
        }
    }

    /// Merges another shape of the same place.
    pub fn merge(&mut self, o: &Shape) {
        for t in &o.types {
            self.add_type(t);
        }
        for (k, v) in &o.properties {
            if let Some(mine) = self.properties.get_mut(k) {
                mine.merge(v);
            } else if self.properties.len() < MAX_KEYS {
                self.properties.insert(k.clone(), v.clone());
            }
        }
        if let Some(oi) = &o.items {
            match &mut self.items {
                Some(i) => i.merge(oi),
                None => self.items = Some(oi.clone()),
            }
        }
    }

    /// JSON Schema (2020-12 subset used by OpenAPI 3.1) of this shape.
    pub fn to_schema(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let mut m = Map::new();
        let types: Vec<Value> = self.types.iter().map(|t| Value::String(t.clone())).collect();
        match types.len() {
            0 => {}
            1 => {
                m.insert("type".into(), types.into_iter().next().unwrap_or(Value::Null));
            }
            _ => {
                m.insert("type".into(), Value::Array(types));
            }
        }
        if !self.properties.is_empty() {
            let props: Map<String, Value> = self.properties.iter().map(|(k, v)| (k.clone(), v.to_schema())).collect();
            m.insert("properties".into(), Value::Object(props));
        }
        if let Some(i) = &self.items {
            m.insert("items".into(), i.to_schema());
        }
        if m.is_empty() {
            return json!({});
        }
        Value::Object(m)
    }
}

/// Query parameter names with the type of each value (values are dropped).
pub fn query_params(query: &str) -> Vec<(String, &'static str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .take(MAX_PARAMS)
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k).into_owned(), scalar_type(&percent_decode(v)))
        })
        .filter(|(k, _)| !k.is_empty() && k.len() <= 128)
        .collect()
}

/// Percent-decoding (`+` as space), lossy; borrows when there is nothing
/// to decode.
pub fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    match super::sensitive::percent_decode(s.as_bytes(), true) {
        Cow::Borrowed(_) => Cow::Borrowed(s),
        Cow::Owned(v) => Cow::Owned(String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_keep_types_not_values() {
        let v: serde_json::Value = serde_json::from_str(r#"{"id":5,"email":"a@b.c","tags":["x"],"price":1.5,"ok":true,"n":null}"#).unwrap();
        let s = Shape::of(&v);
        let text = serde_json::to_string(&s.to_schema()).unwrap();
        assert!(!text.contains("a@b.c"));
        assert_eq!(s.properties["id"].types, vec!["integer"]);
        assert_eq!(s.properties["tags"].items.as_ref().unwrap().types, vec!["string"]);
        let mut a = s.clone();
        a.merge(&Shape::of(&serde_json::json!({"id": "x"})));
        assert_eq!(a.properties["id"].types, vec!["integer", "string"]);
    }

    #[test]
    fn query_parameter_types() {
        assert_eq!(query_params("page=2&q=red+shoes&price=1.5&flag&x%20y=true"), vec![
            ("page".to_string(), "integer"),
            ("q".to_string(), "string"),
            ("price".to_string(), "number"),
            ("flag".to_string(), "string"),
            ("x y".to_string(), "boolean"),
        ]);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a%2Fb"), "a/b");
    }
}
