//! PowerStore collection-query semantics: `select=` with nested relations (`hosts(id,name)`), field
//! filters `<field>=<op>.<value>` (`eq`, `neq`, `in.(a,b)`, `like`, `ilike`, `is.null`,
//! `not.is.null`), `order=<field>[.asc|.desc]`, and paging by `offset`/`limit` or a `Range: a-b`
//! header, answered 206 with `Content-Range: a-b/total` when the page is not the whole collection.
//!
//! Without `select` the array answers only `id`: a client that forgets to select a field gets no
//! value for it, as on a real array.

use serde_json::{Map, Value};

/// Items per page when the request names no limit.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page the array serves.
pub const MAX_LIMIT: usize = 2000;

/// Query parameters that steer the request instead of filtering.
const CONTROL_PARAMETERS: &[&str] = &["select", "limit", "offset", "order", "is_async"];

/// One requested field, with the fields selected inside it when it is a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub name: String,
    pub nested: Option<Vec<Selected>>,
}

/// Parses `id,name,hosts(id,name),mapped_hosts(id,volume(id,name))`; spaces around names are
/// ignored (clients send `creation_timestamp, member_type`).
pub fn parse_select(text: &str) -> Result<Vec<Selected>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    let list = parse_list(&chars, &mut at)?;
    if at != chars.len() {
        return Err(format!("unbalanced ')' in select {text:?}"));
    }
    Ok(list)
}

fn parse_list(chars: &[char], at: &mut usize) -> Result<Vec<Selected>, String> {
    let mut list = Vec::new();
    loop {
        let start = *at;
        while *at < chars.len() && !matches!(chars[*at], ',' | '(' | ')') {
            *at += 1;
        }
        let name: String = chars[start..*at]
            .iter()
            .collect::<String>()
            .trim()
            .to_owned();
        let mut nested = None;
        if *at < chars.len() && chars[*at] == '(' {
            *at += 1;
            nested = Some(parse_list(chars, at)?);
            if *at >= chars.len() || chars[*at] != ')' {
                return Err("missing ')' in select".into());
            }
            *at += 1;
        }
        if name.is_empty() {
            return Err("empty field name in select".into());
        }
        list.push(Selected { name, nested });
        if *at < chars.len() && chars[*at] == ',' {
            *at += 1;
            continue;
        }
        return Ok(list);
    }
}

/// A field filter.
#[derive(Debug, Clone)]
pub struct Filter {
    pub field: String,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Eq(String),
    Neq(String),
    In(Vec<String>),
    Like(String, bool),
    IsNull(bool),
}

impl Filter {
    /// Parses `eq.x`, `neq.x`, `in.(a,b)`, `like.a*`, `ilike.a*`, `is.null`, `not.is.null`.
    pub fn parse(field: &str, expression: &str) -> Result<Filter, String> {
        let op = if let Some(v) = expression.strip_prefix("eq.") {
            Op::Eq(v.to_owned())
        } else if let Some(v) = expression.strip_prefix("neq.") {
            Op::Neq(v.to_owned())
        } else if let Some(v) = expression.strip_prefix("in.") {
            let inner = v
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| format!("{field}: in. needs a list in parentheses"))?;
            Op::In(inner.split(',').map(|s| s.trim().to_owned()).collect())
        } else if let Some(v) = expression.strip_prefix("like.") {
            Op::Like(v.to_owned(), false)
        } else if let Some(v) = expression.strip_prefix("ilike.") {
            Op::Like(v.to_owned(), true)
        } else if expression == "is.null" {
            Op::IsNull(true)
        } else if expression == "not.is.null" {
            Op::IsNull(false)
        } else {
            return Err(format!(
                "{field}={expression}: the filter must be <operator>.<value> with operator eq, neq, in, like, ilike or is"
            ));
        };
        Ok(Filter {
            field: field.to_owned(),
            op,
        })
    }

    pub fn matches(&self, record: &Map<String, Value>) -> bool {
        let value = record.get(&self.field).unwrap_or(&Value::Null);
        let text = match value {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        };
        match &self.op {
            Op::IsNull(null) => value.is_null() == *null,
            Op::Eq(v) => text.as_deref() == Some(v.as_str()),
            Op::Neq(v) => text.as_deref() != Some(v.as_str()),
            Op::In(values) => text.is_some_and(|t| values.contains(&t)),
            Op::Like(pattern, fold) => text.is_some_and(|t| {
                if *fold {
                    wildcard(&pattern.to_lowercase(), &t.to_lowercase())
                } else {
                    wildcard(pattern, &t)
                }
            }),
        }
    }
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| wildcard(rest, &tail[i..]))
        }
    }
}

/// One page of a collection: its records, the index of the first, and the collection's size.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Map<String, Value>>,
    pub first: usize,
    pub total: usize,
}

/// The parsed query of a GET.
#[derive(Debug, Default)]
pub struct Query {
    pub select: Option<Vec<Selected>>,
    pub filters: Vec<Filter>,
    order: Vec<(String, bool)>,
    offset: Option<usize>,
    limit: Option<usize>,
    pub is_async: bool,
}

