//! The property collector: `RetrievePropertiesEx` + `ContinueRetrievePropertiesEx`, starting from
//! one object (optionally following traversal specs, e.g. the whole inventory from the root folder
//! in a single round trip per page).

use tracing::debug;

use crate::client::Client;
use crate::decode::Node;
use crate::error::{Error, Fault, FaultKind};
use crate::soap::Request;
use crate::types::ManagedObjectReference;

/// Which properties to read from objects of one type.
#[derive(Debug, Clone)]
pub struct PropertySpec {
    pub kind: String,
    /// Property paths; empty means all properties.
    pub paths: Vec<String>,
}

impl PropertySpec {
    pub fn new(kind: impl Into<String>, paths: &[&str]) -> Self {
        Self {
            kind: kind.into(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }
    }
}

/// One hop of a traversal: from objects of `kind`, follow property `path`, then the named specs.
#[derive(Debug, Clone)]
pub struct TraversalSpec {
    pub name: &'static str,
    pub kind: &'static str,
    pub path: &'static str,
    pub select: Vec<&'static str>,
}

/// Where collection starts and how it spreads.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub start: ManagedObjectReference,
    /// Whether to leave the start object itself out of the results.
    pub skip: bool,
    pub traversal: Vec<TraversalSpec>,
}

impl ObjectSpec {
    /// Just this object.
    pub fn single(obj: &ManagedObjectReference) -> Self {
        Self {
            start: obj.clone(),
            skip: false,
            traversal: Vec::new(),
        }
    }

    /// Every folder, datacenter, compute resource, host, VM (also inside vApps) and datastore
    /// below `root`. Each hop is terminal or leads only downwards, so the traversal cannot loop
    /// even on a collector that ignores the `type` of traversal specs (vcsim does).
    pub fn inventory(root: &ManagedObjectReference) -> Self {
        const FROM_FOLDER: &[&str] = &["folder", "dcVm", "dcHost", "dcDs", "crHost", "vappVm"];
        let spec = |name, kind, path, select: &[&'static str]| TraversalSpec {
            name,
            kind,
            path,
            select: select.to_vec(),
        };
        Self {
            start: root.clone(),
            skip: false,
            traversal: vec![
                spec("folder", "Folder", "childEntity", FROM_FOLDER),
                spec("dcVm", "Datacenter", "vmFolder", FROM_FOLDER),
                spec("dcHost", "Datacenter", "hostFolder", FROM_FOLDER),
                spec("dcDs", "Datacenter", "datastoreFolder", FROM_FOLDER),
                spec("crHost", "ComputeResource", "host", &[]),
                spec("vappVm", "VirtualApp", "vm", &[]),
            ],
        }
    }

    /// `obj` and all its ancestors (following `parent`).
    pub fn ancestors(obj: &ManagedObjectReference) -> Self {
        Self {
            start: obj.clone(),
            skip: false,
            traversal: vec![TraversalSpec {
                name: "parent",
                kind: "ManagedEntity",
                path: "parent",
                select: vec!["parent"],
            }],
        }
    }
}

/// The properties of one object, as returned (values undecoded).
#[derive(Debug, Clone)]
pub struct ObjectContent {
    pub obj: ManagedObjectReference,
    /// `(path, <val> element)` in server order.
    pub props: Vec<(String, Node)>,
    /// Properties the server could not read, with the reason.
    pub missing: Vec<(String, Fault)>,
}

impl ObjectContent {
    /// The `<val>` of `path`, if returned.
    pub fn prop(&self, path: &str) -> Option<&Node> {
        self.props.iter().find(|(p, _)| p == path).map(|(_, v)| v)
    }

    /// A string property.
    pub fn text(&self, path: &str) -> Option<&str> {
        self.prop(path).map(|v| v.text.as_str())
    }

    /// A reference-valued property.
    pub fn moref(&self, path: &str) -> Option<ManagedObjectReference> {
        self.prop(path)
            .and_then(|v| ManagedObjectReference::from_node(v).ok())
    }
}

impl Client {
    /// Reads `props` from the objects `objects` reaches, following continuation tokens.
    pub async fn retrieve(
        &self,
        objects: &ObjectSpec,
        props: &[PropertySpec],
    ) -> Result<Vec<ObjectContent>, Error> {
        self.retrieve_paged(objects, props, None).await
    }

    /// As [`Client::retrieve`], asking the server for at most `page_size` objects per round trip.
    pub async fn retrieve_paged(
        &self,
        objects: &ObjectSpec,
        props: &[PropertySpec],
        page_size: Option<u32>,
    ) -> Result<Vec<ObjectContent>, Error> {
        let out = self.retrieve_pages(objects, props, page_size).await?;
        if !session_lost(&out) {
            return Ok(out);
        }
        // A collector without a session answers with NotAuthenticated in every object's
        // missingSet instead of a fault (vcsim does); log in again and collect once more.
        debug!("property collector reports NotAuthenticated; logging in again");
        self.session_login().await?;
        self.retrieve_pages(objects, props, page_size).await
    }

