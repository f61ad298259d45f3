//! Datastore HTTP file transfer: `GET|HEAD|PUT|DELETE /folder/<path>?dcPath=[/]<dc>&dsName=<ds>`, streamed
//! to and from the datastore directory. Authenticated by the SOAP session cookie (or HTTP Basic).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use base64::Engine as _;
use futures::TryStreamExt as _;
use tokio_util::io::{ReaderStream, StreamReader};

use super::{VcenterState, session_cookie};

pub(super) fn routes() -> MethodRouter<Arc<VcenterState>> {
    on(
        MethodFilter::GET
            .or(MethodFilter::HEAD)
            .or(MethodFilter::PUT)
            .or(MethodFilter::DELETE),
        transfer,
    )
}

fn authorized(state: &VcenterState, headers: &HeaderMap) -> bool {
    if let Some(cookie) = session_cookie(headers)
        && state.session_for(&cookie).is_some()
    {
        return true;
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    basic.is_some_and(|pair| {
        pair == format!(
            "{}:{}",
            state.credentials.username, state.credentials.password
        )
    })
}

async fn transfer(
    State(state): State<Arc<VcenterState>>,
    method: Method,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !authorized(&state, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            "log in through /sdk first (vmware_soap_session cookie)",
        )
            .into_response();
    }
    if let Err(injected) = state.faults.apply(&format!("folder:{method}")).await {
        return (StatusCode::INTERNAL_SERVER_ERROR, injected.message).into_response();
    }
    let Some(datastore) = query.get("dsName") else {
        return (
            StatusCode::BAD_REQUEST,
            "dsName query parameter is required",
        )
            .into_response();
    };
    // `dcPath` is the datacenter's inventory path: govmomi writes it with a leading `/` (`/DC0`),
    // pyVmomi samples and Forklift without one (`DC0`).
    if let Some(dc) = query.get("dcPath")
        && dc.trim_start_matches('/') != state.inventory.datacenter
    {
        return (StatusCode::NOT_FOUND, format!("datacenter {dc} not found")).into_response();
    }
    let Some(file) = state.inventory.paths.resolve(datastore, &path) else {
        return (
            StatusCode::NOT_FOUND,
            format!("datastore {datastore} not found or path leaves it"),
        )
            .into_response();
    };
    match method {
        Method::GET | Method::HEAD => match tokio::fs::File::open(&file).await {
            Ok(f) => {
                let len = f.metadata().await.map(|m| m.len()).unwrap_or_default();
                let body = if method == Method::HEAD {
                    Body::empty()
                } else {
                    Body::from_stream(ReaderStream::new(f))
                };
                let mut response = Response::new(body);
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, len.into());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/octet-stream"),
                );
                response
            }
            Err(_) => (
                StatusCode::NOT_FOUND,
                format!("file {path} not found on {datastore}"),
            )
                .into_response(),
        },
        Method::PUT => {
            if let Some(parent) = file.parent()
                && !parent.is_dir()
            {
                return (
                    StatusCode::NOT_FOUND,
                    format!("directory of {path} does not exist on {datastore}"),
                )
                    .into_response();
            }
            let created = !file.exists();
            let result = async {
                let mut out = tokio::fs::File::create(&file).await?;
                let stream = body.into_data_stream().map_err(std::io::Error::other);
                let mut reader = StreamReader::new(stream);
                tokio::io::copy(&mut reader, &mut out).await?;
                out.sync_all().await
            }
            .await;
            match result {
                Ok(()) if created => StatusCode::CREATED.into_response(),
                Ok(()) => StatusCode::OK.into_response(),
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("writing {path}: {e}"),
                )
                    .into_response(),
            }
        }
        Method::DELETE => match tokio::fs::remove_file(&file).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(_) => (
                StatusCode::NOT_FOUND,
                format!("file {path} not found on {datastore}"),
            )
                .into_response(),
        },
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}