impl Query {
    /// Splits `params`; `scalar_fields` are the fields a filter or order may name.
    pub fn parse(params: &[(String, String)], scalar_fields: &[&str]) -> Result<Query, String> {
        let mut query = Query::default();
        for (key, value) in params {
            match key.as_str() {
                "select" => query.select = Some(parse_select(value)?),
                "limit" => {
                    let limit: usize = value
                        .parse()
                        .map_err(|_| format!("limit={value} is not a number"))?;
                    if limit == 0 || limit > MAX_LIMIT {
                        return Err(format!("limit={value} must be 1..={MAX_LIMIT}"));
                    }
                    query.limit = Some(limit);
                }
                "offset" => {
                    query.offset = Some(
                        value
                            .parse()
                            .map_err(|_| format!("offset={value} is not a number"))?,
                    )
                }
                "order" => {
                    for part in value.split(',') {
                        let (field, descending) = match part.trim().rsplit_once('.') {
                            Some((f, "desc")) => (f, true),
                            Some((f, "asc")) => (f, false),
                            _ => (part.trim(), false),
                        };
                        if !scalar_fields.contains(&field) {
                            return Err(format!("order: unknown field {field:?}"));
                        }
                        query.order.push((field.to_owned(), descending));
                    }
                }
                "is_async" => query.is_async = value.eq_ignore_ascii_case("true"),
                k if CONTROL_PARAMETERS.contains(&k) => {}
                field => {
                    if !scalar_fields.contains(&field) {
                        return Err(format!("unknown filter field {field:?}"));
                    }
                    query.filters.push(Filter::parse(field, value)?);
                }
            }
        }
        Ok(query)
    }

    /// Applies a `Range: a-b` header (inclusive item indexes), which clients use for later pages.
    pub fn apply_range(&mut self, range: Option<&str>) -> Result<(), String> {
        let Some(range) = range else {
            return Ok(());
        };
        let (start, end) = range
            .trim()
            .trim_start_matches("items=")
            .split_once('-')
            .ok_or_else(|| format!("Range {range:?} must be <first>-<last>"))?;
        let start: usize = start
            .trim()
            .parse()
            .map_err(|_| format!("Range {range:?}: first is not a number"))?;
        let end: usize = end
            .trim()
            .parse()
            .map_err(|_| format!("Range {range:?}: last is not a number"))?;
        if end < start {
            return Err(format!("Range {range:?}: last is before first"));
        }
        self.offset = Some(start);
        self.limit = Some((end - start + 1).min(MAX_LIMIT));
        Ok(())
    }

    /// Filters, orders and pages `records`, or `Err(total)` when the offset is past the end of a
    /// non-empty collection (416).
    pub fn page(&self, records: Vec<Map<String, Value>>) -> Result<Page, usize> {
        let mut kept: Vec<Map<String, Value>> = records
            .into_iter()
            .filter(|r| self.filters.iter().all(|f| f.matches(r)))
            .collect();
        for (field, descending) in self.order.iter().rev() {
            kept.sort_by(|a, b| {
                let key = |r: &Map<String, Value>| r.get(field).map(Value::to_string);
                let ordering = key(a).cmp(&key(b));
                if *descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
        }
        let total = kept.len();
        let offset = self.offset.unwrap_or(0);
        if offset > 0 && offset >= total {
            return Err(total);
        }
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        let items = kept.into_iter().skip(offset).take(limit).collect();
        Ok(Page {
            items,
            first: offset,
            total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn select_parses_nested_relations_and_spaces() {
        let select = parse_select("id, name,hosts(id,name),mapped(id,volume(id))").unwrap();
        assert_eq!(select.len(), 4);
        assert_eq!(select[1].name, "name");
        let hosts = select[2].nested.as_ref().unwrap();
        assert_eq!(hosts.len(), 2);
        let volume = &select[3].nested.as_ref().unwrap()[1];
        assert_eq!(volume.name, "volume");
        assert_eq!(volume.nested.as_ref().unwrap()[0].name, "id");
        assert!(parse_select("id,hosts(id").is_err());
        assert!(parse_select("id)").is_err());
        assert!(parse_select("id,,name").is_err());
    }

    #[test]
    fn filters_follow_the_operator_syntax() {
        let record = json!({"name": "esx-1", "host_group_id": null, "size": 10});
        let record = record.as_object().unwrap();
        let check = |field: &str, expr: &str| Filter::parse(field, expr).unwrap().matches(record);
        assert!(check("name", "eq.esx-1"));
        assert!(!check("name", "eq.esx"));
        assert!(check("name", "neq.esx"));
        assert!(check("name", "in.(a,esx-1)"));
        assert!(check("name", "like.esx*"));
        assert!(check("name", "ilike.ESX*"));
        assert!(!check("name", "like.ESX*"));
        assert!(check("host_group_id", "is.null"));
        assert!(check("size", "eq.10"));
        assert!(Filter::parse("name", "esx-1").is_err());
    }

    #[test]
    fn pages_report_their_place_in_the_collection() {
        let records: Vec<Map<String, Value>> = (0..250)
            .map(|i| {
                json!({"id": format!("{i:03}")})
                    .as_object()
                    .unwrap()
                    .clone()
            })
            .collect();
        let query = Query::parse(&[], &["id"]).unwrap();
        let page = query.page(records.clone()).unwrap();
        assert_eq!((page.items.len(), page.first, page.total), (100, 0, 250));
        let mut query = Query::parse(&[], &["id"]).unwrap();
        query.apply_range(Some("200-2200")).unwrap();
        let page = query.page(records.clone()).unwrap();
        assert_eq!((page.items.len(), page.first), (50, 200));
        let past = Query::parse(&[("offset".into(), "300".into())], &["id"]).unwrap();
        assert_eq!(past.page(records).unwrap_err(), 250);
        assert!(Query::parse(&[("limit".into(), "2001".into())], &["id"]).is_err());
        assert!(Query::parse(&[("nope".into(), "eq.1".into())], &["id"]).is_err());
    }
}