    async fn retrieve_pages(
        &self,
        objects: &ObjectSpec,
        props: &[PropertySpec],
        page_size: Option<u32>,
    ) -> Result<Vec<ObjectContent>, Error> {
        let pc = self.inner.service.property_collector.clone();
        let mut req = Request::new("RetrievePropertiesEx", &pc);
        write_filter_spec(&mut req, objects, props);
        req.open("options");
        if let Some(n) = page_size {
            req.text("maxObjects", &n.to_string());
        }
        req.close("options");
        let response = self.call(&req).await?;
        let mut out = Vec::new();
        let mut token = read_page(req.method(), &response, &mut out)?;
        while let Some(t) = token {
            let mut next = Request::new("ContinueRetrievePropertiesEx", &pc);
            next.text("token", &t);
            let response = self.call(&next).await?;
            token = read_page(next.method(), &response, &mut out)?;
        }
        Ok(out)
    }

    /// Reads properties of a single object; `ManagedObjectNotFound` becomes [`Error::NotFound`].
    pub async fn retrieve_one(
        &self,
        obj: &ManagedObjectReference,
        paths: &[&str],
    ) -> Result<ObjectContent, Error> {
        let spec = [PropertySpec::new(obj.kind.as_str(), paths)];
        let result = self.retrieve(&ObjectSpec::single(obj), &spec).await;
        match result {
            Err(e) if e.is_fault(FaultKind::ManagedObjectNotFound) => Err(Error::NotFound {
                what: "managed object",
                id: obj.to_string(),
                hint: String::new(),
            }),
            Err(e) => Err(e),
            Ok(mut objects) => objects.pop().ok_or_else(|| Error::NotFound {
                what: "managed object",
                id: obj.to_string(),
                hint: String::new(),
            }),
        }
    }
}

/// True when objects came back but every requested property is missing for lack of a session.
fn session_lost(objects: &[ObjectContent]) -> bool {
    !objects.is_empty()
        && objects.iter().all(|o| {
            o.props.is_empty()
                && !o.missing.is_empty()
                && o.missing
                    .iter()
                    .all(|(_, f)| f.kind == FaultKind::NotAuthenticated)
        })
}

fn write_filter_spec(req: &mut Request, objects: &ObjectSpec, props: &[PropertySpec]) {
    req.open("specSet");
    for p in props {
        req.open("propSet").text("type", &p.kind);
        if p.paths.is_empty() {
            req.text("all", "true");
        }
        for path in &p.paths {
            req.text("pathSet", path);
        }
        req.close("propSet");
    }
    req.open("objectSet")
        .moref("obj", &objects.start)
        .text("skip", if objects.skip { "true" } else { "false" });
    for t in &objects.traversal {
        req.open_typed("selectSet", "TraversalSpec")
            .text("name", t.name)
            .text("type", t.kind)
            .text("path", t.path)
            .text("skip", "false");
        for s in &t.select {
            req.open("selectSet").text("name", s).close("selectSet");
        }
        req.close("selectSet");
    }
    req.close("objectSet");
    req.close("specSet");
}

/// Appends a page's objects to `out`; returns the continuation token, if any.
fn read_page(
    method: &str,
    response: &Node,
    out: &mut Vec<ObjectContent>,
) -> Result<Option<String>, Error> {
    let Some(rv) = response.child("returnval") else {
        return Ok(None);
    };
    let decode_err = |source| Error::Decode {
        method: method.to_owned(),
        source,
    };
    for obj in rv.children_named("objects") {
        let moref = ManagedObjectReference::child_of(obj, "obj").map_err(decode_err)?;
        let mut content = ObjectContent {
            obj: moref,
            props: Vec::new(),
            missing: Vec::new(),
        };
        for prop in obj.children_named("propSet") {
            let name = prop.required_text("name").map_err(decode_err)?.to_owned();
            if let Some(val) = prop.child("val") {
                content.props.push((name, val.clone()));
            }
        }
        for missing in obj.children_named("missingSet") {
            let path = missing.text_of("path").unwrap_or_default().to_owned();
            let fault_node = missing.descend(&["fault", "fault"]);
            let detail_type = fault_node
                .and_then(|f| f.xsi_type.clone())
                .unwrap_or_default();
            let message = missing
                .descend(&["fault", "localizedMessage"])
                .map(|m| m.text.clone())
                .unwrap_or_default();
            content.missing.push((
                path,
                Fault {
                    kind: FaultKind::from_type_name(&detail_type),
                    message,
                    detail_type,
                },
            ));
        }
        out.push(content);
    }
    Ok(rv.text_of("token").map(str::to_owned))
}
