//! ONTAP collection-query semantics over JSON records: field filters (`name=a*|b`, `!value`, dotted
//! paths such as `igroup.name`, matching any element of an array), `fields=` projection, and the
//! `{"records": […], "num_records": N}` wrapper.

use serde_json::{Map, Value};

/// Query parameters that steer the request instead of filtering records.
const CONTROL_PARAMETERS: &[&str] = &[
    "fields",
    "return_records",
    "return_timeout",
    "max_records",
    "order_by",
];

/// A parsed collection query.
#[derive(Debug, Default)]
pub(super) struct CollectionQuery {
    filters: Vec<(String, String)>,
    fields: Option<Vec<String>>,
    pub return_records: bool,
}

impl CollectionQuery {
    /// Splits `params`; a filter on a field outside `known_fields` is an error naming the field,
    /// as ONTAP answers "Unexpected argument".
    pub fn parse(params: &[(String, String)], known_fields: &[&str]) -> Result<Self, String> {
        let mut query = CollectionQuery::default();
        for (key, value) in params {
            match key.as_str() {
                "fields" => {
                    query.fields = Some(value.split(',').map(|f| f.trim().to_owned()).collect())
                }
                "return_records" => query.return_records = value.eq_ignore_ascii_case("true"),
                k if CONTROL_PARAMETERS.contains(&k) => {}
                k => {
                    let top = k.split('.').next().unwrap_or(k);
                    if !known_fields.contains(&top) {
                        return Err(k.to_owned());
                    }
                    query.filters.push((k.to_owned(), value.clone()));
                }
            }
        }
        Ok(query)
    }

    /// Whether `record` passes every filter.
    pub fn matches(&self, record: &Value) -> bool {
        self.filters
            .iter()
            .all(|(path, pattern)| matches_path(record, path, pattern))
    }

    /// `record` reduced to `identity` fields plus the requested ones (`*`/`**` keep everything).
    pub fn project(&self, record: Value, identity: &[&str]) -> Value {
        let Value::Object(full) = record else {
            return record;
        };
        let keep_all = self
            .fields
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == "*" || f == "**"));
        if keep_all {
            return Value::Object(full);
        }
        let requested: Vec<&str> = self
            .fields
            .iter()
            .flatten()
            .map(|f| f.split('.').next().unwrap_or(f))
            .collect();
        let kept: Map<String, Value> = full
            .into_iter()
            .filter(|(k, _)| identity.contains(&k.as_str()) || requested.contains(&k.as_str()))
            .collect();
        Value::Object(kept)
    }
}

/// The ONTAP collection wrapper.
pub(super) fn collection(records: Vec<Value>) -> Value {
    serde_json::json!({ "records": records, "num_records": records.len() })
}

fn matches_path(record: &Value, path: &str, pattern: &str) -> bool {
    let mut values = Vec::new();
    collect(record, &path.split('.').collect::<Vec<_>>(), &mut values);
    let (negated, pattern) = match pattern.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let hit = values.iter().any(|value| {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => return false,
            other => other.to_string(),
        };
        pattern
            .split('|')
            .any(|alternative| glob(alternative, &text))
    });
    hit != negated
}

/// Every value at `path`, descending into arrays.
fn collect<'v>(value: &'v Value, path: &[&str], out: &mut Vec<&'v Value>) {
    match (value, path.split_first()) {
        (Value::Array(items), _) => items.iter().for_each(|item| collect(item, path, out)),
        (_, None) => out.push(value),
        (Value::Object(map), Some((head, rest))) => {
            if let Some(child) = map.get(*head) {
                collect(child, rest, out);
            }
        }
        _ => {}
    }
}

/// ONTAP wildcard match: `*` matches any run of characters; matching is case-insensitive.
fn glob(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let text = text.to_ascii_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filters_follow_dotted_paths_arrays_wildcards_and_negation() {
        let record = json!({
            "name": "xcopy-host-1-iscsi",
            "igroup": {"name": "g1"},
            "initiators": [{"name": "iqn.a"}, {"name": "iqn.b"}],
            "logical_unit_number": 3
        });
        let known = ["name", "igroup", "initiators", "logical_unit_number"];
        let check = |pairs: &[(&str, &str)]| {
            CollectionQuery::parse(&params(pairs), &known)
                .unwrap()
                .matches(&record)
        };
        assert!(check(&[("igroup.name", "*")]));
        assert!(check(&[("igroup.name", "g1")]));
        assert!(!check(&[("igroup.name", "g2")]));
        assert!(check(&[("name", "xcopy-*-iscsi")]));
        assert!(check(&[("name", "nope|XCOPY-HOST-1-ISCSI")]));
        assert!(check(&[("initiators.name", "iqn.b")]));
        assert!(!check(&[("initiators.name", "iqn.c")]));
        assert!(check(&[("name", "!other")]));
        assert!(check(&[("logical_unit_number", "3")]));
        assert!(check(&[("fields", "name"), ("return_records", "true")]));
    }

    #[test]
    fn unknown_filter_fields_are_named() {
        let err = CollectionQuery::parse(&params(&[("bogus.name", "x")]), &["name"]).unwrap_err();
        assert_eq!(err, "bogus.name");
    }

    #[test]
    fn projection_keeps_identity_and_requested_fields() {
        let record = json!({"uuid": "u", "name": "n", "serial_number": "s", "space": {"size": 1}});
        let q = CollectionQuery::parse(&params(&[("fields", "serial_number,space.size")]), &[])
            .unwrap();
        assert_eq!(
            q.project(record.clone(), &["uuid", "name"]),
            json!({"uuid": "u", "name": "n", "serial_number": "s", "space": {"size": 1}})
        );
        let q = CollectionQuery::parse(&[], &[]).unwrap();
        assert_eq!(
            q.project(record.clone(), &["uuid", "name"]),
            json!({"uuid": "u", "name": "n"})
        );
        let q = CollectionQuery::parse(&params(&[("fields", "*")]), &[]).unwrap();
        assert_eq!(q.project(record.clone(), &["uuid"]), record);
    }

    #[test]
    fn glob_handles_inner_wildcards() {
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*e", "abde"));
        assert!(glob("*", ""));
        assert!(!glob("ab*ba", "aba"));
    }
}
