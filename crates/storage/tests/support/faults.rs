//! Statuses the next matching requests answer instead of reaching the array, each in the vendor's
//! own error body (the plugin under test parses that body, so it must stay vendor-true).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

struct Injected {
    /// Only requests with this method match; any method when `None`.
    method: Option<String>,
    /// A request matches when its path contains this.
    path: String,
    status: u16,
}

/// A queue of injected answers in front of a facade. Cheap to clone; clones share the queue.
#[derive(Clone)]
pub struct Faults {
    queue: Arc<Mutex<VecDeque<Injected>>>,
    /// The vendor's error answer for a status.
    answer: fn(u16) -> Response,
}

impl Faults {
    pub fn new(answer: fn(u16) -> Response) -> Faults {
        Faults {
            queue: Arc::default(),
            answer,
        }
    }

    /// The next request whose path contains `path` answers `status`.
    pub fn push(&self, path: &str, status: u16) {
        self.inject(None, path, status);
    }

    /// The next `method` request whose path contains `path` answers `status`.
    pub fn push_for(&self, method: &str, path: &str, status: u16) {
        self.inject(Some(method), path, status);
    }

    fn inject(&self, method: Option<&str>, path: &str, status: u16) {
        self.queue.lock().unwrap().push_back(Injected {
            method: method.map(str::to_owned),
            path: path.to_owned(),
            status,
        });
    }

    /// Injected answers not yet served.
    pub fn pending(&self) -> usize {
        self.queue.lock().unwrap().len()
    }

    /// `router` behind the queue.
    pub fn layer(self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let faults = self.clone();
                async move {
                    let injected = faults.take(request.method().as_str(), request.uri().path());
                    match injected {
                        Some(status) => (faults.answer)(status),
                        None => next.run(request).await,
                    }
                }
            },
        ))
    }

    fn take(&self, method: &str, path: &str) -> Option<u16> {
        let mut queue = self.queue.lock().unwrap();
        let at = queue.iter().position(|i| {
            i.method.as_deref().is_none_or(|m| m == method) && path.contains(i.path.as_str())
        })?;
        queue.remove(at).map(|i| i.status)
    }
}
