//! The lab's PowerStore facade against the PowerStore REST API definition (Swagger 2.0, 4.0.0.0):
//! every route it serves is a published operation, and every field it lets a client select,
//! filter or order on is a property of the resource's published model — so the facade refuses
//! what the real array refuses instead of inventing API. Reads `openapi.json` from
//! `$POWERSTORE_API_DIR`, else `$VENDOR_API_DIR/powerstore/`, else the shared copy; skipped with
//! a message only when it is absent.

use co_lab::arrays::powerstore::{Kind, OPERATIONS, scalar_fields};
use serde_json::Value;

fn definition() -> Option<Value> {
    let file = co_lab::arrays::powerstore::published_definition()?;
    Some(serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap())
}

#[test]
fn every_route_is_a_published_operation() {
    let Some(spec) = definition() else {
        eprintln!(
            "SKIPPED: the PowerStore API definition is absent; set POWERSTORE_API_DIR to the directory holding openapi.json"
        );
        return;
    };
    assert_eq!(spec["basePath"], co_lab::arrays::powerstore::BASE_PATH);
    for (method, path) in OPERATIONS {
        let operation = &spec["paths"][*path][method.to_ascii_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {path} is not in the definition"
        );
    }
}

#[test]
fn every_field_the_facade_knows_is_a_published_property() {
    let Some(spec) = definition() else {
        eprintln!(
            "SKIPPED: the PowerStore API definition is absent; set POWERSTORE_API_DIR to the directory holding openapi.json"
        );
        return;
    };
    for kind in Kind::ALL {
        let properties = spec["definitions"][kind.model()]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{} is not a model of the definition", kind.model()));
        for field in scalar_fields(kind) {
            assert!(
                properties.contains_key(*field),
                "{kind:?}: {field} is not a property of {}",
                kind.model()
            );
        }
    }
}
